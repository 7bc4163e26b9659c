"""Physical capture devices: one reader per device, shared by every line on it.

Each DeviceReader owns a worker process (device_worker.py, see there for why a
process) and a thread that reads its blocks, de-interleaves them and hands each
block to the subscribers. It reports up/down and retries with backoff; other
devices never notice.
"""
from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..audio import FRAME_MS
from .device_worker import HEADER

log = logging.getLogger(__name__)

BLOCK_FRAMES = 5            # 20 ms frames per device read (100 ms)
STALL_S = 1.0               # no audio for this long = device stopped delivering
OPEN_TIMEOUT_S = 10.0       # PortAudio init + open; a wedged driver counts as a failure
MAX_RETRY_S = 30.0
WORKER = Path(__file__).with_name("device_worker.py")


@dataclass(frozen=True)
class DeviceSpec:
    """How to open one physical device; lines that name the same device share it."""

    label: str              # what the config said (profile name or substring), for messages
    match: str              # device-name substring handed to the worker
    channels: int           # channel count to open
    rate: int
    clocked: bool = True

    @property
    def key(self) -> str:
        return self.match.lower()

    @property
    def block_samples(self) -> int:
        return BLOCK_FRAMES * self.rate * FRAME_MS // 1000


@dataclass
class DeviceState:
    up: bool = False
    reason: str = "not started"
    name: str | None = None         # the PyAudio device name once found
    opens: int = 0
    blocks: int = 0
    since: float = field(default_factory=time.monotonic)


class DeviceReader:
    """Reads one device through a worker process; calls ``on_block(chunk)`` with int16
    arrays of shape (frames, channels) and ``on_state(up, reason)`` on every change."""

    def __init__(self, spec: DeviceSpec, on_block: Callable[[np.ndarray], None],
                 on_state: Callable[[bool, str], None], retry_s: float = 2.0):
        self.spec = spec
        self.state = DeviceState()
        self._on_block = on_block
        self._on_state = on_state
        self._retry_s = retry_s
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"capture-dev-{spec.match}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()
        self._kill()

    def stop(self, timeout: float = 5.0) -> None:
        self.request_stop()
        self._thread.join(timeout)

    # -- internals -------------------------------------------------------------------

    def _set(self, up: bool, reason: str) -> None:
        st = self.state
        changed = up != st.up or (not up and reason != st.reason)
        st.up, st.reason, st.since = up, reason, time.monotonic()
        if changed:
            (log.info if up else log.warning)("device %r: %s", self.spec.label, reason)
            self._on_state(up, reason)

    def _kill(self) -> None:
        """Kill the worker; its pipe is closed only by the reader thread that uses it."""
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def _reap(self, proc: subprocess.Popen) -> None:
        with self._lock:
            if self._proc is proc:
                self._proc = None
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()

    def _run(self) -> None:
        delay = self._retry_s
        while not self._stop.is_set():
            try:
                up_at = self._session()
            except Exception as exc:   # a bug here must not end this device's retries
                log.exception("device %r: capture thread failed", self.spec.label)
                self._set(False, f"device {self.spec.label!r}: internal capture error: {exc!r}")
                up_at = None
            if self._stop.is_set():
                break
            # a device that stayed up a good while starts its backoff afresh
            if up_at is not None and time.monotonic() - up_at >= MAX_RETRY_S:
                delay = self._retry_s
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, MAX_RETRY_S)

    def _spawn(self) -> subprocess.Popen:
        spec = self.spec
        arg = json.dumps({"match": spec.match, "channels": spec.channels, "rate": spec.rate,
                          "block_frames": spec.block_samples, "clocked": spec.clocked, "parent_pid": os.getpid()})
        # stderr is inherited: a crash in the worker lands in the daemon's log
        return subprocess.Popen([sys.executable, str(WORKER), arg], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, close_fds=True)

    def _session(self) -> float | None:
        """Run one worker until it fails or we stop; returns when it went up, if it did."""
        spec = self.spec
        try:
            proc = self._spawn()
        except OSError as exc:
            self._set(False, f"device {spec.label!r}: cannot start the capture process: {exc}")
            return None
        with self._lock:
            self._proc = proc
        if self._stop.is_set():
            self._reap(proc)
            return None
        fd = proc.stdout.fileno()
        buf = bytearray()
        opened: dict | None = None
        up_at: float | None = None
        last = time.monotonic()
        frame_bytes = 2 * spec.channels
        try:
            while not self._stop.is_set():
                limit = STALL_S if opened else OPEN_TIMEOUT_S
                left = last + limit - time.monotonic()
                ready = select.select([fd], [], [], max(left, 0))[0] if left > 0 else []
                if not ready:
                    where = f"{opened['name']!r}" if opened else "the device"
                    what = (f"delivered no audio for {limit:g} s" if opened
                            else f"did not open within {limit:g} s")
                    self._set(False, f"device {spec.label!r}: {where} {what}")
                    return up_at
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    if self._stop.is_set():
                        return up_at        # we killed it
                    code = proc.wait()
                    self._set(False, f"device {spec.label!r}: capture process exited (code {code}) "
                                     f"without a reason; see the log above")
                    return up_at
                buf += chunk
                while len(buf) >= HEADER.size:
                    kind, n = HEADER.unpack_from(buf)
                    if len(buf) < HEADER.size + n:
                        break
                    payload = bytes(buf[HEADER.size:HEADER.size + n])
                    del buf[:HEADER.size + n]
                    if kind == b"D":
                        if len(payload) % frame_bytes:
                            raise ValueError(f"worker sent {len(payload)} bytes, not whole {spec.channels}-ch frames")
                        last = time.monotonic()
                        self.state.blocks += 1
                        block = np.frombuffer(payload, dtype=np.int16).reshape(-1, spec.channels)
                        if up_at is None:
                            up_at = last
                            self.state.opens += 1
                            # subscribers reset their alignment before the first block arrives
                            self._set(True, f"device {spec.label!r} open as {opened['name']!r}: "
                                            f"{spec.channels} ch at {spec.rate} Hz")
                        self._on_block(block)
                    elif kind == b"O":
                        opened = json.loads(payload)
                        self.state.name = opened["name"]
                        if opened.get("alsa"):
                            log.debug("device %r: ALSA said while opening: %s", spec.label, opened["alsa"])
                        last = time.monotonic()
                    elif kind == b"E":
                        self._set(False, f"device {spec.label!r}: {json.loads(payload)['reason']}")
                        return up_at
                    else:
                        raise ValueError(f"worker sent unknown message kind {kind!r}")
            return up_at
        finally:
            self._reap(proc)
