"""The call type's flow steps, found again at call end in what was said.

Live, the flow follows only the branch it chose (from the first intent phrase heard, or
the agent's first step of a branch), and none at all when nothing chose one; a call filed
as another type (aftercall/classify.py) then has none of its own branch's steps done,
and the ticket fields that rest on them (resolution "resolved" once the agent confirms the
change, requested_action "payment" once a card payment is taken) lose that evidence. Here
the steps of the branches the chosen template files are matched on the whole call the
way the flow matches them (a keyword heard, or most of an example's content words, by
the step's speaker). Pure; built once per content version.
"""
from __future__ import annotations

from typing import Callable

from ..assist.match import Heard, PhraseSet, content_units
from ..assist.similar import Examples
from .extract import with_contractions
from .record import CallRecord, Step


class BranchSteps:
    def __init__(self, flows: list):
        self.steps: dict[tuple[str, str], list] = {}        # (lang, branch id) -> its steps
        entries, pairs = [], []
        for f in flows:
            for b in f.branches:
                self.steps.setdefault((f.lang, b.id), []).extend(b.steps)
                for st in b.steps:
                    entries += [(v, st.id) for v in with_contractions(list(st.keywords))]
                    pairs += [(st.id, e) for e in st.examples]
        self.keywords = PhraseSet(entries) if entries else None
        self.examples = Examples.build(pairs, None) if pairs else None

    def done(self, record: CallRecord, branches: list[str], lang: str | None,
             heard: Callable[[str], Heard] = Heard.of) -> list[Step]:
        """Steps of `branches` said in the call, each with the call time it was first said."""
        wanted = {st.id: st for (fl, b), sts in self.steps.items() if b in branches and (lang is None or fl == lang)
                  for st in sts}
        if not wanted:
            return []
        found: dict[str, Step] = {}
        for u in sorted(record.utterances, key=lambda u: (u.t_start, u.t_end)):
            open_ids = {i for i, st in wanted.items() if i not in found and st.speaker in (u.speaker, "any")}
            if not open_ids:
                continue
            hit = {f.item for f in self.keywords.find(heard(u.text))} & open_ids if self.keywords is not None else set()
            if self.examples is not None:
                hit |= {i for i, sc in self.examples.best(content_units(u.text), None, open_ids).items() if sc >= 1.0}
            for i in hit:
                found[i] = Step(i, wanted[i].title, True, u.t_start)
        return list(found.values())
