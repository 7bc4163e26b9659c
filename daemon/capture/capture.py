"""Lines: turn every configured line's source into Blocks in that line's queue.

A line's agent and customer come from channels of one device, from two devices
(aligned frame by frame here), or from WAV files. Devices are shared: a 4-channel
interface can carry two lines and is opened once. Each device and each WAV line
runs on its own thread, so one line failing never stops another.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..audio import SPEAKERS, Block, frame_len
from ..config import LineConfig, SiteConfig
from ..yamlfile import ConfigError
from .device_source import MAX_RETRY_S, DeviceReader, DeviceSpec
from .profiles import HardwareProfile, load_profiles
from .queue import BlockQueue
from .wav_source import WavLineSource

log = logging.getLogger(__name__)

StatusFn = Callable[[str, bool, str], None]
EofFn = Callable[[str], None]

MAX_SKEW_FRAMES = 25      # two devices of one line may drift apart by 0.5 s before audio is dropped


@dataclass
class _DevicePlan:
    label: str
    match: str
    rate: int
    clocked: bool
    profile_channels: int | None
    users: dict[int, str] = field(default_factory=dict)    # channel -> "line L1 agent"

    def spec(self) -> DeviceSpec:
        channels = self.profile_channels or (max(self.users) + 1)
        return DeviceSpec(label=self.label, match=self.match, channels=channels, rate=self.rate, clocked=self.clocked)


@dataclass
class CapturePlan:
    devices: dict[str, DeviceSpec]                          # key -> spec
    device_lines: dict[str, dict[str, tuple[str, int]]]     # line id -> speaker -> (device key, channel)
    wav_lines: list[str]


def plan_capture(cfg: SiteConfig, profiles: dict[str, HardwareProfile] | None = None) -> CapturePlan:
    """Which devices to open with how many channels, and who reads what; every mistake
    the config makes about it is raised together as one ConfigError."""
    if profiles is None:
        profiles = load_profiles(cfg)
    errors: list[str] = []
    devices: dict[str, _DevicePlan] = {}
    device_lines: dict[str, dict[str, tuple[str, int]]] = {}
    wav_lines: list[str] = []
    for line in cfg.lines:
        taps = {who: line.source.tap(who) for who in SPEAKERS}
        kinds = {who: ("wav" if t.wav is not None else "device") for who, t in taps.items()}
        if len(set(kinds.values())) > 1:
            errors.append(f"line {line.id}: agent comes from a {kinds['agent']} and customer from a "
                          f"{kinds['customer']}; a line's speakers must both be devices or both be WAV files")
            continue
        if kinds["agent"] == "wav":
            wav_lines.append(line.id)
            continue
        routes: dict[str, tuple[str, int]] = {}
        for who, tap in taps.items():
            prof = profiles.get(tap.device)
            match = prof.match if prof else tap.device
            key = match.lower()
            if prof is not None:
                if line.sample_rate not in prof.sample_rates:
                    errors.append(f"line {line.id}: runs at {line.sample_rate} Hz but profile {prof.name!r} "
                                  f"supports {prof.sample_rates} Hz")
                if prof.channels is not None and tap.channel >= prof.channels:
                    errors.append(f"line {line.id}: maps {who} to channel {tap.channel} but profile {prof.name!r} "
                                  f"has {prof.channels} channels (0-{prof.channels - 1})")
            dev = devices.get(key)
            if dev is None:
                dev = devices[key] = _DevicePlan(label=tap.device, match=match, rate=line.sample_rate,
                                                 clocked=prof.clocked if prof else True,
                                                 profile_channels=prof.channels if prof else None)
            elif dev.rate != line.sample_rate:
                other = next(iter(dev.users.values()), "another line")
                errors.append(f"line {line.id}: runs at {line.sample_rate} Hz but {other} uses device "
                              f"{dev.label!r} at {dev.rate} Hz; lines on one device must share a sample_rate")
            user = f"line {line.id} {who}"
            if tap.channel in dev.users:
                errors.append(f"line {line.id}: {who} maps to channel {tap.channel} of device {dev.label!r}, "
                              f"which {dev.users[tap.channel]} already uses")
            else:
                dev.users[tap.channel] = user
            routes[who] = (key, tap.channel)
        device_lines[line.id] = routes
    if errors:
        raise ConfigError("\n".join(errors))
    return CapturePlan({k: d.spec() for k, d in devices.items()}, device_lines, wav_lines)


class _LineAssembler:
    """Collects a device line's two speakers and emits aligned whole frames."""

    def __init__(self, line: LineConfig, sink: BlockQueue, routes: dict[str, tuple[str, int]],
                 on_status: StatusFn):
        self.line = line
        self.rate = line.sample_rate
        self._fl = frame_len(self.rate)
        self._sink = sink
        self._routes = routes
        self._on_status = on_status
        self._buf = {who: np.zeros(0, dtype=np.int16) for who in SPEAKERS}
        self._lock = threading.Lock()
        self.device_keys = {key for key, _ in routes.values()}
        self._devices: dict[str, tuple[bool, str] | None] = {key: None for key in self.device_keys}
        self._reported: tuple[bool, str] | None = None
        self.samples = 0
        self.skew_dropped_frames = 0
        self.up = False
        self.reason = "starting"

    def feed(self, key: str, chunk: np.ndarray) -> None:
        with self._lock:
            for who, (k, ch) in self._routes.items():
                if k == key:
                    self._buf[who] = np.concatenate([self._buf[who], chunk[:, ch]])
            a, c = self._buf["agent"], self._buf["customer"]
            n = min(len(a), len(c)) // self._fl * self._fl
            if n:
                block = Block(self.line.id, self.samples / self.rate, self.rate, a[:n].copy(), c[:n].copy())
                self._buf["agent"], self._buf["customer"] = a[n:], c[n:]
                self.samples += n
                self._sink.put(block)
            limit = MAX_SKEW_FRAMES * self._fl
            for who in SPEAKERS:
                extra = len(self._buf[who]) - limit
                if extra > 0:
                    # the other speaker's device is behind or gone: keep only the newest audio
                    drop = -(-extra // self._fl) * self._fl
                    self._buf[who] = self._buf[who][drop:]
                    self.skew_dropped_frames += drop // self._fl

    def device_state(self, key: str, up: bool, reason: str) -> None:
        with self._lock:
            if up:
                # a device (re)started: pair speakers afresh from here on
                self._buf = {who: np.zeros(0, dtype=np.int16) for who in SPEAKERS}
            self._devices[key] = (up, reason)
            states = list(self._devices.values())
            down = [s for s in states if s is not None and not s[0]]
            if down:
                new = (False, down[0][1])
            elif all(s is not None for s in states):
                new = (True, "; ".join(dict.fromkeys(s[1] for s in states)))
            else:
                return      # the other device has not reported yet
            if new == self._reported:
                return
            self._reported = new
            self.up, self.reason = new
        self._on_status(self.line.id, *new)


class _Fanout:
    """One device's blocks and state changes, passed to every line that uses it."""

    def __init__(self, key: str, lines: list[_LineAssembler]):
        self.key, self.lines = key, lines

    def block(self, chunk: np.ndarray) -> None:
        for line in self.lines:
            line.feed(self.key, chunk)

    def state(self, up: bool, reason: str) -> None:
        for line in self.lines:
            line.device_state(self.key, up, reason)


class CaptureManager:
    """Runs capture for every line of ``cfg``.

    sinks: one BlockQueue per line id. on_status(line, up, reason) is called from
    capture threads on every change (keep it quick); on_eof(line) when a WAV line
    without loop has played to its end. Block.t counts the audio delivered on the
    line; it does not jump over a device outage (on_status marks the gap).
    """

    def __init__(self, cfg: SiteConfig, sinks: dict[str, BlockQueue], on_status: StatusFn,
                 on_eof: EofFn | None = None, profiles: dict[str, HardwareProfile] | None = None):
        missing = [line.id for line in cfg.lines if line.id not in sinks]
        if missing:
            raise ValueError(f"no BlockQueue given for line(s) {', '.join(missing)}")
        self.cfg = cfg
        self.plan = plan_capture(cfg, profiles)
        self._sinks = sinks
        self._on_status = on_status
        self._lines = {line.id: line for line in cfg.lines}
        self._assemblers: dict[str, _LineAssembler] = {}
        self._readers: dict[str, DeviceReader] = {}
        self._wavs: dict[str, WavLineSource] = {}
        retry = cfg.queues.retry_s
        for line_id, routes in self.plan.device_lines.items():
            self._assemblers[line_id] = _LineAssembler(self._lines[line_id], sinks[line_id], routes, on_status)
        for key, spec in self.plan.devices.items():
            fan = _Fanout(key, [a for a in self._assemblers.values() if key in a.device_keys])
            self._readers[key] = DeviceReader(spec, on_block=fan.block, on_state=fan.state, retry_s=retry)
        for line_id in self.plan.wav_lines:
            self._wavs[line_id] = WavLineSource(self._lines[line_id], sinks[line_id], on_status, on_eof,
                                                retry_s=retry, max_retry_s=MAX_RETRY_S)
        self._started = False

    def start(self) -> None:
        if self._started:
            raise RuntimeError("CaptureManager already started")
        self._started = True
        for r in self._readers.values():
            r.start()
        for w in self._wavs.values():
            w.start()

    def stop(self) -> None:
        for r in self._readers.values():
            r.request_stop()       # all at once, so a slow one does not hold up the rest
        for r in self._readers.values():
            r.stop()
        for w in self._wavs.values():
            w.stop()

    def __enter__(self) -> "CaptureManager":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def health(self) -> dict[str, dict]:
        """Per line: up, reason, t (audio seconds delivered), queue depth and drops."""
        out: dict[str, dict] = {}
        for line_id, line in self._lines.items():
            q = self._sinks[line_id]
            src = self._assemblers.get(line_id) or self._wavs.get(line_id)
            out[line_id] = {
                "up": src.up,
                "reason": src.reason,
                "t": src.samples / line.sample_rate,
                "depth_frames": q.depth_frames,
                "dropped_frames": q.dropped_frames,
                "skew_dropped_frames": getattr(src, "skew_dropped_frames", 0),
            }
        return out

    def devices(self) -> dict[str, dict]:
        """Per physical device: what it was opened as and how it is doing."""
        return {r.spec.label: {"match": r.spec.match, "name": r.state.name, "channels": r.spec.channels,
                               "rate": r.spec.rate, "up": r.state.up, "reason": r.state.reason,
                               "opens": r.state.opens, "blocks": r.state.blocks}
                for r in self._readers.values()}

