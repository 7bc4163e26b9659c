"""Text helpers shared by recognition, assist and evaluation: is this Chinese, which
language a line is in, the word normaliser, and the syllable count.

Chinese is told by its characters: CJK Unified Ideographs, Extension A and the
Compatibility Ideographs (U+4E00-9FFF, U+3400-4DBF, U+F900-FAFF). Every regex that
needs "a Chinese character" is built from CJK_RANGES, so they all agree.
"""
from __future__ import annotations

import re
import unicodedata

# for use inside a regex character class: [CJK_RANGES], [^\w CJK_RANGES]
CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_CHAR = re.compile(f"[{CJK_RANGES}]")
CJK_RUN = re.compile(f"[{CJK_RANGES}]+")

_LATIN_LETTER = re.compile(r"[A-Za-z]")
_NON_WORD = re.compile(rf"[^\w{CJK_RANGES}]+")
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds at least one Chinese character."""
    return CJK_CHAR.search(text) is not None


def cjk_count(text: str) -> int:
    """How many Chinese characters ``text`` holds."""
    return len(CJK_CHAR.findall(text))


def dominant_lang(text: str) -> str | None:
    """'zh' when Chinese characters dominate (one character weighs like three Latin
    letters, about a short English word), 'en' otherwise; None when there is too little
    to tell (no Chinese character and fewer than three Latin letters)."""
    cjk = cjk_count(text)
    latin = len(_LATIN_LETTER.findall(text))
    if cjk == 0 and latin < 3:
        return None
    return "zh" if cjk * 3 >= latin else "en"


def normalise(text: str) -> str:
    """Lower case, NFKC, punctuation to spaces, CJK characters spaced apart."""
    t = unicodedata.normalize("NFKC", text).lower().replace("'", "")
    t = _NON_WORD.sub(" ", t)
    t = CJK_CHAR.sub(lambda m: f" {m.group(0)} ", t)
    return " ".join(t.split())


def syllables(text: str) -> int:
    """Syllables in a line of speech, any language or a mix: one per Chinese character,
    English vowel groups per word (a silent final e aside, at least one per word), one
    per digit of a number."""
    n = cjk_count(text)
    for word in normalise(CJK_CHAR.sub(" ", text)).split():
        if word.isdigit():
            n += len(word)
            continue
        groups = len(_VOWEL_GROUPS.findall(word))
        if word.endswith("e") and not word.endswith(("le", "ee")) and groups > 1:
            groups -= 1
        n += max(1, groups)
    return n
