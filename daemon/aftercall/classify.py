"""Call type: which ticket template files the call.

In order: the flow branch the call ran (itself chosen by the IVR, the customer's words
or the agent's steps), the IVR intent, then the customer's own words against each
template's `for.phrases` (the template with clearly the most hits, earlier words
weighing more). A call none of these places gets the pack's default template and no
call type.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..assist.match import Heard, PhraseSet
from .forms import TicketTemplate, phrases_of
from .record import CallRecord


@dataclass(frozen=True, slots=True)
class CallType:
    template: TicketTemplate | None
    call_type: str | None           # template id; None when no template fits
    confidence: float
    by: str                         # branch | ivr | customer | default | none


class Classifier:
    def __init__(self, templates: list[TicketTemplate]):
        self.templates = [t for t in templates if not t.abstract]
        self.default = next((t for t in self.templates if t.default), None)
        self.words = PhraseSet((p, t.id) for t in self.templates if not t.default for p in phrases_of(t.calls.phrases))
        self.by_id = {t.id: t for t in self.templates}

    def classify(self, record: CallRecord, heard: dict[int, Heard] | None = None) -> CallType:
        fl = record.flow
        words, score = self._words(record)
        if fl is not None and fl.branch:
            t = next((t for t in self.templates if fl.branch in t.calls.branches), None)
            if t is not None:
                if fl.branch_by == "customer" and words is not None and words.template is not t and \
                        score.get(t.id, 0.0) == 0.0:
                    # the flow took the first intent phrase it heard ("漏水" in "the leak claim, where
                    # is it up to?"); the customer's words as a whole point to another type
                    return words
                return CallType(t, t.id, 0.9, "branch")
        intent = record.ivr_intent
        if intent:
            t = next((t for t in self.templates if intent in t.calls.ivr), None)
            if t is not None:
                return CallType(t, t.id, 0.85, "ivr")
        if words is not None:
            return words
        if self.default is not None:
            return CallType(self.default, None, 0.0, "default")
        return CallType(None, None, 0.0, "none")

    def _words(self, record: CallRecord) -> tuple[CallType | None, dict[str, float]]:
        """The template the customer's words point to clearly (earlier words weigh more)."""
        score: dict[str, float] = {}
        customer = [u for u in sorted(record.utterances, key=lambda u: u.t_start) if u.speaker == "customer"]
        for k, u in enumerate(customer):
            weight = 1.0 / (1.0 + 0.25 * k)
            for hit in {f.item for f in self.words.find(u.text)}:
                score[hit] = score.get(hit, 0.0) + weight
        if not score:
            return None, score
        ranked = sorted(score.items(), key=lambda kv: -kv[1])
        best, s1 = ranked[0]
        s2 = ranked[1][1] if len(ranked) > 1 else 0.0
        if s1 >= 0.5 and s1 >= 1.5 * s2:
            conf = min(0.8, 0.5 + 0.3 * (s1 - s2) / s1)
            return CallType(self.by_id[best], best, round(conf, 2), "customer"), score
        return None, score
