"""Phrase matching that tolerates recognition errors.

Text becomes a list of *units*: an English word becomes its lower-case light stem
("claims" -> "claim", "cancelled" -> "cancel"), a Chinese character becomes the set of
its toneless main pinyin reading with the common flat/retroflex merges (zh/z, ch/c, sh/s,
-ing/-in, -eng/-en). Two units match when they share a reading, so a homophone the
recogniser wrote instead of the right character (理陪 for 理赔) still matches, and so
does the right character itself.

English numbers in digits become the words said for them ("1990" -> nineteen ninety,
"$500" -> five hundred dollars; numbers.py), so a list written in words matches what
Whisper writes in digits, and the other way round.

`PhraseSet` finds listed phrases as contiguous unit runs; `content_units` is the
bag-of-words view that similar.py compares example utterances with. Pure, no I/O.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, Hashable, Iterable, TypeVar

from pypinyin import Style, pinyin

from ..text import CJK_CHAR, CJK_RANGES
from .numbers import spoken, words_for_symbols

T = TypeVar("T")
Unit = frozenset[str]

_TOKEN = re.compile(f"[{CJK_RANGES}]|[a-z0-9]+")
SHORT_CJK = 2     # Chinese phrases this short match a homophone only on word edges

# Retroflex/flat and front/back nasal confusions are the usual Mandarin ASR (and accent) slips.
_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"))
_FINALS = (("ing", "in"), ("eng", "en"))

EN_STOP = frozenset("""a an the and or but if so to of in on at for from by with about as is are was were be been
being am do does did have has had i me my you your we our us it its this that these those there here what which who
whom can could would should will shall may might must just please okay ok yes no not um uh well oh hi hello right
now then than very really also like get got im youre thats dont can't cant let lets go going want need know see
one some any all""".split())
ZH_STOP = frozenset("的了吗呢吧啊呀嗯哦是我你您他她它们这那个一下在有就也都和与及还要会能可以请问好".replace("", " ").split())


def _fuzzy(reading: str) -> str:
    for a, b in _INITIALS:
        if reading.startswith(a):
            reading = b + reading[len(a):]
            break
    for a, b in _FINALS:
        if reading.endswith(a):
            reading = reading[: -len(a)] + b
            break
    return reading


@lru_cache(maxsize=65536)
def char_unit(ch: str) -> Unit:
    # the character's main reading only: with every reading of every polyphone, short
    # phrases matched unrelated speech (追尾 in 核对一下 via 追=duī, 尾=yǐ); the same
    # character always gets the same reading, so exact characters still always match
    readings = pinyin(ch, style=Style.NORMAL, heteronym=False, errors="ignore")
    got = {_fuzzy(r) for r in (readings[0] if readings else []) if r}
    return frozenset(got or {ch})


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A deliberately light English stemmer: plural, past and -ing forms meet their base
    (file/filed/filing -> fil, cancel/cancelled -> cancel, policy/policies -> policy)."""
    if word.isdigit() or len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("ing") and len(word) > 5:
        word = word[:-3]
    elif word.endswith("ied") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("ed") and len(word) > 4:
        word = word[:-2]
    elif word.endswith("es") and word[-3] in "sxz" and len(word) > 4:
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2]:
        word = word[:-1]
    return word


# Short function words are what recognisers swap most ("date on birth" for "date of
# birth", "an email" for "the email"): inside a phrase, any word of a class matches any other.
_FUNCTION_CLASS = {**{w: "<prep>" for w in "of on in at to for from by with into onto".split()},
                   **{w: "<art>" for w in "a an the".split()}}


@lru_cache(maxsize=131072)
def _token_unit(tok: str) -> Unit:
    if CJK_CHAR.match(tok):
        return char_unit(tok)
    return frozenset((_FUNCTION_CLASS.get(tok) or stem(tok),))


def _clean(text: str) -> str:
    return words_for_symbols(unicodedata.normalize("NFKC", text)).lower().replace("'", "").replace("’", "")


def _spans(clean: str) -> Iterable[tuple[str, tuple[int, int]]]:
    """(token, its span in the cleaned text): CJK characters one by one, latin words whole,
    a number in digits as the words said for it (each word with the number's span)."""
    for m in _TOKEN.finditer(clean):
        tok = m.group(0)
        said = spoken(tok) if tok[0].isdigit() else None
        if said is None:
            yield tok, m.span()
        else:
            for w in said:
                yield w, m.span()


def units(text: str) -> list[Unit]:
    return Heard.of(text).units


class Heard:
    """A text as matching sees it: units, each unit's span in the cleaned text, and (only
    when asked) the Chinese word edges: a short Chinese phrase heard through homophones
    must start and end on them, so 律师 (lǜshī) does not match across 免赔率|是 (…lǜ shì)."""

    __slots__ = ("clean", "units", "spans", "_edges")

    def __init__(self, clean: str, units: list[Unit], spans: list[tuple[int, int]]):
        self.clean = clean
        self.units = units
        self.spans = spans
        self._edges: set[int] | None = None

    @classmethod
    def of(cls, text: str) -> "Heard":
        clean = _clean(text)
        us, spans = [], []
        for tok, span in _spans(clean):
            us.append(_token_unit(tok))
            spans.append(span)
        return cls(clean, us, spans)

    def edges(self) -> set[int]:
        if self._edges is None:
            import jieba
            jieba.setLogLevel(60)
            self._edges = {e for _, a, b in jieba.tokenize(self.clean) for e in (a, b)}
        return self._edges


def content_units(text: str) -> list[str]:
    """Bag-of-words view for similarity: English stems (stopwords out) and, for Chinese,
    pairs of neighbouring characters' readings (single syllables are too ambiguous: 什 and
    申 are both "sen" once flattened), pairs of two stop characters left out."""
    out = []
    prev, prev_end = "", -1          # previous CJK character and where it ended ("" after a word)
    for tok, (start, end) in _spans(_clean(text)):
        if CJK_CHAR.match(tok):
            if prev and start == prev_end and not (prev in ZH_STOP and tok in ZH_STOP):
                out.append(min(char_unit(prev)) + "_" + min(char_unit(tok)))
            prev, prev_end = tok, end
            continue
        prev = ""
        if tok not in EN_STOP:
            out.append(stem(tok))
    return out


@dataclass(frozen=True, slots=True)
class Found(Generic[T]):
    item: T
    start: int        # unit index in the heard text
    length: int


class PhraseSet(Generic[T]):
    """Many phrases, each tagged with an item; finds every item whose phrase occurs in a text.

    Indexed by the phrase's first two readings (one-unit phrases by their only one), so a
    position of the text is checked only against phrases that start like it."""

    def __init__(self, entries: Iterable[tuple[str, T]]):
        # values: (units, item, the phrase's characters when it is a short Chinese phrase, else None)
        self._one: dict[str, list[tuple[tuple[Unit, ...], T, str | None]]] = {}
        self._two: dict[tuple[str, str], list[tuple[tuple[Unit, ...], T, str | None]]] = {}
        self.size = 0
        for phrase, item in entries:
            us = tuple(units(phrase))
            if not us:
                continue
            self.size += 1
            chars = "".join(CJK_CHAR.findall(_clean(phrase)))
            entry = (us, item, chars if chars and len(us) <= SHORT_CJK else None)
            if len(us) == 1:
                for r in us[0]:
                    self._one.setdefault(r, []).append(entry)
            else:
                for r1 in us[0]:
                    for r2 in us[1]:
                        self._two.setdefault((r1, r2), []).append(entry)

    def find(self, text: "str | Heard") -> list[Found[T]]:
        """Items whose phrase occurs (first occurrence each; an item with several phrases reported once)."""
        h = Heard.of(text) if isinstance(text, str) else text
        us = h.units
        found: dict[int, Found[T]] = {}
        n = len(us)
        one, two = self._one, self._two
        for i, u in enumerate(us):
            cands = [e for r in u for e in one.get(r, ())]
            if i + 1 < n:
                nxt = us[i + 1]
                cands += [e for r1 in u for r2 in nxt for e in two.get((r1, r2), ())]
            for phrase, item, short in cands:
                k = len(phrase)
                if i + k > n or id(item) in found:
                    continue
                if k > 2 and not all(phrase[j] & us[i + j] for j in range(2, k)):
                    continue
                if short is not None and not self._on_edges(h, i, k, short):
                    continue
                found[id(item)] = Found(item, i, k)
        return sorted(found.values(), key=lambda f: f.start)

    @staticmethod
    def _on_edges(h: "Heard", i: int, k: int, chars: str) -> bool:
        """A short Chinese phrase heard through a homophone must sit on word edges (the
        exact characters always count)."""
        a, b = h.spans[i][0], h.spans[i + k - 1][1]
        if h.clean[a:b] == chars:
            return True
        edges = h.edges()
        return a in edges and b in edges


class PhraseIndex:
    """Several named phrase groups searched in one pass (the engine checks a final
    utterance against every rule, flow and offer at once): find() -> {group: [Found]}."""

    def __init__(self, entries: Iterable[tuple[Hashable, str, object]]):
        tags: dict[tuple, tuple] = {}
        pairs = []
        for group, phrase, item in entries:
            tag = tags.setdefault((group, id(item)), (group, item))   # one object per (group, item): reported once
            pairs.append((phrase, tag))
        self._set: PhraseSet[tuple] = PhraseSet(pairs)

    def find(self, text: "str | Heard") -> dict[Hashable, list[Found]]:
        out: dict[Hashable, list[Found]] = {}
        for f in self._set.find(text):
            group, item = f.item
            out.setdefault(group, []).append(Found(item, f.start, f.length))
        return out
