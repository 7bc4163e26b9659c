"""The after-call output of a replayed call rebuilt from the messages the pipeline published,
for a summary that lacks it (a pipeline from before the after-call wiring: its summary has
no QA score and no timeline figures). The same `AfterCall` of the content pack judges the
call; the record is what the messages say (final transcripts as published, i.e. redacted;
alerts; the last flow state; knowledge and offer suggestions; offers made from the
summary). A call the assist engine was off for (its language unknown to the model) gets
none: without a transcript there is nothing to score.
"""
from __future__ import annotations

from datetime import date
from typing import Any, Callable

from ..aftercall.record import Alert, CallRecord, FlowRecord, OfferRecord, Pushed, Step, Utterance


def needs_aftercall(summary: dict[str, Any] | None) -> bool:
    sc = (summary or {}).get("scorecard") or {}
    return summary is not None and "score" not in sc and "figures" not in sc and sc.get("assist") != "off"


def record_from_messages(msgs: list, summary: dict[str, Any], call_date: date, duration_s: float,
                         agent: str | None, ivr: dict[str, Any] | None) -> CallRecord:
    utts, alerts, pushed, fitted, titles, flow = [], [], [], {}, {}, None
    for m in msgs:
        p = m.payload if isinstance(m.payload, dict) else None
        if p is None:
            continue
        if m.output == "transcript" and p.get("final"):
            utts.append(Utterance(p["speaker"], p.get("text") or "", float(p["t_start"]), float(p["t_end"])))
        elif m.output == "alert":
            alerts.append(Alert.from_payload(p))
        elif m.output == "suggestion" and p.get("kind") == "knowledge":
            pushed.append(Pushed(p.get("kb_topic") or "", p.get("title") or "", float(p.get("t") or 0.0), p.get("article")))
        elif m.output == "suggestion" and p.get("kind") == "offer" and p.get("offer"):
            fitted.setdefault(p["offer"], float(p.get("t") or 0.0))
            titles[p["offer"]] = p.get("title") or p["offer"]
        elif m.output == "flow" and p.get("flow"):
            flow = p
    sc = summary.get("scorecard") or {}
    made = set((sc.get("offers") or {}).get("made") or [])
    offers = [OfferRecord(o, titles.get(o, o), fitted.get(o), duration_s if o in made else None)
              for o in sorted(set(fitted) | made)]
    fl = None
    if flow is not None:
        fl = FlowRecord(flow["flow"], flow.get("lang"),
                        tuple(Step(s["id"], s.get("title") or s["id"], bool(s.get("done"))) for s in flow.get("steps") or []),
                        flow.get("branch"), flow.get("call_type"), flow.get("branch_by"))
    return CallRecord(call_id=summary["call_id"], call_date=call_date, utterances=utts, alerts=alerts,
                      lang=sc.get("language"), ivr=ivr, flow=fl, knowledge=pushed, offers=offers,
                      duration_s=duration_s, agent=agent, pack=sc.get("pack"))


def complete_summary(summary: dict[str, Any], msgs: list, content, redact: Callable[[str], str] | None,
                     call_date: date, duration_s: float, agent: str | None, ivr: dict[str, Any] | None) -> dict[str, Any]:
    """The summary with the after-call summary, ticket, scorecard and call type filled in."""
    ac = getattr(content, "aftercall", None)
    if ac is None:
        return summary
    out = ac.finish(record_from_messages(msgs, summary, call_date, duration_s, agent, ivr), redact=redact)
    return {**summary, "summary": out["summary"], "ticket": out["ticket"], "scorecard": out["scorecard"],
            "call_type": out["call_type"] or summary.get("call_type")}
