"""Guided call flows: which flow a call runs, which steps are done, what comes next.

A step is done when its speaker says one of its keywords (error-tolerant phrase match),
or an utterance close enough to one of its examples: most of the example's content
words heard (overlap), or, for English when the embedder is loaded, a sentence
embedding close to the example's. The branch (call type) is chosen by the IVR intent
at call start, else by the customer's words, else by the agent starting a branch's
steps. Pure: the engine hands in utterances with their units and embedding.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .similar import OVERLAP_MIN, Examples
from .pack import Branch, Flow, Step
from .rules import Heard

INTENT_OVERLAP_MIN = 0.75


class CompiledFlow:
    """A flow's phrase sets and example vectors, built once per content pack."""

    def __init__(self, flow: Flow, embed: Callable[[list[str]], np.ndarray] | None):
        self.flow = flow
        self.steps: dict[str, Step] = {s.id: s for s in flow.steps + flow.closing}
        self.branch_of: dict[str, str] = {}
        for b in flow.branches:
            for s in b.steps:
                self.steps[s.id] = s
                self.branch_of[s.id] = b.id

        use = embed if flow.lang == "en" else None   # the embedder is English-only
        self.examples = Examples.build([(s.id, e) for s in self.steps.values() for e in s.examples], use)
        self.intent_examples = Examples.build([(b.id, k) for b in flow.branches for k in b.intent], use)
        self.branches: dict[str, Branch] = {b.id: b for b in flow.branches}

    def entries(self):
        """(group, phrase, item) for the content's one-pass PhraseIndex."""
        fid = self.flow.id
        for s in self.steps.values():
            yield from ((("step", fid), k, s.id) for k in s.keywords)
        for b in self.flow.branches:
            yield from ((("intent", fid), k, b.id) for k in b.intent)

    def path(self, branch: str | None) -> list[Step]:
        middle = self.branches[branch].steps if branch else []
        return list(self.flow.steps) + list(middle) + list(self.flow.closing)


@dataclass
class FlowCall:
    """One call's progress through its flow."""

    flows: list[CompiledFlow]
    ivr_intent: str | None = None
    flow: CompiledFlow | None = None
    branch: str | None = None
    branch_by: str | None = None                 # ivr | customer | agent
    done: dict[str, float] = field(default_factory=dict)     # step id -> call time
    suggested: set[str] = field(default_factory=set)

    def select(self, lang: str | None) -> bool:
        """Pick the flow (IVR intent first, else the language's default); True when newly chosen."""
        if self.flow is not None:
            return False
        cands = [f for f in self.flows if lang is None or f.flow.lang == lang]
        chosen = None
        if self.ivr_intent:
            hits = [f for f in cands if self.ivr_intent in f.flow.ivr]
            hits = hits or [f for f in cands if any(self.ivr_intent in b.ivr for b in f.flow.branches)]
            if lang is None and len({f.flow.lang for f in hits}) > 1:
                return False      # the intent exists in several languages: wait for the first words
            chosen = hits[0] if hits else None
        if chosen is None and lang is not None:
            chosen = next((f for f in cands if f.flow.default), None)
        if chosen is None:
            return False
        self.flow = chosen
        if self.ivr_intent:
            b = next((b for b in chosen.flow.branches if self.ivr_intent in b.ivr), None)
            if b is not None:
                self.branch, self.branch_by = b.id, "ivr"
        return True

    def heard(self, h: Heard, hunits: list[str], vec: np.ndarray | None, hits: dict) -> list[tuple[str, float]]:
        """Steps completed by this final utterance: [(step id, score)]. May also choose the branch."""
        f = self.flow
        if f is None or not h.final:
            return []
        if self.branch is None and h.speaker == "customer" and f.branches:
            said = hits.get(("intent", f.flow.id))
            if said:
                self.branch, self.branch_by = said[0].item, "customer"
            else:
                scores = f.intent_examples.best(hunits, vec, set(f.branches))
                best = max(scores.items(), key=lambda kv: kv[1], default=None)
                if best is not None and best[1] >= INTENT_OVERLAP_MIN / OVERLAP_MIN:
                    self.branch, self.branch_by = best[0], "customer"
        open_ids = {s.id for s in self._candidates() if s.id not in self.done and s.speaker in (h.speaker, "any")}
        if not open_ids:
            return []
        scores: dict[str, float] = {}
        for hit in hits.get(("step", f.flow.id), ()):
            if hit.item in open_ids:
                scores[hit.item] = max(scores.get(hit.item, 0.0), 2.0)
        for sid, sc in f.examples.best(hunits, vec, open_ids).items():
            scores[sid] = max(scores.get(sid, 0.0), sc)
        out = []
        for sid, sc in sorted(scores.items(), key=lambda kv: -kv[1]):
            if sc < 1.0:
                continue
            if sid in f.branch_of and self.branch is None:
                self.branch, self.branch_by = f.branch_of[sid], "agent"
            elif sid in f.branch_of and f.branch_of[sid] != self.branch:
                continue
            self.done[sid] = h.t_start
            out.append((sid, min(1.0, sc / 2.0)))
        return out

    def _candidates(self) -> list[Step]:
        f = self.flow
        if f is None:
            return []
        if self.branch is not None:
            return f.path(self.branch)
        # before the call type is known, only a branch's first step may choose it: later
        # steps share wording across call types (a claim number is asked for in several)
        return f.path(None) + [b.steps[0] for b in f.flow.branches]

    def next_step(self) -> Step | None:
        if self.flow is None:
            return None
        path = self.flow.path(self.branch)
        last = max((i for i, s in enumerate(path) if s.id in self.done), default=-1)
        later = [s for s in path[last + 1:] if s.id not in self.done]
        if later:
            return later[0]
        return next((s for s in path if s.id not in self.done), None)

    def state(self) -> dict[str, Any]:
        f = self.flow
        if f is None:
            return {"flow": None, "steps": [], "completion": 0.0, "next_step": None, "extra": {}}
        path = f.path(self.branch)
        steps = [{"id": s.id, "title": s.title, "done": s.id in self.done} for s in path]
        nxt = self.next_step()
        b = f.branches.get(self.branch) if self.branch else None
        return {"flow": f.flow.id, "steps": steps,
                "completion": sum(1 for s in steps if s["done"]) / len(steps) if steps else 0.0,
                "next_step": {"id": nxt.id, "title": nxt.title, "script": nxt.script} if nxt else None,
                "extra": {"title": f.flow.title, "lang": f.flow.lang, "branch": self.branch,
                          "call_type": b.title if b else None, "branch_by": self.branch_by}}
