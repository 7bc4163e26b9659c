"""Whisper's looping failure: a final that ends by saying its own words again.

Given too little audio after the speech, Whisper (greedy, no temperature fallback in
sherpa-onnx) sometimes starts the utterance over: "Can you tell me why I was charged twice
this month? Can you tell me why", or one clause over and over until sherpa-onnx's cap of
six tokens per second of audio stops it. The repeat is always at the end and runs to
the end, so that is the only place this looks: a tail of at least MIN_TAIL words that
continues a run of at least MIN_PERIOD words immediately before it (the run said again,
whole or cut short) is dropped. Pure text logic, no I/O.
"""
from __future__ import annotations

import re

MIN_PERIOD = 3      # "thank you, thank you" and "no no no" are speech, not a loop
MIN_TAIL = 3

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)


def _key(word: str) -> str:
    m = _WORD.findall(word.lower())
    return " ".join(m)


def trim_repeat(text: str) -> tuple[str, int]:
    """(text without a trailing self-repeat, how many words were dropped)."""
    words = text.split()
    keys = [_key(w) for w in words]
    n = len(words)
    # the shortest kept prefix wins: try cut points from the left
    for cut in range(MIN_PERIOD, n - MIN_TAIL + 1):
        tail = keys[cut:]
        for period in range(MIN_PERIOD, cut + 1):
            start = cut - period
            if keys[start] == tail[0] and all(tail[j] == keys[start + j % period] for j in range(len(tail))):
                return " ".join(words[:cut]), n - cut
    return text, 0


def trim_tokens(tokens: tuple[str, ...], kept_text: str) -> int:
    """How many of the model's tokens spell `kept_text` (tokens concatenate to the text)."""
    want = len(kept_text.strip())
    acc = ""
    for i, tok in enumerate(tokens):
        if len(acc.strip()) >= want:
            return i
        acc += tok
    return len(tokens)
