"""What a call leaves behind, as plain data: the input of `AfterCall.finish`.

The line keeps the call's final utterances (both channels, text NOT redacted: it never
leaves the box in this form; AfterCall redacts every piece of evidence it publishes)
and its alerts, and hands them over with the assist session at call end:

    record = CallRecord.from_assist(session, utterances, alerts, call_date=..., duration_s=...)
    out = AfterCall(content).finish(record, redact=line_redact, mask_personal=False)

Everything is also buildable by hand (tests, replays of stored calls).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterable


@dataclass(frozen=True, slots=True)
class Utterance:
    """One final recognition result."""

    speaker: str                # agent | customer
    text: str                   # as recognised, NOT redacted
    t_start: float              # call seconds
    t_end: float
    lang: str | None = None     # en | zh when known


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert raised during the call (prosody or assist), as published."""

    kind: str                   # long_silence | talk_over | fast_speech | agitation | sensitive_word | missing_phrase
    speaker: str | None
    t_start: float
    t_end: float
    severity: str = "warning"
    evidence: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> "Alert":
        """From a contract alert payload (line/{line}/alert)."""
        return cls(p["kind"], p.get("speaker"), float(p.get("t_start") or 0.0), float(p.get("t_end") or 0.0),
                   p.get("severity") or "warning", dict(p.get("evidence") or {}))


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    title: str
    done: bool
    t: float | None = None      # call time it was done


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """The flow the call ran and how far it got."""

    flow: str
    lang: str | None
    steps: tuple[Step, ...]                 # the call's path (opening, branch, closing)
    branch: str | None = None               # branch id = call type of the flow
    branch_title: str | None = None
    branch_by: str | None = None            # ivr | customer | agent

    @property
    def completion(self) -> float:
        return sum(s.done for s in self.steps) / len(self.steps) if self.steps else 0.0


@dataclass(frozen=True, slots=True)
class Pushed:
    """A knowledge article pushed to the agent."""

    topic: str
    title: str
    t: float
    article: str | None = None


@dataclass(frozen=True, slots=True)
class OfferRecord:
    """An offer that fitted (suggested) and/or was made."""

    id: str
    title: str
    fitted_t: float | None = None
    made_t: float | None = None


@dataclass
class CallRecord:
    call_id: str
    call_date: date                                     # the site's LOCAL date at call start ("yesterday" is from it)
    utterances: list[Utterance]
    alerts: list[Alert] = field(default_factory=list)
    lang: str | None = None                             # en | zh (the assist session's, else guessed from the text)
    ivr: dict[str, Any] | None = None                   # ivr_context data: {intent, lang, ...}
    flow: FlowRecord | None = None
    knowledge: list[Pushed] = field(default_factory=list)
    offers: list[OfferRecord] = field(default_factory=list)
    duration_s: float | None = None                     # call length (default: the last utterance's end)
    speech_s: dict[str, float] | None = None            # measured speech per side (VAD), when the line has it
    agent: str | None = None
    pack: str | None = None
    # sentence vectors the assist engine computed live for the customer's first utterances
    # (English, embedder loaded): utterance start (call seconds, 2 decimals) -> unit vector
    vectors: dict[float, Any] = field(default_factory=dict)

    @property
    def ivr_intent(self) -> str | None:
        v = (self.ivr or {}).get("intent")
        return str(v) if v else None

    @property
    def length(self) -> float:
        if self.duration_s is not None:
            return float(self.duration_s)
        return max((u.t_end for u in self.utterances), default=0.0)

    @classmethod
    def from_assist(cls, session, utterances: Iterable[Utterance], alerts: Iterable[Alert | dict] | None = None, *,
                    call_date: date, duration_s: float | None = None, speech_s: dict[str, float] | None = None,
                    agent: str | None = None) -> "CallRecord":
        """From the call's AssistSession (flow, pushes, offers, language, IVR) plus what the line kept.
        `alerts`: the call's published alerts (payload dicts or Alert); None = only the session's own."""
        state = session.flow.state()
        flow = None
        if state["flow"] is not None:
            done = session.flow.done
            steps = tuple(Step(s["id"], s["title"], s["done"], done.get(s["id"])) for s in state["steps"])
            extra = state["extra"]
            flow = FlowRecord(state["flow"], extra.get("lang"), steps, extra.get("branch"), extra.get("call_type"),
                              extra.get("branch_by"))
        pushed = [Pushed(p.get("kb_topic") or "", p.get("title") or "", float(p.get("t") or 0.0), p.get("article"))
                  for p in session.pushed if p.get("kind") == "knowledge"]
        oc = session.offers
        titles = {oid: o.title for oid, o in oc.compiled.offers.items()}
        offers = [OfferRecord(oid, titles.get(oid, oid), oc.fitted.get(oid), oc.made.get(oid))
                  for oid in sorted(set(oc.fitted) | set(oc.made))]
        if alerts is None:
            got = [Alert(f.kind, f.speaker, f.t_start, f.t_end, f.severity, dict(f.evidence)) for f in session.findings]
        else:
            got = [a if isinstance(a, Alert) else Alert.from_payload(a) for a in alerts]
        return cls(call_id=session.call_id, call_date=call_date, utterances=list(utterances), alerts=got,
                   lang=session.lang, ivr=dict(session.ivr_data) if session.ivr_data else None, flow=flow,
                   knowledge=pushed, offers=offers, duration_s=duration_s, speech_s=speech_s, agent=agent,
                   pack=session.content.name,
                   vectors={round(float(t), 2): v for t, v in getattr(session, "request_vectors", ())})
