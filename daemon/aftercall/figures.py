"""A call's conversation figures from its timeline (utterances and alerts), pure.

- talk_s per side: the union of that side's utterances (or the line's measured speech
  when it hands `speech_s`), talk_listen_ratio = agent / customer;
- silence_share: share of the call in which neither side speaks; dead_air_s and
  dead_air_share: silences of at least `min_gap_s` between speech (the ring-in before
  the first word and the hang-up after the last are not counted), long_silence alerts
  included;
- interruptions per side: talk_over alerts by interrupter, plus utterance overlaps of at
  least `min_overlap_s` that no alert covers (the later starter interrupts);
- longest_agent_monologue_s: the longest stretch the agent speaks with no customer
  utterance starting inside it (agent utterances less than 2 s apart joined);
- speaking_rate_syl_s per side: syllables (daemon/text.py) per second of utterance;
- agitation_s per side: seconds covered by agitation alerts.
"""
from __future__ import annotations

from typing import Any

from ..text import syllables
from .record import Alert, CallRecord, Utterance

SIDES = ("agent", "customer")
MONOLOGUE_JOIN_S = 2.0


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _length(spans: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in spans)


def _overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def interruptions(utts: list[Utterance], alerts: list[Alert], min_overlap_s: float) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {s: [] for s in SIDES}
    talk = [a for a in alerts if a.kind == "talk_over"]
    for a in talk:
        who = a.evidence.get("interrupter") or a.speaker
        if who in out:
            out[who].append({"t": round(a.t_start, 2), "overlap_s": a.evidence.get("overlap_s"), "by": "alert"})
    ordered = sorted(utts, key=lambda u: u.t_start)
    for i, u in enumerate(ordered):
        for v in ordered[:i]:
            if v.speaker == u.speaker or u.speaker not in out:
                continue
            ov = min(u.t_end, v.t_end) - u.t_start
            if u.t_start >= v.t_start and ov >= min_overlap_s:
                span = (u.t_start, u.t_start + ov)
                if not any(_overlaps(span, (a.t_start - 0.5, a.t_end + 0.5)) for a in talk):
                    out[u.speaker].append({"t": round(u.t_start, 2), "overlap_s": round(ov, 2), "by": "utterances"})
    return out


def call_figures(record: CallRecord, min_gap_s: float = 5.0, min_overlap_s: float = 1.0) -> dict[str, Any]:
    utts = [u for u in record.utterances if u.t_end > u.t_start]
    duration = max(record.length, max((u.t_end for u in utts), default=0.0))
    per_side = {s: _union([(u.t_start, u.t_end) for u in utts if u.speaker == s]) for s in SIDES}
    talk = {s: _length(per_side[s]) for s in SIDES}
    if record.speech_s:
        talk.update({s: float(v) for s, v in record.speech_s.items() if s in talk})
    speech = _union([(u.t_start, u.t_end) for u in utts])
    spoken = _length(speech)
    gaps = [(speech[k][1], speech[k + 1][0]) for k in range(len(speech) - 1)]
    dead = [g for g in gaps if g[1] - g[0] >= min_gap_s]
    dead += [(a.t_start, a.t_end) for a in record.alerts if a.kind == "long_silence"]
    dead = _union(dead)
    inter = interruptions(utts, record.alerts, min_overlap_s)
    # monologues: agent speech joined over short pauses, broken by any customer utterance starting
    cust_starts = sorted(u.t_start for u in utts if u.speaker == "customer")
    longest, cur = 0.0, None
    for u in sorted((u for u in utts if u.speaker == "agent"), key=lambda u: u.t_start):
        if cur is not None and u.t_start - cur[1] <= MONOLOGUE_JOIN_S and \
                not any(cur[0] < t < u.t_start for t in cust_starts):
            cur = (cur[0], max(cur[1], u.t_end))
        else:
            cur = (u.t_start, u.t_end)
        longest = max(longest, cur[1] - cur[0])
    rate = {}
    for s in SIDES:
        secs = sum(u.t_end - u.t_start for u in utts if u.speaker == s)
        syl = sum(syllables(u.text) for u in utts if u.speaker == s)
        rate[s] = round(syl / secs, 2) if secs > 0 else None
    agit = {s: round(_length(_union([(a.t_start, a.t_end) for a in record.alerts
                                     if a.kind == "agitation" and a.speaker == s])), 1) for s in SIDES}
    return {
        "duration_s": round(duration, 1),
        "talk_s": {s: round(v, 1) for s, v in talk.items()},
        "talk_listen_ratio": round(talk["agent"] / talk["customer"], 2) if talk["customer"] > 0 else None,
        "silence_share": round(max(0.0, 1.0 - spoken / duration), 3) if duration > 0 else None,
        "dead_air_s": round(_length(dead), 1),
        "dead_air_share": round(_length(dead) / duration, 3) if duration > 0 else None,
        "longest_silence_s": round(max((b - a for a, b in gaps), default=0.0), 1),
        "interruptions": {s: len(v) for s, v in inter.items()},
        "longest_agent_monologue_s": round(longest, 1),
        "speaking_rate_syl_s": rate,
        "fast_speech_alerts": sum(1 for a in record.alerts if a.kind == "fast_speech"),
        "agitation_s": agit,
    }
