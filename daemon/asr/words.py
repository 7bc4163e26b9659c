"""Sensitive words: phrases that raise a `sensitive_word` alert when heard.

Word list file (`callcue replay --rules words.txt`, site config `asr.sensitive_words`):
one phrase per line, UTF-8; blank lines and `#` comments ignored. A line may start
with a speaker (`agent:` or `customer:`) to match only that side; otherwise both.
The assist engine turns the list into rule-pack sensitive words (assist/setup.py), so
matching is its error-tolerant one: English by normalised words, Chinese by characters
and pinyin. Each phrase alerts at most once per utterance (partials and the final of
one utterance count as one). No I/O besides reading the list.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..text import normalise
from ..yamlfile import ConfigError


@dataclass(frozen=True, slots=True)
class Phrase:
    text: str                 # as written in the list
    tokens: tuple[str, ...]   # normalised
    speaker: str | None       # None = either side
    severity: str = "warning"


@dataclass(frozen=True, slots=True)
class Hit:
    phrase: Phrase
    speaker: str
    start_token: int          # index in the normalised tokens of the text
    n_tokens: int


def load_words(path: str | Path) -> list[Phrase]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"{path}: word list not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    phrases = []
    for n, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        speaker = None
        m = re.match(r"^(agent|customer)\s*:\s*(.+)$", line, re.I)
        if m:
            speaker, line = m.group(1).lower(), m.group(2)
        tokens = tuple(normalise(line).split())
        if not tokens:
            raise ConfigError(f"{path}:{n}: phrase {raw.strip()!r} has no letters or digits to match")
        phrases.append(Phrase(line, tokens, speaker))
    return phrases


class WordSpotter:
    """Finds listed phrases in one channel's transcripts, once per utterance, with the
    assist engine's error-tolerant matching (scorers use it to count what was said)."""

    def __init__(self, phrases: list[Phrase], speaker: str):
        from ..assist.match import PhraseSet
        self.phrases = [p for p in phrases if p.speaker in (None, speaker)]
        self.speaker = speaker
        self._set = PhraseSet((p.text, p) for p in self.phrases)
        self._said: dict[int, set[str]] = {}     # utterance id -> phrases already found

    def find(self, text: str, utterance: int) -> list[Hit]:
        if not self.phrases:
            return []
        done = self._said.setdefault(utterance, set())
        hits = []
        for f in self._set.find(text):
            if f.item.text not in done:
                done.add(f.item.text)
                hits.append(Hit(f.item, self.speaker, f.start, f.length))
        if len(self._said) > 64:   # utterances are short-lived; keep the memory bounded
            for old in sorted(self._said)[:-32]:
                del self._said[old]
        return hits
