"""Is an utterance close to one of some example utterances?

Two signals, each against its own threshold: the share of an example's content words
(English stems, Chinese pairs of readings; match.content_units) that were heard, and,
for English when the embedder is loaded, the sentence-embedding cosine. Used for flow
steps, branch intents and required phrases. Pure.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable

import numpy as np

from .match import content_units

OVERLAP_MIN = 0.55     # share of an example's content words that must be heard
SEMANTIC_MIN = 0.62    # cosine to an example (English embedder)


class Examples:
    """Examples of several targets, for overlap and embedding similarity in one go. An
    inverted index (content unit -> examples holding it) means a heard utterance only
    touches the examples it shares words with."""

    def __init__(self, owners: list[str], units: list[list[str]], vectors: np.ndarray | None):
        self.owners = owners
        self.sizes = [len(u) for u in units]
        self.vectors = vectors
        self.index: dict[str, list[tuple[int, int]]] = {}
        for i, us in enumerate(units):
            for u, n in Counter(us).items():
                self.index.setdefault(u, []).append((i, n))

    @classmethod
    def build(cls, pairs: list[tuple[str, str]], embed: Callable[[list[str]], np.ndarray] | None) -> "Examples":
        owners = [o for o, _ in pairs]
        texts = [t for _, t in pairs]
        vecs = embed(texts) if (embed is not None and texts) else None
        return cls(owners, [content_units(t) for t in texts], vecs)

    def best(self, heard_units: list[str], vec: np.ndarray | None, allowed: set[str]) -> dict[str, float]:
        """owner -> best score (>= 1 means close enough: overlap or cosine over its threshold)."""
        shared: Counter = Counter()
        for u in dict.fromkeys(heard_units):      # in order: ties must not depend on the string hash seed
            for i, n in self.index.get(u, ()):
                shared[i] += n
        out: dict[str, float] = {}
        for i, n in shared.items():
            size = self.sizes[i]
            if size < 2 or self.owners[i] not in allowed:
                continue
            ov = n / size
            if ov >= OVERLAP_MIN and ov / OVERLAP_MIN > out.get(self.owners[i], 0.0):
                out[self.owners[i]] = ov / OVERLAP_MIN
        if vec is not None and self.vectors is not None:
            sims = self.vectors @ vec
            for i in np.flatnonzero(sims >= SEMANTIC_MIN):
                owner = self.owners[i]
                if owner in allowed:
                    out[owner] = max(out.get(owner, 0.0), float(sims[i]) / SEMANTIC_MIN)
        return out
