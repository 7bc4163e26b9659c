"""Call type: which ticket template files the call.

In order: the flow branch the call ran (itself chosen by the IVR, the customer's words
or the agent's steps), the IVR intent, then the call's own evidence for each template:
the customer's words against its `for.phrases` and the intent phrases of its branches
(earlier words weigh more), the knowledge topics pushed (`for.knowledge`) and its
branches' steps done; the template with clearly the most wins. That evidence also
overrules a branch the flow took from a stray phrase when it says nothing for that
branch. A call none of these places gets the pack's default template and no call type.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..assist.match import Heard, PhraseSet
from .extract import with_contractions
from .forms import TicketTemplate, phrases_of
from .record import CallRecord


@dataclass(frozen=True, slots=True)
class CallType:
    template: TicketTemplate | None
    call_type: str | None           # template id; None when no template fits
    confidence: float
    by: str                         # branch | ivr | customer | default | none


class Classifier:
    def __init__(self, templates: list[TicketTemplate], flows: list = ()):
        self.templates = [t for t in templates if not t.abstract]
        self.default = next((t for t in self.templates if t.default), None)
        pairs = []
        self.steps: dict[str, str] = {}          # branch step id -> template id
        for t in self.templates:
            if t.default:
                continue
            own = phrases_of(t.calls.phrases)
            intents = []
            for f in flows:
                for b in f.branches:
                    if b.id in t.calls.branches:
                        intents += [p for p in b.intent if p not in own]
                        self.steps.update({st.id: t.id for st in b.steps})
            # the template's own words are chosen to tell call types apart; the flow's intent
            # phrases (an incident word is said in a status call too) count half
            pairs += [(v, (t.id, 1.0)) for v in with_contractions(list(dict.fromkeys(own)))]
            pairs += [(v, (t.id, 0.5)) for v in with_contractions(list(dict.fromkeys(intents)))]
        self.words = PhraseSet(pairs)
        self.topics = {k: t.id for t in self.templates for k in t.calls.knowledge}
        self.by_id = {t.id: t for t in self.templates}

    def classify(self, record: CallRecord, heard: dict[int, Heard] | None = None) -> CallType:
        fl = record.flow
        words, score = self._words(record)
        if fl is not None and fl.branch:
            t = next((t for t in self.templates if fl.branch in t.calls.branches), None)
            if t is not None:
                if fl.branch_by != "ivr" and words is not None and words.template is not t and \
                        score.get(words.call_type, 0.0) >= max(1.0, 1.5 * score.get(t.id, 0.0)):
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
        """The template the call's own evidence points to clearly: the customer's words
        (earlier ones weigh more), articles pushed, the template's branch steps done."""
        score: dict[str, float] = {}
        customer = [u for u in sorted(record.utterances, key=lambda u: u.t_start) if u.speaker == "customer"]
        for k, u in enumerate(customer):
            weight = 1.0 / (1.0 + 0.25 * k)
            got: dict[str, float] = {}
            for f in self.words.find(u.text):
                tid, w = f.item
                got[tid] = max(got.get(tid, 0.0), w)
            for tid, w in got.items():
                score[tid] = score.get(tid, 0.0) + weight * w
        for p in record.knowledge:
            tid = self.topics.get(p.topic)
            if tid is not None:
                score[tid] = score.get(tid, 0.0) + 0.5
        if record.flow is not None:
            for st in record.flow.steps:
                tid = self.steps.get(st.id)
                if st.done and tid is not None:
                    score[tid] = score.get(tid, 0.0) + 0.5
        if not score:
            return None, score
        ranked = sorted(score.items(), key=lambda kv: -kv[1])
        best, s1 = ranked[0]
        s2 = ranked[1][1] if len(ranked) > 1 else 0.0
        if s1 >= 0.5 and s1 >= 1.5 * s2:
            conf = min(0.8, 0.5 + 0.3 * (s1 - s2) / s1)
            return CallType(self.by_id[best], best, round(conf, 2), "customer"), score
        return None, score
