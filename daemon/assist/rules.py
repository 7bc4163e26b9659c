"""Rule pack checks for one call: sensitive words and required phrases.

`CompiledRules` is built once per pack (phrase sets); `RuleCall` holds one call's
state. Both are pure: heard utterances and clock ticks in, `Finding`s out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..text import has_cjk
from .match import Heard as Text, PhraseSet
from .pack import RequiredPhrase, RulePack, SensitiveWord
from .similar import Examples


@dataclass(frozen=True, slots=True)
class Heard:
    """One recognition result as the assist engine sees it (text already redacted)."""

    speaker: str            # agent | customer
    text: str
    final: bool
    t_start: float          # call seconds
    t_end: float
    utterance: int          # same for the partials and the final of one utterance
    units: Text | None = None   # the text as matching sees it


@dataclass(frozen=True, slots=True)
class Finding:
    """An alert the rules raise (turned into a contract alert by the engine)."""

    kind: str               # sensitive_word | missing_phrase
    severity: str
    speaker: str | None
    t_start: float
    t_end: float
    message: str
    evidence: dict[str, Any]


def _sides(who: str) -> tuple[str, ...]:
    return ("agent", "customer") if who == "any" else (who,)


class CompiledRules:
    def __init__(self, pack: RulePack, grace_s: float, embed: Callable | None = None):
        self.pack = pack
        self.grace_s = grace_s    # recognition delay allowed before a within_s deadline is judged
        pairs = [(r.id, e) for r in pack.required_phrases for e in r.examples]
        # the embedder is English-only: Chinese examples are compared by words alone
        self.examples_en = Examples.build([p for p in pairs if not has_cjk(p[1])], embed)
        self.examples_zh = Examples.build([p for p in pairs if has_cjk(p[1])], None)
        self.sensitive = {side: PhraseSet((w.phrase, w) for w in pack.sensitive_words if side in _sides(w.speaker))
                          for side in ("agent", "customer")}
        self.required = pack.required_phrases

    def entries(self):
        """(group, phrase, item) for the content's one-pass PhraseIndex."""
        for side in ("agent", "customer"):
            for w in self.pack.sensitive_words:
                if side in _sides(w.speaker):
                    yield ("sensitive", side), w.phrase, w
            for r in self.required:
                if side in _sides(r.speaker):
                    yield from ((("say", side), p, r) for p in r.say_any)
                if side in _sides(r.before_speaker):
                    yield from ((("before", side), p, r) for p in r.before_any)


@dataclass
class RuleCall:
    rules: CompiledRules
    said: dict[str, float] = field(default_factory=dict)           # required id -> call time first heard
    heard_upto: dict[str, float] = field(default_factory=dict)     # speaker -> latest final's start
    raised: set[str] = field(default_factory=set)                  # required ids already alerted
    spotted: dict[tuple[str, int], set[str]] = field(default_factory=dict)   # (speaker, utterance) -> phrases

    def heard(self, h: Heard, hits: dict | None = None, hunits: list[str] | None = None,
              vec=None) -> list[Finding]:
        """`hits`: the content's PhraseIndex result for this (final) utterance; partials
        are only checked for sensitive words, with the smaller per-speaker set. `hunits` and
        `vec` (content units, sentence embedding) let an utterance close to a required
        phrase's example count as saying it."""
        out: list[Finding] = []
        done = self.spotted.setdefault((h.speaker, h.utterance), set())
        if hits is None:
            hits = {("sensitive", h.speaker): self.rules.sensitive[h.speaker].find(h.units)}
        for f in hits.get(("sensitive", h.speaker), ()):
            w: SensitiveWord = f.item
            if w.phrase in done:
                continue
            done.add(w.phrase)
            who = "Agent" if h.speaker == "agent" else "Customer"
            out.append(Finding("sensitive_word", w.severity, h.speaker, h.t_start, h.t_end,
                               f"{who} said “{w.phrase}”" + (f": {w.reason}" if w.reason else ""),
                               {"phrase": w.phrase, "heard": h.text, "final": h.final, "reason": w.reason}))
        if len(self.spotted) > 64:   # only recent utterances can still get partials
            for key in list(self.spotted)[:-32]:
                del self.spotted[key]
        if not h.final:
            return out   # deadlines are judged on final text only: partials still change
        self.heard_upto[h.speaker] = max(self.heard_upto.get(h.speaker, 0.0), h.t_start)
        for f in hits.get(("say", h.speaker), ()):
            self.said.setdefault(f.item.id, h.t_start)
        if hunits is not None:
            open_ids = {r.id for r in self.rules.required if r.id not in self.said and h.speaker in _sides(r.speaker)}
            if open_ids:
                for ex in (self.rules.examples_en, self.rules.examples_zh):
                    for rid, score in ex.best(hunits, vec if ex is self.rules.examples_en else None, open_ids).items():
                        if score >= 1.0:
                            self.said.setdefault(rid, h.t_start)
        for f in hits.get(("before", h.speaker), ()):
            r: RequiredPhrase = f.item
            if r.id in self.raised or (r.id in self.said and self.said[r.id] <= h.t_start):
                continue
            self.raised.add(r.id)
            out.append(self._missing(r, h.t_start, h.t_end, f"before “{' '.join(h.text.split()[:12])}”",
                                     {"deadline": "before", "trigger": h.text}))
        return out

    def tick(self, t: float) -> list[Finding]:
        """Deadlines judged by call time t. A within_s phrase is judged once a later utterance
        of its speaker has been recognised (results come in order per speaker, so everything
        said before the deadline is in), or when the recognition grace has run out; so a
        recogniser running behind on a busy box never makes a said greeting look missing."""
        out = []
        for r in self.rules.required:
            if r.within_s is None or r.id in self.raised or (r.id in self.said and self.said[r.id] <= r.within_s):
                continue
            later = max((self.heard_upto.get(s, 0.0) for s in _sides(r.speaker)), default=0.0) > r.within_s
            if later or t >= r.within_s + self.rules.grace_s:
                self.raised.add(r.id)
                out.append(self._missing(r, 0.0, r.within_s, f"within the first {r.within_s:g} s",
                                         {"deadline": "within_s", "within_s": r.within_s}))
        return out

    def close(self, t: float) -> list[Finding]:
        out = self.tick(float("inf"))
        for r in self.rules.required:
            if r.at_end and r.id not in self.said and r.id not in self.raised:
                self.raised.add(r.id)
                out.append(self._missing(r, t, t, "before the end of the call", {"deadline": "at_end"}))
        return out

    def _missing(self, r: RequiredPhrase, t0: float, t1: float, when: str, ev: dict) -> Finding:
        return Finding("missing_phrase", r.severity, r.speaker if r.speaker != "any" else None, t0, t1,
                       f"{r.title}: not said {when}", {"required": r.id, "title": r.title,
                                                        "say_any": r.say_any[:3], **ev})
