"""A call summary (contract `line/{line}/summary` payload) -> the rows of the central store.

The payload is `{call_id, summary, ticket, scorecard, call_type, ts}` (issue 12's after-call
output; `scorecard.figures` holds the timeline figures) plus, when the sender knows it,
`call`: `{agent, team, box, started, duration_s, lang, ivr_intent, alerts: [{kind,
speaker, severity, t_start, t_end}]}` (the line and `callcue qa` add it). Every field may
be missing (an older box, a call without speech recognition): the column is then NULL,
never a guess, except `day`/`started`, which fall back to the payload's `ts`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

ISSUE_KINDS = ("alert", "step", "phrase", "offer", "qa")


@dataclass
class Rows:
    call: dict[str, Any]
    alerts: list[tuple] = field(default_factory=list)       # (kind, speaker, severity, t_start, t_end)
    offers: list[tuple] = field(default_factory=list)       # (offer, fitted, made)
    steps: list[tuple] = field(default_factory=list)        # (flow, step, position, done)
    score_items: list[tuple] = field(default_factory=list)  # (item, title, weight, applies, points)
    issues: list[tuple] = field(default_factory=list)       # (kind, issue)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _int(v: Any) -> int | None:
    x = _num(v)
    return None if x is None else int(round(x))


def _text(v: Any, limit: int = 200) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s[:limit] if s else None


def local_time(value: Any) -> datetime | None:
    """An ISO time as the wall clock it names (an offset, if any, is dropped: the site's
    local time is what a report groups by); None when unreadable."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.replace(tzinfo=None, microsecond=0)


def _started(call: dict, payload: dict, duration: float | None) -> datetime | None:
    t = local_time(call.get("started"))
    if t is not None:
        return t
    ts = payload.get("ts")
    try:
        t = datetime.fromisoformat(str(ts).replace("Z", "+00:00")).astimezone()   # UTC -> this machine's clock
    except (TypeError, ValueError):
        return None
    t = t.replace(tzinfo=None, microsecond=0)
    return t - timedelta(seconds=duration or 0.0)


def _alert(a: Any) -> tuple | None:
    if isinstance(a, dict):
        kind = _text(a.get("kind"), 40)
        if not kind:
            return None
        return (kind, _text(a.get("speaker"), 20), _text(a.get("severity"), 20), _num(a.get("t_start")),
                _num(a.get("t_end")))
    if isinstance(a, (list, tuple)) and a:
        a = list(a) + [None] * 5
        return (_text(a[0], 40), _text(a[1], 20), _text(a[2], 20), _num(a[3]), _num(a[4]))
    return None


def _union_s(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, None
    for a, b in sorted(spans):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def rows_from_summary(payload: dict[str, Any], *, site: str | None, floor: str | None, line: str | None,
                      source: str = "collect", file: str | None = None, received: str | None = None) -> Rows:
    """The rows of one summary. ValueError when it has no call id (nothing to key it by)."""
    if not isinstance(payload, dict):
        raise ValueError("summary payload is not a JSON object")
    call_id = _text(payload.get("call_id"), 128)
    if not call_id:
        raise ValueError("summary without call_id")
    call = payload.get("call") if isinstance(payload.get("call"), dict) else {}
    ivr = payload.get("ivr") if isinstance(payload.get("ivr"), dict) else {}
    sc = payload.get("scorecard") if isinstance(payload.get("scorecard"), dict) else {}
    fig = sc.get("figures") if isinstance(sc.get("figures"), dict) else {}
    talk = fig.get("talk_s") if isinstance(fig.get("talk_s"), dict) else {}
    agit = fig.get("agitation_s") if isinstance(fig.get("agitation_s"), dict) else {}
    inter = fig.get("interruptions") if isinstance(fig.get("interruptions"), dict) else {}

    alerts = [r for r in (_alert(a) for a in (call.get("alerts") or [])) if r is not None and r[0]]
    duration = _num(fig.get("duration_s"))
    if duration is None:
        duration = _num(call.get("duration_s"))
    started = _started(call, payload, duration)
    agitation = _num(agit.get("customer"))
    if agitation is None and alerts:
        agitation = round(_union_s([(a[3], a[4]) for a in alerts if a[0] == "agitation" and a[1] == "customer"
                                    and a[3] is not None and a[4] is not None]), 1)
    flow = _text(sc.get("flow"), 80)

    offers_block = sc.get("offers") if isinstance(sc.get("offers"), dict) else {}
    suggested = {str(o) for o in offers_block.get("suggested") or []}
    made = {str(o) for o in offers_block.get("made") or []}
    offers = [(o, int(o in suggested), int(o in made)) for o in sorted(suggested | made)]

    done = [str(s) for s in sc.get("steps_done") or []]
    missed = [str(s) for s in sc.get("steps_missed") or []]
    steps = [(flow, s, i, 1) for i, s in enumerate(done)] + [(flow, s, len(done) + i, 0) for i, s in enumerate(missed)]

    items = []
    for it in sc.get("items") or []:
        if not isinstance(it, dict) or not it.get("id"):
            continue
        items.append((_text(it["id"], 60), _text(it.get("title"), 120), _num(it.get("weight")),
                      int(bool(it.get("applies"))), _num(it.get("points"))))

    issues: set[tuple[str, str]] = set()
    issues |= {("alert", a[0]) for a in alerts if a[0] != "line_down"}
    issues |= {("step", s) for s in missed}
    issues |= {("phrase", str(p)) for p in sc.get("missing_phrases") or [] if p}
    issues |= {("offer", o) for o, f, m in offers if f and not m}
    issues |= {("qa", i[0]) for i in items if i[3] and i[2] is not None and i[4] is not None and i[4] < i[2] - 1e-9}

    score = _num(sc.get("score"))
    passed = sc.get("passed")
    row = {
        "call_id": call_id, "site": _text(site, 64), "floor": _text(floor, 64), "box": _text(call.get("box"), 64),
        "line": _text(line, 64), "agent": _text(call.get("agent"), 120), "team": _text(call.get("team"), 120),
        "started": started.isoformat(sep=" ") if started else None,
        "day": started.date().isoformat() if started else None,
        "duration_s": None if duration is None else round(duration, 1),
        "lang": _text(sc.get("language") or call.get("lang") or ivr.get("lang"), 8),
        "call_type": _text(payload.get("call_type"), 120), "ivr_intent": _text(call.get("ivr_intent") or ivr.get("intent"), 80),
        "flow": flow, "flow_completion": _num(sc.get("completion")) if flow else None,
        "qa_score": score, "qa_passed": None if passed is None else int(bool(passed)),
        "talk_agent_s": _num(talk.get("agent")), "talk_customer_s": _num(talk.get("customer")),
        "talk_ratio": _num(fig.get("talk_listen_ratio")), "silence_share": _num(fig.get("silence_share")),
        "dead_air_s": _num(fig.get("dead_air_s")), "dead_air_share": _num(fig.get("dead_air_share")),
        "agitation_s": agitation, "agitation_agent_s": _num(agit.get("agent")),
        "interruptions": _int(inter.get("agent")), "alerts": len(alerts) if "alerts" in call else None,
        "offers_fitted": sum(f for _, f, _ in offers) if offers_block else None,
        "offers_made": sum(m for _, _, m in offers) if offers_block else None,
        "summary": _text(payload.get("summary"), 4000),
        "ticket": json.dumps(payload["ticket"], ensure_ascii=False) if payload.get("ticket") else None,
        "source": source, "file": _text(file, 1000), "received": received,
    }
    return Rows(row, alerts, offers, steps, items, sorted(issues))


def parse_topic(topic: str) -> tuple[str, str, str] | None:
    """(site, floor, line) of `callcue/v1/{site}/{floor}/line/{line}/summary`, else None."""
    parts = topic.split("/")
    if len(parts) != 7 or parts[0] != "callcue" or parts[4] != "line" or parts[6] != "summary":
        return None
    return parts[2], parts[3], parts[5]
