"""The supervisor's picture of the floor, built from contract v1 messages only.

Pure state: `FloorModel.apply(topic, payload, now)` takes one MQTT message as it
arrived and updates the model; the views (`rows`, `feed`, `stats`, `call`) are
computed from it for a given wall-clock `now`. No I/O, no threads, no clock reads,
so tests drive it with plain data.

Derived quantities (the daemon publishes no direct signal for them):

- **speaking now**: a transcript (partial or final) from a speaker received in the
  last SPEAKING_WINDOW_S; a `talk_over` alert received in that window means both; a
  `long_silence` alert means nobody, until speech is heard again or SILENCE_SHOW_S
  pass. Without speech recognition only the alerts feed this column.
- **customer mood**: the customer's `agitation` alerts of the current call, each
  scored by how far over the thresholds its evidence is (pitch rise and loudness rise),
  decaying with a half-life of MOOD_HALF_LIFE_S.
- **call duration**: from the `since` of the first `in_call` state of that call id.
- **acknowledged**: an `ack_alert` command seen on any line's `cmd/{role}` topic (or the
  legacy `cmd`), from this terminal or another one, so supervisors see each other's
  acknowledgements; an op the role may not send (contract.ROLE_OPS) is ignored, as the box does.

Everything is bounded: per-floor alert feed, per-call transcript and suggestions,
calls remembered per line, alert ids for de-duplication (QoS 1 is at-least-once).
"""
from __future__ import annotations

import json
import math
import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callcue.daemon.contract import ROLE_OPS

SPEAKING_WINDOW_S = 2.0
SILENCE_SHOW_S = 15.0
MOOD_HALF_LIFE_S = 60.0
FEED_MAX = 500               # alerts kept in the floor feed
CALL_ALERTS_MAX = 200
TRANSCRIPT_MAX = 400         # final utterances kept per call
SUGGESTIONS_MAX = 50
CALLS_PER_LINE = 3           # the current call and the last ones, for review after hang-up
SEEN_IDS_MAX = 5000
HOUR_S = 3600.0
ENDED_CALLS_MAX = 5000       # handle times kept for the average
LINES_MAX = 2000             # lines tracked across all floors; beyond that new ones are ignored

SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}
SEVERITY_RISK = {"info": 1.0, "warning": 3.0, "critical": 6.0}
MOOD_RISK = 6.0              # a fully agitated customer weighs like one critical alert
DOWN_RISK = 4.0
TAKEOVER_RISK = 8.0
ENDED_WEIGHT = 0.5           # open alerts of a call that has ended weigh half

# agitation thresholds of the default detector config: evidence at the threshold scores 0.5
_PITCH_REF_ST = 3.0
_LOUD_REF_DB = 2.5

LineKey = tuple[str, str, str]   # (site, floor, line)


def parse_ts(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 time, or None when it is missing or malformed."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def natural_key(text: str) -> tuple:
    """'demo2' < 'demo10'; numbers compare as numbers."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


@dataclass
class Alert:
    id: str
    key: LineKey
    call_id: str | None
    kind: str
    severity: str
    speaker: str | None
    t_start: float
    t_end: float
    message: str
    evidence: dict[str, Any]
    ts: float | None          # when the box raised it
    received: float           # when this terminal got it
    acked_by: str | None = None
    level: float = 0.0        # agitation intensity 0..1 (agitation alerts only)

    @property
    def line(self) -> str:
        return self.key[2]


@dataclass
class Utterance:
    speaker: str
    text: str
    final: bool
    t_start: float
    t_end: float
    seq: int


@dataclass
class Call:
    call_id: str
    key: LineKey
    agent: str = ""
    started: float | None = None     # wall clock, from the state's `since`
    ended: float | None = None
    finals: list[Utterance] = field(default_factory=list)
    partials: dict[str, Utterance] = field(default_factory=dict)   # speaker -> utterance in progress
    alerts: list[Alert] = field(default_factory=list)
    flow: dict[str, Any] | None = None
    suggestions: deque = field(default_factory=lambda: deque(maxlen=SUGGESTIONS_MAX))   # newest last
    summary: dict[str, Any] | None = None
    flags: list[dict[str, Any]] = field(default_factory=list)
    _seqs: set = field(default_factory=set)

    def transcript(self) -> list[Utterance]:
        """Finals in call order, then what each speaker is saying right now."""
        return self.finals + sorted(self.partials.values(), key=lambda u: u.t_start)

    def call_time(self, now: float) -> float:
        """Seconds since the call started (at its end once it ended), or the last event time."""
        if self.started is None:
            return max([a.t_end for a in self.alerts] + [u.t_end for u in self.finals] + [0.0])
        return max(0.0, (self.ended if self.ended is not None else now) - self.started)

    def open_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.acked_by is None]

    def agitation(self, speaker: str, buckets: int, span: float) -> list[float]:
        """Agitation intensity of one speaker per time bucket over [0, span] of call time."""
        out = [0.0] * max(1, buckets)
        if span <= 0:
            return out
        width = span / len(out)
        for a in self.alerts:
            if a.kind != "agitation" or a.speaker != speaker:
                continue
            i0 = min(len(out) - 1, max(0, int(a.t_start / width)))
            i1 = min(len(out) - 1, max(i0, int(a.t_end / width)))
            for i in range(i0, i1 + 1):
                out[i] = max(out[i], a.level)
        return out

    @property
    def takeover(self) -> bool:
        return any(f.get("reason") == "takeover" for f in self.flags)


@dataclass
class Line:
    key: LineKey
    agent: str = ""
    status: str = "unknown"          # idle | in_call | down | unknown (no state seen yet)
    call_id: str | None = None
    since: float | None = None
    calls: "OrderedDict[str, Call]" = field(default_factory=OrderedDict)
    heard: dict[str, float] = field(default_factory=dict)   # speaker -> when speech was last evidenced
    silence_at: float | None = None
    box: str | None = None
    box_offline: bool = False
    down_alert: Alert | None = None
    rev: int = 0                     # bumped on every change to this line (views redraw on change)

    @property
    def effective_status(self) -> str:
        return "down" if self.box_offline else self.status

    @property
    def current(self) -> Call | None:
        """The call in progress, else the most recent one (kept for review)."""
        if self.call_id and self.call_id in self.calls:
            return self.calls[self.call_id]
        return next(reversed(self.calls.values()), None) if self.calls else None

    def in_call(self) -> Call | None:
        if self.status in ("in_call", "down") and self.call_id and self.call_id in self.calls:
            return self.calls[self.call_id]
        return None


@dataclass(frozen=True)
class Row:
    """One line of the floor board."""

    key: LineKey
    agent: str
    status: str
    duration: float | None
    speaking: str                 # agent | customer | both | silence | ""
    mood: float                   # 0 calm .. 1 very agitated (customer)
    open_alerts: int
    worst: str | None             # highest severity among open alerts
    risk: float
    flag: str | None              # takeover | coaching | None
    last_alert: str | None        # kind of the newest open alert


@dataclass(frozen=True)
class Stats:
    lines: int
    in_call: int
    idle: int
    down: int
    open_alerts: int
    alerts_last_hour: dict[str, int]
    aht_s: float | None
    aht_n: int
    boxes_online: int
    boxes_offline: int
    floors: tuple[tuple[str, str], ...]


def agitation_level(evidence: dict[str, Any], severity: str) -> float:
    """0..1 from how far pitch and loudness rose over the speaker's baseline."""
    def num(name: str) -> float:
        v = evidence.get(name)
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else 0.0
    score = 0.25 * num("pitch_up_st") / _PITCH_REF_ST + 0.25 * num("loudness_up_db") / _LOUD_REF_DB
    if score == 0.0:
        score = 0.5
    if severity == "critical":
        score = max(score, 0.8)
    return max(0.2, min(1.0, score))


class FloorModel:
    """State of every line seen under the subscribed roots."""

    def __init__(self) -> None:
        self.lines: dict[LineKey, Line] = {}
        self._feed: deque[Alert] = deque(maxlen=FEED_MAX)        # oldest first
        self._alerts: OrderedDict[str, Alert] = OrderedDict()    # id -> alert (dedup, ack lookup)
        self._pending_acks: OrderedDict[str, str] = OrderedDict()  # ack seen before its alert
        self._hour: deque[tuple[float, str]] = deque(maxlen=100_000)   # (received, kind)
        self._ended: deque[tuple[float, float]] = deque(maxlen=ENDED_CALLS_MAX)   # (ended, handle_s)
        self.boxes: dict[tuple[str, str, str], dict[str, Any]] = {}   # (site, floor, box) -> {status, lines}
        self.version = 0          # bumped on every change, so views know when to redraw
        self.rejected = 0         # messages that did not parse (counted, shown in the status bar)
        self.last_error: str | None = None

    # ------------------------------------------------------------------ input
    def apply(self, topic: str, payload: bytes, now: float) -> LineKey | None:
        """Take one message; returns the line it concerned (None for box/other topics).

        Malformed payloads are counted in `rejected` with `last_error` saying why; they
        never raise, because one bad publisher must not stop the supervisor's screen."""
        parts = topic.split("/")
        if len(parts) < 6 or parts[0] != "callcue" or parts[1] != "v1":
            return None
        site, floor, kind = parts[2], parts[3], parts[4]
        if not payload:           # a retained message being cleared
            if kind == "line" and len(parts) == 7 and parts[6] == "state":
                if self.lines.pop((site, floor, parts[5]), None) is not None:
                    self.version += 1
            return None
        try:
            if kind == "box" and len(parts) == 7:
                self._box(site, floor, parts[5], parts[6], payload)
                return None
            role = None
            if kind == "line" and len(parts) == 8 and parts[6] == "cmd":
                # line/{line}/cmd/{role}: only the ops that role may send count (as the box applies them)
                role = parts[7]
                if role not in ROLE_OPS:
                    return None
            elif kind != "line" or len(parts) != 7:
                return None
            key = (site, floor, parts[5])
            what = parts[6]
            handler = _HANDLERS.get(what)
            if handler is None:
                return None
            body = json.loads(payload)
            if not isinstance(body, dict):
                raise ValueError(f"payload is a JSON {type(body).__name__}, not an object")
            if role is not None and body.get("op") not in ROLE_OPS[role]:
                return None      # refused by the box too; a supervisor must not see it as done
            new = key not in self.lines
            line = self._line(key)
            try:
                handler(self, line, body, now)
            except BaseException:
                if new:                  # a bad first message must not leave an empty row behind
                    self.lines.pop(key, None)
                raise
            line.rev += 1
            self.version += 1
            return key
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self.rejected += 1
            self.last_error = f"{topic}: {type(exc).__name__}: {exc}"
            return None

    def _line(self, key: LineKey) -> Line:
        line = self.lines.get(key)
        if line is None:
            if len(self.lines) >= LINES_MAX:
                raise ValueError(f"more than {LINES_MAX} lines; ignoring new line {key}")
            line = self.lines[key] = Line(key)
        return line

    def _call(self, line: Line, call_id: str) -> Call:
        call = line.calls.get(call_id)
        if call is None:
            call = line.calls[call_id] = Call(call_id, line.key, agent=line.agent)
            while len(line.calls) > CALLS_PER_LINE:
                line.calls.popitem(last=False)
        return call

    def _box(self, site: str, floor: str, box: str, what: str, payload: bytes) -> None:
        info = self.boxes.setdefault((site, floor, box), {"status": "unknown", "lines": set()})
        if what == "status":
            info["status"] = payload.decode("utf-8", "replace").strip()
        elif what == "health":
            body = json.loads(payload)
            if isinstance(body, dict) and isinstance(body.get("lines"), dict):
                info["lines"] = set(body["lines"])
        else:
            return
        offline = info["status"] == "offline"
        for lid in info["lines"]:
            line = self.lines.get((site, floor, lid))
            if line is not None:
                line.box = box
                line.box_offline = offline
                line.rev += 1
        self.version += 1

    def touch(self, key: LineKey) -> None:
        """Mark a line changed from outside `apply` (an acknowledgement confirmed by the broker)."""
        line = self.lines.get(key)
        if line is not None:
            line.rev += 1
        self.version += 1

    def _on_state(self, line: Line, p: dict, now: float) -> None:
        status = p["status"]
        if status not in ("idle", "in_call", "down"):
            raise ValueError(f"unknown status {status!r}")
        since = parse_ts(p.get("since")) or now
        prev_call = line.call_id if line.status in ("in_call", "down") else None
        call_id = p.get("call_id")
        if prev_call and prev_call != call_id and prev_call in line.calls:
            self._end_call(line.calls[prev_call], since)
        line.agent = str(p.get("agent") or line.agent)
        line.status = status
        line.call_id = call_id
        line.since = since
        if status != "down":
            line.down_alert = None
        if call_id:
            call = self._call(line, call_id)
            call.agent = line.agent
            if call.started is None:
                call.started = since
            if status == "idle":
                self._end_call(call, since)
        if status == "idle" or not call_id:
            line.heard.clear()
            line.silence_at = None

    def _end_call(self, call: Call, when: float) -> None:
        if call.ended is None:
            call.ended = when
            call.partials.clear()
            if call.started is not None:
                self._ended.append((when, max(0.0, when - call.started)))

    def _on_alert(self, line: Line, p: dict, now: float) -> None:
        alert_id = str(p["id"])
        if alert_id in self._alerts:
            return
        kind = str(p["kind"])
        severity = p.get("severity") if p.get("severity") in SEVERITY_RANK else "warning"
        evidence = p.get("evidence") if isinstance(p.get("evidence"), dict) else {}
        a = Alert(id=alert_id, key=line.key, call_id=p.get("call_id"), kind=kind, severity=severity,
                  speaker=p.get("speaker"), t_start=float(p.get("t_start") or 0.0),
                  t_end=float(p.get("t_end") or 0.0), message=str(p.get("message") or kind),
                  evidence=evidence, ts=parse_ts(p.get("ts")), received=now)
        if kind == "agitation":
            a.level = agitation_level(evidence, severity)
        a.acked_by = self._pending_acks.pop(alert_id, None)
        self._alerts[alert_id] = a
        while len(self._alerts) > SEEN_IDS_MAX:
            self._alerts.popitem(last=False)
        self._feed.append(a)
        self._hour.append((now, kind))
        if a.call_id:
            call = self._call(line, a.call_id)
            if len(call.alerts) < CALL_ALERTS_MAX:
                call.alerts.append(a)
        if kind == "line_down":
            line.down_alert = a
        elif kind == "talk_over":
            line.heard["agent"] = line.heard["customer"] = now
            line.silence_at = None
        elif kind == "long_silence":
            line.silence_at = now
        elif kind in ("agitation", "fast_speech") and a.speaker in ("agent", "customer"):
            # raised when the speaker calms or slows: they were speaking until just now
            line.heard[a.speaker] = max(line.heard.get(a.speaker, 0.0), now - SPEAKING_WINDOW_S / 2)

    def _on_transcript(self, line: Line, p: dict, now: float) -> None:
        speaker = p["speaker"]
        if speaker not in ("agent", "customer"):
            raise ValueError(f"unknown speaker {speaker!r}")
        u = Utterance(speaker, str(p.get("text") or ""), bool(p.get("final")), float(p.get("t_start") or 0.0),
                      float(p.get("t_end") or 0.0), int(p.get("seq") or 0))
        call = self._call(line, str(p["call_id"]))
        if call.ended is None:
            line.heard[speaker] = now
            line.silence_at = None
        if not u.final:
            if call.ended is None:
                call.partials[speaker] = u
            return
        if u.seq in call._seqs:          # QoS 1 redelivery
            return
        call._seqs.add(u.seq)
        held = call.partials.get(speaker)
        if held is not None and held.t_start <= u.t_end + 0.5:
            del call.partials[speaker]
        call.finals.append(u)
        # finals of two speakers can arrive out of call order; keep the transcript in order
        i = len(call.finals) - 1
        while i > 0 and call.finals[i - 1].t_start > u.t_start:
            call.finals[i - 1], call.finals[i] = call.finals[i], call.finals[i - 1]
            i -= 1
        if len(call.finals) > TRANSCRIPT_MAX:
            for old in call.finals[: len(call.finals) - TRANSCRIPT_MAX]:
                call._seqs.discard(old.seq)
            del call.finals[: len(call.finals) - TRANSCRIPT_MAX]

    def _on_cmd(self, line: Line, p: dict, now: float) -> None:
        op = p.get("op")
        if op == "ack_alert":
            alert_id, by = str(p.get("alert_id") or ""), str(p.get("by") or "?")
            a = self._alerts.get(alert_id)
            if a is not None:
                a.acked_by = a.acked_by or by
            elif alert_id:
                self._pending_acks[alert_id] = by
                while len(self._pending_acks) > SEEN_IDS_MAX:
                    self._pending_acks.popitem(last=False)
        elif op == "flag":
            call_id = p.get("call_id") or line.call_id
            if call_id and p.get("reason") in ("coaching", "takeover"):
                flag = {"reason": p["reason"], "by": str(p.get("by") or "?"), "note": p.get("note"), "at": now}
                self._call(line, call_id).flags.append(flag)

    def _on_suggestion(self, line: Line, p: dict, now: float) -> None:
        call = self._call(line, str(p["call_id"]))
        sid = p.get("id")
        if sid is not None and any(s.get("id") == sid for s in call.suggestions):
            return
        call.suggestions.append({**p, "_received": now})

    def _on_flow(self, line: Line, p: dict, now: float) -> None:
        if not isinstance(p.get("steps", []), list):
            raise ValueError("flow.steps is not a list")
        self._call(line, str(p["call_id"])).flow = p

    def _on_summary(self, line: Line, p: dict, now: float) -> None:
        self._call(line, str(p["call_id"])).summary = p

    # ------------------------------------------------------------------ views
    def alert(self, alert_id: str) -> Alert | None:
        return self._alerts.get(alert_id)

    def feed(self, keys: set[LineKey] | None = None) -> list[Alert]:
        """Alerts newest first (optionally of some lines only)."""
        return [a for a in reversed(self._feed) if keys is None or a.key in keys]

    def line(self, key: LineKey) -> Line | None:
        return self.lines.get(key)

    def speaking(self, line: Line, now: float) -> str:
        if line.effective_status != "in_call":
            return ""
        who = [s for s in ("agent", "customer") if now - line.heard.get(s, -1e18) <= SPEAKING_WINDOW_S]
        if len(who) == 2:
            return "both"
        if who:
            return who[0]
        if line.silence_at is not None and now - line.silence_at <= SILENCE_SHOW_S:
            return "silence"
        return ""

    def mood(self, line: Line, now: float) -> float:
        call = line.in_call()
        if call is None:
            return 0.0
        best = 0.0
        for a in call.alerts:
            if a.kind == "agitation" and a.speaker == "customer":
                age = max(0.0, now - a.received)
                best = max(best, a.level * 0.5 ** (age / MOOD_HALF_LIFE_S))
        return best

    def row(self, line: Line, now: float) -> Row:
        status = line.effective_status
        live = line.in_call()
        # alerts of the last call stay open after hang-up until someone acknowledges them
        call = live or line.current
        open_ = call.open_alerts() if call else []
        if line.down_alert is not None and line.down_alert.acked_by is None and line.down_alert not in open_:
            open_ = open_ + [line.down_alert]
        worst = max((a.severity for a in open_), key=SEVERITY_RANK.__getitem__, default=None)
        mood = self.mood(line, now)
        flag = None
        if live and live.flags:
            flag = "takeover" if live.takeover else "coaching"
        weight = 1.0 if live else ENDED_WEIGHT
        risk = weight * sum(SEVERITY_RISK[a.severity] for a in open_) + MOOD_RISK * mood
        risk += DOWN_RISK if status == "down" else 0.0
        risk += TAKEOVER_RISK if flag == "takeover" else 0.0
        duration = live.call_time(now) if live else None
        return Row(key=line.key, agent=line.agent, status=status, duration=duration,
                   speaking=self.speaking(line, now), mood=mood, open_alerts=len(open_), worst=worst,
                   risk=risk, flag=flag, last_alert=open_[-1].kind if open_ else None)

    def rows(self, now: float) -> list[Row]:
        """Every line, riskiest first; then calls before idle lines, longest call first."""
        rows = [self.row(line, now) for line in self.lines.values()]
        order = {"in_call": 0, "down": 1, "idle": 2, "unknown": 3}
        rows.sort(key=lambda r: (-round(r.risk, 3), order.get(r.status, 4), -(r.duration or 0.0),
                                 r.key[0], r.key[1], natural_key(r.key[2])))
        return rows

    def stats(self, now: float, rows: list[Row] | None = None) -> Stats:
        while self._hour and now - self._hour[0][0] > HOUR_S:
            self._hour.popleft()
        by_kind: dict[str, int] = {}
        for _, kind in self._hour:
            by_kind[kind] = by_kind.get(kind, 0) + 1
        recent = [h for end, h in self._ended if now - end <= HOUR_S]
        counts = {"in_call": 0, "idle": 0, "down": 0}
        open_alerts = 0
        for line in self.lines.values():
            st = line.effective_status
            if st in counts:
                counts[st] += 1
        for r in rows if rows is not None else self.rows(now):
            open_alerts += r.open_alerts
        boxes = [b["status"] for b in self.boxes.values()]
        floors = tuple(sorted({k[:2] for k in self.lines}))
        return Stats(lines=len(self.lines), in_call=counts["in_call"], idle=counts["idle"], down=counts["down"],
                     open_alerts=open_alerts, alerts_last_hour=by_kind,
                     aht_s=sum(recent) / len(recent) if recent else None, aht_n=len(recent),
                     boxes_online=boxes.count("online"), boxes_offline=boxes.count("offline"), floors=floors)


_HANDLERS = {
    "state": FloorModel._on_state,
    "alert": FloorModel._on_alert,
    "transcript": FloorModel._on_transcript,
    "cmd": FloorModel._on_cmd,
    "suggestion": FloorModel._on_suggestion,
    "flow": FloorModel._on_flow,
    "summary": FloorModel._on_summary,
}
