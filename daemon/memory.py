"""Process memory: the resident size for health, handing freed memory back to the
system, and a log limiter for messages a burst would repeat.

glibc keeps blocks the process freed for reuse; after a burst (hundreds of call
channels, each with a silero VAD of ~9 MB, opened and closed) the resident size stays
at the peak unless `malloc_trim` gives them back. The speech engine calls `trim()` after
it frees channels (at most every few seconds).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time

_libc = None
_libc_tried = False


def _glibc():
    global _libc, _libc_tried
    if not _libc_tried:
        _libc_tried = True
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            lib.malloc_trim  # noqa: B018 (not glibc: AttributeError)
            _libc = lib
        except (OSError, AttributeError):
            _libc = None
    return _libc


def trim() -> bool:
    """Give the heap's free memory back to the system (glibc malloc_trim); False where
    there is no glibc."""
    lib = _glibc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True


def rss_mb() -> float | None:
    """This process's resident set size in MB (Linux /proc), None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


class LogLimiter:
    """Log a message a burst would repeat at most once per `every_s`; the next one says
    how many were left out meanwhile (every occurrence is still counted by the caller)."""

    def __init__(self, logger: logging.Logger, every_s: float = 5.0):
        self.logger = logger
        self.every_s = every_s
        self._last = float("-inf")
        self._skipped = 0
        self._lock = threading.Lock()

    def log(self, level: int, msg: str, *args) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.every_s:
                self._skipped += 1
                return
            skipped, self._skipped, self._last = self._skipped, 0, now
        if skipped:
            msg += f" ({skipped} more like this since the last one logged)"
        self.logger.log(level, msg, *args)

    def error(self, msg: str, *args) -> None:
        self.log(logging.ERROR, msg, *args)

    def warning(self, msg: str, *args) -> None:
        self.log(logging.WARNING, msg, *args)
