"""Whisper's looping failure: a final that ends by saying its own words again.

Given too little audio after the speech, Whisper (greedy, no temperature fallback in
sherpa-onnx) sometimes starts the utterance over: "Can you tell me why I was charged twice
this month? Can you tell me why", or one clause over and over until sherpa-onnx's cap of
six tokens per second of audio stops it. Two shapes are dropped:
- trim_repeat: a tail of at least MIN_TAIL words that continues a run of at least
  MIN_PERIOD words immediately before it (the run said again, whole or cut short);
- a loop (_loop_mask): a run of at least MIN_PERIOD words said LOOP_TIMES times or more in a
  row anywhere ("the only time I'm writing, the only time I'm writing, the only time I'm
  writing, the protection ..."): the loop stopped and the model went on; the last copy stays.
drop_loops does both and keeps the model's tokens that spell what is left.
Pure text logic, no I/O.
"""
from __future__ import annotations

import re

MIN_PERIOD = 3      # "thank you, thank you" and "no no no" are speech, not a loop
MIN_TAIL = 3
LOOP_TIMES = 3      # a clause said twice can be speech ("I'm sorry, I'm sorry"); three times in a row is the model

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


def _loop_mask(keys: list[str]) -> list[bool]:
    n = len(keys)
    keep = [True] * n
    i = 0
    while i < n:
        for period in range(MIN_PERIOD, (n - i) // LOOP_TIMES + 1):
            reps = 1
            while keys[i + reps * period:i + (reps + 1) * period] == keys[i:i + period]:
                reps += 1
            if reps >= LOOP_TIMES:
                # the last copy stays: its punctuation joins what the model said next
                keep[i:i + (reps - 1) * period] = [False] * ((reps - 1) * period)
                i += reps * period - 1
                break
        i += 1
    return keep


def drop_loops(text: str, tokens: tuple[str, ...]) -> tuple[str, tuple[int, ...], int]:
    """Both repairs on a final: (text, indices of the tokens that spell it, words dropped).
    The tokens concatenate to the text (leading space included)."""
    words = text.split()
    middle = _loop_mask([_key(w) for w in words])
    kept = [w for w, k in zip(words, middle) if k]
    trimmed, tail = trim_repeat(" ".join(kept))
    n_kept = len(kept) - tail
    keep_word = [False] * len(words)
    for i in [i for i, k in enumerate(middle) if k][:n_kept]:
        keep_word[i] = True
    return trimmed, _token_indices(tokens, keep_word), len(words) - n_kept


def _token_indices(tokens: tuple[str, ...], keep_word: list[bool]) -> tuple[int, ...]:
    """Tokens whose first visible character lies in a kept word (words = whitespace-split)."""
    out, word, in_word = [], -1, False
    for i, tok in enumerate(tokens):
        first = None
        for ch in tok:
            if ch.isspace():
                in_word = False
                continue
            if not in_word:
                word += 1
                in_word = True
            if first is None:
                first = word
        if first is not None and 0 <= first < len(keep_word) and keep_word[first]:
            out.append(i)
    return tuple(out)
