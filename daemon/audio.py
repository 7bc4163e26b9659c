"""Audio units shared by capture and analysis.

Everything downstream of capture works on fixed 20 ms frames of int16 per speaker;
a Block is a whole number of such frames for one line, agent and customer aligned.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_MS = 20
SPEAKERS = ("agent", "customer")


def frame_len(sample_rate: int) -> int:
    return sample_rate * FRAME_MS // 1000


@dataclass(frozen=True, slots=True)
class Block:
    """Aligned audio of one line: n_frames * frame_len samples per speaker."""

    line: str
    t: float                # audio seconds since the source started
    sample_rate: int
    agent: np.ndarray       # int16, 1-D
    customer: np.ndarray    # int16, 1-D, same length

    @property
    def n_frames(self) -> int:
        return len(self.agent) // frame_len(self.sample_rate)

    @property
    def duration(self) -> float:
        return len(self.agent) / self.sample_rate


class SourceError(Exception):
    """An audio source cannot be opened or read; the message says which and why."""
