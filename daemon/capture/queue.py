"""Bounded hand-over of Blocks from capture to analysis.

Capture must never wait for analysis: put() never blocks, and a block that does not
fit is dropped whole and counted, so health can report every frame lost.
"""
from __future__ import annotations

import threading
import time
from collections import deque

from ..audio import Block


class BlockQueue:
    def __init__(self, max_frames: int):
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        self.max_frames = max_frames
        self._blocks: deque[Block] = deque()
        self._cond = threading.Condition()
        self._depth = 0
        self._dropped = 0
        self._accepted = 0

    @property
    def depth_frames(self) -> int:
        return self._depth

    @property
    def dropped_frames(self) -> int:
        return self._dropped

    @property
    def accepted_frames(self) -> int:
        return self._accepted

    def put(self, block: Block) -> bool:
        """Queue ``block`` if it fits, else drop it and count its frames. Never blocks."""
        n = block.n_frames
        with self._cond:
            if self._depth + n > self.max_frames:
                self._dropped += n
                return False
            self._blocks.append(block)
            self._depth += n
            self._accepted += n
            self._cond.notify()
            return True

    def get(self, timeout: float | None = None) -> Block | None:
        """Oldest block, waiting up to ``timeout`` seconds (None: forever); None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._blocks, timeout):
                return None
            block = self._blocks.popleft()
            self._depth -= block.n_frames
            self._cond.notify_all()   # wakes wait_for_room
            return block

    def wait_for_room(self, n_frames: int, timeout: float | None = None) -> bool:
        """For sources that may wait (fast WAV replay): block until ``n_frames`` fit.

        Live capture never calls this; it is how "as fast as possible" replay avoids
        dropping frames without an unbounded queue.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._depth + n_frames > self.max_frames and self._blocks:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def __len__(self) -> int:
        return len(self._blocks)
