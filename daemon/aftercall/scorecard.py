"""The QA scorecard: the pack's QA form (qa.yaml) judged on one call.

Each item gets a share 0..1 of its weight from what the call left behind (flow steps,
alerts, the timeline's figures, offers, the ticket); an item that does not apply to the
call (no offer fitted, the customer never agitated, no flow) is shown but left out, and
the weights of the rest are scaled to 100. Every item carries the evidence it rests on.
"""
from __future__ import annotations

from typing import Any

from .forms import (AgitationItem, DeadAirItem, FlowStepsItem, InterruptionsItem, OffersItem, QaForm,
                    RequiredPhrasesItem, SensitiveWordsItem, SpeakingRateItem, TicketItem, text_in)
from .figures import interruptions
from .record import CallRecord


def _clamp(x: float) -> float:
    return max(0.0, min(1.0, x))


def _linear(v: float, full: float, zero: float) -> float:
    """1 at `full`, 0 at `zero`, linear between (either direction)."""
    if full == zero:
        return 1.0 if v == full else 0.0
    return _clamp((v - zero) / (full - zero))


class Judge:
    def __init__(self, record: CallRecord, figures: dict[str, Any], required_ids: list[str],
                 ticket: dict[str, Any] | None, required_fields: list[str], lang: str | None):
        self.r = record
        self.fig = figures
        self.required_ids = required_ids
        self.ticket = ticket
        self.required_fields = required_fields
        self.lang = lang

    def __call__(self, item) -> tuple[float | None, dict[str, Any]]:
        """(share of the item's points, or None when it does not apply; evidence)."""
        return getattr(self, "_" + item.judge)(item)

    def _flow_steps(self, item: FlowStepsItem):
        fl = self.r.flow
        if fl is None or not fl.steps:
            return None, {"reason": "no flow"}
        c = fl.completion
        return _linear(c, item.full_at, item.zero_at), {
            "flow": fl.flow, "completion": round(c, 3),
            "missed": [s.title for s in fl.steps if not s.done]}

    def _required_phrases(self, item: RequiredPhrasesItem):
        judged = item.phrases or self.required_ids
        if not judged:
            return None, {"reason": "no required phrases"}
        missing = [a for a in self.r.alerts if a.kind == "missing_phrase" and a.evidence.get("required") in judged]
        ids = sorted({a.evidence.get("required") for a in missing})
        return 1.0 - len(ids) / len(judged), {
            "judged": list(judged),
            "missing": [{"id": a.evidence.get("required"), "title": a.evidence.get("title"), "t": round(a.t_start, 2)}
                        for a in missing]}

    def _sensitive_words(self, item: SensitiveWordsItem):
        hits = [a for a in self.r.alerts if a.kind == "sensitive_word"
                and (item.speaker == "any" or a.speaker == item.speaker)]
        lost = sum(item.per_hit * (2 if a.severity == "critical" else 1) for a in hits)
        return _clamp(1.0 - lost), {"hits": [{"phrase": a.evidence.get("phrase"), "speaker": a.speaker,
                                              "severity": a.severity, "t": round(a.t_start, 2)} for a in hits]}

    def _interruptions(self, item: InterruptionsItem):
        inter = interruptions(self.r.utterances, self.r.alerts, item.min_overlap_s)
        n = len(inter["agent"])
        return _clamp(1.0 - item.per_extra * max(0, n - item.allowed)), {
            "agent": n, "customer": len(inter["customer"]), "allowed": item.allowed, "times": inter["agent"]}

    def _dead_air(self, item: DeadAirItem):
        share = self.fig.get("dead_air_share")
        if share is None:
            return None, {"reason": "empty call"}
        return _linear(share, item.full_at, item.zero_at), {
            "dead_air_share": share, "dead_air_s": self.fig.get("dead_air_s"), "min_gap_s": item.min_gap_s,
            "longest_silence_s": self.fig.get("longest_silence_s")}

    def _speaking_rate(self, item: SpeakingRateItem):
        rate = (self.fig.get("speaking_rate_syl_s") or {}).get("agent")
        alerts = [a for a in self.r.alerts if a.kind == "fast_speech" and a.speaker in ("agent", None)]
        if rate is None and not alerts:
            return None, {"reason": "the agent did not speak"}
        limit = item.max_syl_s.get(self.lang or "en") or item.max_syl_s.get("en")
        share = 1.0 - item.per_alert * len(alerts)
        if rate is not None and limit is not None and rate > limit:
            share -= 0.5
        return _clamp(share), {"agent_syl_s": rate, "limit_syl_s": limit, "fast_speech_alerts": len(alerts),
                               "times": [round(a.t_start, 2) for a in alerts]}

    def _agitation_handled(self, item: AgitationItem):
        ag = [a for a in self.r.alerts if a.kind == "agitation" and a.speaker == "customer"]
        if not ag:
            return None, {"reason": "the customer was not agitated"}

        def level(a) -> float:
            ev = a.evidence
            return float(ev.get("pitch_up_st") or 0.0) + 0.5 * float(ev.get("loudness_up_db") or 0.0)

        peak = max(ag, key=level)
        last = max(ag, key=lambda a: a.t_end)
        end = self.r.length
        calm_for = end - last.t_end
        if calm_for >= item.calm_s:
            share = 1.0
        elif last is not peak and level(last) < 0.7 * level(peak):
            share = 0.5           # still agitated near the end, but less than at the peak
        else:
            share = 0.0
        return share, {"peak_t": round(peak.t_start, 2), "peak_level": round(level(peak), 2),
                       "last_t": round(last.t_end, 2), "last_level": round(level(last), 2),
                       "calm_before_end_s": round(calm_for, 1), "alerts": len(ag)}

    def _offers(self, item: OffersItem):
        fitted = [o for o in self.r.offers if o.fitted_t is not None or o.made_t is not None]
        if not fitted:
            return None, {"reason": "no offer fitted"}
        made = [o for o in fitted if o.made_t is not None]
        return len(made) / len(fitted), {"fitted": [o.id for o in fitted], "made": [o.id for o in made],
                                         "missed": [o.id for o in fitted if o.made_t is None]}

    def _ticket_complete(self, item: TicketItem):
        t = self.ticket
        if t is None:
            return None, {"reason": "no ticket template"}
        required = self.required_fields
        if not required:
            return None, {"reason": "no required fields"}
        missing = t["missing_required"]
        return 1.0 - len(missing) / len(required), {"required": required, "missing": missing}


def scorecard(form: QaForm | None, record: CallRecord, figures: dict[str, Any], required_ids: list[str],
              ticket: dict[str, Any] | None, required_fields: list[str], lang: str | None) -> dict[str, Any]:
    if form is None:
        return {"form": None, "score": None, "passed": None, "items": [], "figures": figures}
    judge = Judge(record, figures, required_ids, ticket, required_fields, lang)
    items = []
    got = total = 0.0
    for item in form.items:
        share, evidence = judge(item)
        applies = share is not None
        points = round(item.weight * share, 2) if applies else None
        if applies:
            got += item.weight * share
            total += item.weight
        items.append({"id": item.id, "title": text_in(item.title, lang), "judge": item.judge, "weight": item.weight,
                      "applies": applies, "points": points, "evidence": evidence})
    score = round(100.0 * got / total, 1) if total else None
    return {"form": form.id, "score": score, "passed": None if score is None else score >= form.pass_mark,
            "items": items, "figures": figures}
