"""Which audio goes to the recogniser, and what time it was in the call.

Recognition is the expensive stage, so a channel's audio is only handed over while the
prosody VAD hears speech, plus a short pre-roll (the start of the first word is quieter
than the VAD threshold) and a post-roll (the recogniser's endpointing and the silero
VAD need to hear the silence that ends an utterance). Pure logic, no I/O.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..audio import FRAME_MS

FRAME_S = FRAME_MS / 1000.0
EPS = 1e-6   # seconds; fed positions are sums of float durations


@dataclass(frozen=True, slots=True)
class Chunk:
    samples: np.ndarray     # int16
    t: float                # call time of the first sample, s


class SpeechGate:
    """Frames + per-frame speech flags in, chunks of audio worth recognising out."""

    def __init__(self, sample_rate: int, pre_roll_s: float = 0.3, post_roll_s: float = 1.0):
        self.fl = sample_rate * FRAME_MS // 1000
        self.pre_frames = int(round(pre_roll_s / FRAME_S))
        self.post_frames = int(round(post_roll_s / FRAME_S))
        self._pre: deque[tuple[float, np.ndarray]] = deque(maxlen=max(1, self.pre_frames))
        self._open_left = 0          # frames still to pass after the last speech frame
        self.passed_s = 0.0
        self.skipped_s = 0.0

    @property
    def open(self) -> bool:
        return self._open_left > 0

    def push(self, samples: np.ndarray, t: float, speech: np.ndarray) -> list[Chunk]:
        """samples: whole frames starting at call time t; speech[i]: frame i is speech."""
        out: list[Chunk] = []
        run: list[np.ndarray] = []
        run_t = 0.0
        for i, flag in enumerate(speech):
            frame = samples[i * self.fl:(i + 1) * self.fl]
            ft = t + i * FRAME_S
            if flag:
                if not self.open:
                    # speech starts: release the pre-roll first
                    if run:
                        out.append(Chunk(np.concatenate(run), run_t))
                        run = []
                    pre = list(self._pre)
                    self._pre.clear()
                    if pre:
                        run_t = pre[0][0]
                        run = [f for _, f in pre]
                        self.skipped_s -= len(pre) * FRAME_S
                        self.passed_s += len(pre) * FRAME_S
                self._open_left = self.post_frames + 1
            if self._open_left > 0:
                if not run:
                    run_t = ft
                run.append(frame)
                self._open_left -= 1
                self.passed_s += FRAME_S
            else:
                if run:
                    out.append(Chunk(np.concatenate(run), run_t))
                    run = []
                self._pre.append((ft, frame))
                self.skipped_s += FRAME_S
        if run:
            out.append(Chunk(np.concatenate(run), run_t))
        return out


class Timeline:
    """Maps positions in the audio a recogniser was fed (which skips silence) back to
    call time: a list of (fed seconds, call seconds) anchors, one per contiguous chunk."""

    def __init__(self):
        self._fed: list[float] = []
        self._call: list[float] = []
        self.fed_s = 0.0

    def add(self, call_t: float, duration_s: float) -> None:
        if not self._fed or abs((self._call[-1] + (self.fed_s - self._fed[-1])) - call_t) > 1e-6:
            self._fed.append(self.fed_s)
            self._call.append(call_t)
        self.fed_s += duration_s

    def to_call(self, fed_t: float) -> float:
        if not self._fed:
            return fed_t
        i = max(0, bisect.bisect_right(self._fed, fed_t + EPS) - 1)   # sample-exact positions land in their run
        return self._call[i] + (fed_t - self._fed[i])

    def run_start(self, fed_t: float) -> float:
        """Fed position where the contiguous run holding fed_t begins (audio before it
        belongs to another moment of the call)."""
        if not self._fed:
            return 0.0
        return self._fed[max(0, bisect.bisect_right(self._fed, fed_t + EPS) - 1)]

    def forget_before(self, fed_t: float) -> None:
        """Drop anchors no result can refer to any more (keeps the lists short)."""
        i = bisect.bisect_right(self._fed, fed_t) - 1
        if i > 0:
            del self._fed[:i]
            del self._call[:i]
