"""Word and character n-grams, and what each says about a set of classes (the call types
of classify.py). Pure.

A term (English: a stem or a pair of neighbouring stems; Chinese: a character, a pair of
characters, a pair of their toned readings) votes for the classes in proportion to how
often each class's documents hold it, weighted by how much it tells them apart (one minus
the normalised entropy of that split: a term of one class counts fully, a term of all of
them, "policy", not at all) and by how often it was seen (a term of one document is less
sure). A BACKGROUND class takes the words of any call (greeting, identity check, closing):
a term it shares votes that much less, and what it would get is dropped.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Iterable

import numpy as np
from pypinyin import Style, pinyin

from ..assist.bm25 import EN_VARIANTS, ZH_STOP_WORDS, en_terms
from ..assist.match import ZH_STOP, stem
from ..text import CJK_RUN, has_cjk

BACKGROUND = "_every_call"  # the words of any call
SINGLE_CHAR = 0.5           # a Chinese character alone votes this much of a pair
SEEN_HALF = 2.0             # a term seen in this many documents votes half as much as a well-known one

# a speaker's utterances that carry votes, in order: the opening request counts most; later ones LATE each
OPENING = (1.0, 0.55, 0.4, 0.3)
LATE = 0.2
FULL_VOTES = 1.2            # an utterance with this much vote counts in full; less, proportionally
SHARPEN = 2.0               # an utterance's votes are shared out in proportion to their square


def share_out(v: np.ndarray, weight: float) -> np.ndarray:
    """One utterance's votes as its share of the evidence: sharpened, scaled by how much
    it said (FULL_VOTES) and by its position's weight."""
    total = float(v.sum())
    if total <= 0.0:
        return np.zeros_like(v)
    sharp = v ** SHARPEN
    return weight * min(1.0, total / FULL_VOTES) * (sharp / sharp.sum())


def terms(text: str) -> list[str]:
    """The n-grams an utterance is scored on: English stems and stem pairs; Chinese
    characters, character pairs and pairs of their readings (a homophone the recogniser
    wrote still meets its pair). No word segmenter: pairs of characters carry the words, at
    a few microseconds per utterance. Numbers (digits said one by one) are left out."""
    if not has_cjk(text):
        ws = [w for w in en_terms(text) if w not in _NUMBER_WORDS and not w.isdigit()]
        return ws + [f"{a}|{b}" for a, b in zip(ws, ws[1:])] + _negated(text)
    text = unicodedata.normalize("NFKC", text).lower()
    out: list[str] = []
    for run in CJK_RUN.findall(text):
        sounds = [_reading(ch) for ch in run]
        for i, ch in enumerate(run):
            if ch not in ZH_STOP and ch not in _ZH_NUMERALS:
                out.append(ch)
            if i + 1 < len(run):
                nxt = run[i + 1]
                if (ch in ZH_STOP and nxt in ZH_STOP) or (ch in _ZH_NUMERALS and nxt in _ZH_NUMERALS) \
                        or ch + nxt in ZH_STOP_WORDS:
                    continue
                out.append(ch + nxt)
                out.append(f"~{sounds[i]}|{sounds[i + 1]}")
    return out + en_terms(CJK_RUN.sub(" ", text))


_WORD = re.compile(r"[a-z]+")
_NEG_SKIP = frozenset("""a an the be been being am is are was were have has had do does did to it its this that my your
our their his her me you him them us any anything really even actually at all quite very so too yet still been going
gonna get got""".split())
_NEGATOR = frozenset("not no never cannot without dont doesnt didnt wont cant isnt arent wasnt werent havent hasnt "
                     "hadnt wouldnt shouldnt couldnt nobody nothing longer".split())


def _negated(text: str) -> list[str]:
    """English negation kept as a term: the first content word within three words after
    a negator, marked ("won't be needing it" -> "~need", "haven't heard" -> "~heard"); the
    stopword filter would otherwise drop the "not"."""
    words = _WORD.findall(text.lower().replace("'", "").replace("\u2019", ""))
    out = []
    for i, w in enumerate(words):
        if w not in _NEGATOR:
            continue
        for nxt in words[i + 1:i + 4]:
            if nxt in _NEGATOR:
                break
            if nxt in _NEG_SKIP or nxt in _NUMBER_WORDS:
                continue
            out.append("~" + stem(EN_VARIANTS.get(nxt, nxt)))
            break
    return out


# numbers say nothing about what a call is for (and spoken digits are many)
_NUMBER_WORDS = frozenset("""zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen
fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand
double triple""".split())
_ZH_NUMERALS = frozenset("零〇一二三四五六七八九十百千万两幺")


@lru_cache(maxsize=65536)
def _reading(ch: str) -> str:
    """The character's main reading WITH its tone: toneless, 买了 (buy) would meet 卖了 (sold)."""
    got = pinyin(ch, style=Style.TONE3, heteronym=False, errors="ignore")
    return got[0][0] if got and got[0] else ch


class Votes:
    """Each term's share of votes for each class (call types, or an enum field's options),
    and its weight.

    `rate[c, t]` = weighted share of class c's documents holding term t; a term's vote goes
    to the classes in proportion to their rates (smoothed), weighted by 1 - the normalised
    entropy of that split (a term of one class: 1; of all alike: 0), by the share it does
    NOT have in the background (words of any call), and by how often it was seen at all (a
    term of one document is less sure)."""

    def __init__(self, types: list[str], docs: Iterable[tuple[str, str, float]]):
        """`docs`: (class, text, weight); class BACKGROUND for words of any call."""
        self.types = types
        # one more column: the words of every call (greeting, identity check, closing, the
        # common fields' cues); a term shared with it votes less, and what it gets is dropped
        types = [*types, BACKGROUND]
        col = {t: i for i, t in enumerate(types)}
        counts: dict[str, np.ndarray] = {}
        seen: Counter = Counter()
        size = np.zeros(len(types))
        for tid, text, w in docs:
            ts = set(terms(text))
            if not ts:
                continue
            size[col[tid]] += w
            for t in ts:
                row = counts.get(t)
                if row is None:
                    row = counts[t] = np.zeros(len(types))
                row[col[tid]] += w
                seen[t] += 1
        self.vocab = {t: i for i, t in enumerate(counts)}
        k = len(types)
        if not counts or k < 2:
            self.share = np.zeros((0, k - 1))
            self.weight = np.zeros(0)
            return
        rate = np.stack([counts[t] for t in counts]) / np.maximum(size, 1e-9)
        floor = 0.5 / max(float(size[size > 0].mean()), 1.0)      # as if half a document of every class
        sm = rate + floor
        share = sm / sm.sum(axis=1, keepdims=True)
        background = share[:, -1]
        q = share[:, :-1] / share[:, :-1].sum(axis=1, keepdims=True)   # split among the real classes
        ent = -(q * np.log(q)).sum(axis=1) / math.log(k - 1) if k > 2 else np.zeros(len(counts))
        n = np.array([seen[t] for t in counts], dtype=float)
        self.share = q
        # one Chinese character alone is ambiguous (地 of 当地 and of 地址): pairs carry the words
        single = np.array([SINGLE_CHAR if len(t) == 1 and has_cjk(t) else 1.0 for t in counts])
        self.weight = np.clip(1.0 - ent, 0.0, 1.0) * (1.0 - background) * n / (n + SEEN_HALF) * single

    def votes_of(self, weights: dict[str, float]) -> np.ndarray:
        """Votes of terms each with its own weight (term -> weight)."""
        ids, ws = [], []
        for t, w in weights.items():
            j = self.vocab.get(t)
            if j is not None:
                ids.append(j)
                ws.append(w)
        if not ids:
            return np.zeros(len(self.types))
        return ((self.weight[ids] * np.array(ws))[:, None] * self.share[ids]).sum(axis=0)

    def votes(self, text: str) -> np.ndarray:
        ids = [j for j in (self.vocab.get(t) for t in dict.fromkeys(terms(text))) if j is not None]
        if not ids:
            return np.zeros(len(self.types))
        return (self.weight[ids, None] * self.share[ids]).sum(axis=0)
