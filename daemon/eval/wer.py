"""The one word error rate of callcue: `callcue score-asr` and the Whisper converter's
check (`callcue models check-whisper`, callcue.models.whisper_check) both count with it.

Words are compared after the usual English ASR scoring normalisation (as in Whisper's
evaluation): contractions expanded, one spelling of ok, case, punctuation and
apostrophes dropped, hyphens split, and numbers set aside (see wer_tokens). Errors are
the word-level edit distance (substitutions + deletions + insertions) to the reference.

Only the standard library and callcue.daemon.asr.words: models/ imports it at build time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..text import normalise

_NUMBER_WORDS = set("""zero oh one two three four five six seven eight nine ten eleven twelve thirteen
fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
ninety hundred thousand million first second third fourth fifth sixth seventh eighth ninth tenth
eleventh twelfth thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth
twentieth thirtieth point""".split())
_NUMBERISH = re.compile(r"^\d+(st|nd|rd|th|s)?$")


_CONTRACTIONS = [(re.compile(p, re.I), r) for p, r in (
    (r"\bcan't\b", "can not"), (r"\bwon't\b", "will not"), (r"n't\b", " not"), (r"'re\b", " are"),
    (r"'m\b", " am"), (r"'ll\b", " will"), (r"'ve\b", " have"), (r"'d\b", " would"),
    (r"\b(it|that|there|what|he|she|here|who|where|how|let)'s\b", r"\1 is"), (r"\blet is\b", "let us"),
    (r"\bcannot\b", "can not"), (r"\bokay\b", "ok"), (r"\bo\.k\.", "ok"))]


def standardise(text: str) -> str:
    """The usual English ASR scoring normalisation (as in Whisper's evaluation): expand
    contractions, one spelling of ok; case and punctuation go in normalise()."""
    for pat, rep in _CONTRACTIONS:
        text = pat.sub(rep, text)
    return text


def wer_tokens(text: str) -> list[str]:
    """Normalised words with numbers set aside: spoken ('nineteen sixty eight') and written
    ('1968', '9th') numbers are dropped from both sides, since Whisper writes digits where
    a script has words and scoring that as errors measures formatting, not hearing."""
    return [w for w in normalise(standardise(text).replace("-", " ")).split()
            if w not in _NUMBER_WORDS and not _NUMBERISH.match(w)]


def edit_distance(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words), on wer_tokens."""
    ref = wer_tokens(reference)
    return edit_distance(ref, wer_tokens(hypothesis)), len(ref)


def wer(reference: str, hypothesis: str) -> float:
    errors, n = word_errors(reference, hypothesis)
    return errors / n if n else float(errors > 0)


@dataclass
class Tally:
    """Errors and reference words summed over utterances (the WER of a set, not a mean of rates)."""

    errors: int = 0
    words: int = 0

    def add(self, reference: str, hypothesis: str) -> float:
        e, n = word_errors(reference, hypothesis)
        self.errors += e
        self.words += n
        return e / n if n else float(e > 0)

    @property
    def wer(self) -> float:
        return self.errors / self.words if self.words else 0.0
