"""Capture on real parts: PyAudio/PortAudio reading ALSA `file` PCM devices defined in
a generated ~/.asoundrc (HOME points at a temp dir; the device workers are child
processes, so each one reads the .asoundrc as it is when it starts), real WAV files,
real FIFOs for device faults.
"""
from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from callcue.daemon.audio import Block, frame_len
from callcue.daemon.capture import BlockQueue, CaptureManager, load_profiles, resolve_device
from callcue.daemon.capture.capture import plan_capture
from callcue.daemon.capture import device_source, wav_source
from callcue.daemon.capture.device_source import STALL_S
from callcue.daemon.capture.device_worker import pick_device
from callcue.daemon.capture.wav_source import WavReplay
from callcue.daemon.config import LineConfig, SiteConfig
from callcue.daemon.yamlfile import ConfigError
from conftest import wait_until
from helpers import write_wav


# ---------------------------------------------------------------- helpers

class Alsa:
    """A temporary HOME with an .asoundrc of file-PCM taps."""

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.home.mkdir()
        self.profiles = root / "profiles"
        self.profiles.mkdir()

    def tap(self, name: str, infile: Path) -> None:
        with open(self.home / ".asoundrc", "a") as f:
            f.write(f'pcm.{name} {{\n type file\n slave.pcm "null"\n file "/dev/null"\n'
                    f' infile "{infile}"\n format "raw"\n hint {{ show on description "test {name}" }}\n}}\n')

    def raw(self, name: str, frames: np.ndarray) -> Path:
        path = self.root / f"{name}.raw"
        np.ascontiguousarray(frames, dtype="<i2").tofile(path)
        return path

    def profile(self, name: str, match: str, channels: int | None = None, clocked: bool = False) -> None:
        text = f"name: {name}\ndescription: test tap\nmatch: {match}\nclocked: {str(clocked).lower()}\n"
        if channels:
            text += f"channels: {channels}\n"
        (self.profiles / f"{name}.yaml").write_text(text)


@pytest.fixture
def alsa(tmp_path, monkeypatch) -> Alsa:
    a = Alsa(tmp_path)
    monkeypatch.setenv("HOME", str(a.home))
    return a


class Attempts:
    """How many times each device (by label) or WAV line (by id) was tried: tests wait for
    retries to have happened instead of sleeping for as long as retries might take."""

    def __init__(self):
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, key: str) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def of(self, key: str) -> int:
        with self._lock:
            return self.counts.get(key, 0)


@pytest.fixture
def attempts(monkeypatch) -> Attempts:
    """Counts device worker starts (each open attempt runs one) and WAV file opens."""
    seen = Attempts()
    spawn = device_source.DeviceReader._spawn

    def counted_spawn(self):
        seen.add(self.spec.label)
        return spawn(self)

    class CountedWavReplay(wav_source.WavReplay):
        def __init__(self, line, *a, **kw):
            seen.add(line.id)
            super().__init__(line, *a, **kw)

    monkeypatch.setattr(device_source.DeviceReader, "_spawn", counted_spawn)
    monkeypatch.setattr(wav_source, "WavReplay", CountedWavReplay)
    return seen


class Events:
    """on_status / on_eof recorder that tests can wait on."""

    def __init__(self):
        self.items: list[tuple] = []
        self._cond = threading.Condition()

    def status(self, line: str, up: bool, reason: str) -> None:
        with self._cond:
            self.items.append((time.monotonic(), line, up, reason))
            self._cond.notify_all()

    def eof(self, line: str) -> None:
        with self._cond:
            self.items.append((time.monotonic(), line, "eof", ""))
            self._cond.notify_all()

    def of(self, line: str) -> list[tuple]:
        with self._cond:
            return [(up, reason) for _, ln, up, reason in self.items if ln == line]

    def wait(self, pred, timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: pred(self), timeout):
                pytest.fail(f"condition not met in {timeout} s; events: {self.items}")


def site(lines: list[dict], hardware_dirs=(), capture_frames: int = 2000, retry_s: float = 0.2) -> SiteConfig:
    return SiteConfig(site="s", floor="f", box="b", lines=lines, hardware_dirs=list(hardware_dirs),
                      queues={"capture_frames": capture_frames, "retry_s": retry_s})


def collect(q: BlockQueue, samples: int, timeout: float = 10.0) -> list[Block]:
    """Blocks until at least ``samples`` per speaker have arrived."""
    out: list[Block] = []
    deadline = time.monotonic() + timeout
    while sum(len(b.agent) for b in out) < samples:
        b = q.get(timeout=max(0.0, deadline - time.monotonic()))
        if b is None:
            pytest.fail(f"only {sum(len(b.agent) for b in out)} of {samples} samples arrived in {timeout} s")
        out.append(b)
    return out


def joined(blocks: list[Block]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([b.agent for b in blocks]), np.concatenate([b.customer for b in blocks])


def check_block_shape(blocks: list[Block], line: str, rate: int) -> None:
    fl = frame_len(rate)
    at = 0
    for b in blocks:
        assert b.line == line and b.sample_rate == rate
        assert b.agent.dtype == np.int16 and b.customer.dtype == np.int16
        assert len(b.agent) == len(b.customer) and len(b.agent) % fl == 0 and len(b.agent) > 0
        assert b.t == pytest.approx(at / rate, abs=1e-9)
        at += len(b.agent)


def noise(n: int, ch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-32768, 32767, (n, ch), dtype=np.int16, endpoint=True)


# ---------------------------------------------------------------- profiles and plan

def test_repo_profiles_load_and_describe_the_stock_interfaces():
    profiles = load_profiles()
    assert {"usb-stereo-tap", "behringer-umc404hd", "focusrite-scarlett-18i8", "alsa-file-tap"} <= set(profiles)
    assert profiles["behringer-umc404hd"].channels == 4
    assert profiles["focusrite-scarlett-18i8"].channels == 8
    assert profiles["alsa-file-tap"].clocked is False and profiles["usb-stereo-tap"].clocked is True
    assert resolve_device("behringer-umc404hd", profiles) == ("callcue_umc404hd", 4)
    assert resolve_device("Some USB Thing", profiles) == ("Some USB Thing", None)


def test_profile_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x1\ndescription: d\nmatch: foo\nchanels: 2\nsample_rates: [8000, 44100]\n")
    with pytest.raises(ConfigError) as exc:
        load_profiles(dirs=[tmp_path])
    msg = str(exc.value)
    assert f"{bad}:4: chanels: unknown field" in msg
    assert f"{bad}:5: sample_rates: " in msg and "44100" in msg


def test_profile_defined_twice_is_an_error(tmp_path):
    for n in ("a", "b"):
        (tmp_path / f"{n}.yaml").write_text("name: same\ndescription: d\nmatch: foo\n")
    with pytest.raises(ConfigError, match=r"b\.yaml: profile 'same' is already defined in .*a\.yaml"):
        load_profiles(dirs=[tmp_path])
    cfg = site([], hardware_dirs=[tmp_path / "nope"])
    with pytest.raises(ConfigError, match="hardware profile folder not found"):
        load_profiles(cfg)


def test_pick_device_prefers_exact_and_refuses_to_guess():
    names = ["tap1", "tap10", "USB Audio Device: - (hw:1,0)", "USB Audio Device: - (hw:2,0)"]
    assert pick_device("TAP1", names) == 0
    assert pick_device("tap10", names) == 1
    assert pick_device("hw:2", names) == 3
    with pytest.raises(LookupError, match=r"matches 2 input devices .*stable name"):
        pick_device("usb audio", names)
    with pytest.raises(LookupError, match=r"no input device name contains 'mic' \(input devices: 'tap1'"):
        pick_device("mic", names)


def test_plan_shares_devices_and_reports_every_mapping_mistake(tmp_path):
    profiles = load_profiles()
    ok = site([
        {"id": "A", "source": {"device": "behringer-umc404hd", "agent": 0, "customer": 1}},
        {"id": "B", "source": {"device": "behringer-umc404hd", "agent": 2, "customer": 3}},
        {"id": "C", "source": {"agent": {"device": "micA"}, "customer": {"device": "micB", "channel": 1}}},
    ])
    plan = plan_capture(ok, profiles)
    assert plan.devices["callcue_umc404hd"].channels == 4
    assert plan.devices["mica"].channels == 1 and plan.devices["micb"].channels == 2
    assert plan.device_lines["B"] == {"agent": ("callcue_umc404hd", 2), "customer": ("callcue_umc404hd", 3)}

    wav = tmp_path / "x.wav"
    bad = site([
        {"id": "A", "sample_rate": 8000, "source": {"device": "behringer-umc404hd", "agent": 0, "customer": 1}},
        {"id": "B", "sample_rate": 16000, "source": {"device": "behringer-umc404hd", "agent": 2, "customer": 5}},
        {"id": "C", "source": {"device": "behringer-umc404hd", "agent": 1, "customer": 3}},
        {"id": "D", "source": {"agent": {"device": "micA"}, "customer": {"wav": str(wav)}}},
    ])
    with pytest.raises(ConfigError) as exc:
        plan_capture(bad, profiles)
    msg = str(exc.value)
    assert "line B: maps customer to channel 5 but profile 'behringer-umc404hd' has 4 channels (0-3)" in msg
    assert "line B: runs at 16000 Hz but line A agent uses device 'behringer-umc404hd' at 8000 Hz" in msg
    assert "line C: agent maps to channel 1 of device 'behringer-umc404hd', which line A customer already uses" in msg
    assert "line D: agent comes from a device and customer from a wav" in msg


def test_capture_manager_needs_a_queue_per_line(alsa):
    cfg = site([{"id": "A", "source": {"device": "x"}}])
    with pytest.raises(ValueError, match="no BlockQueue given for line"):
        CaptureManager(cfg, {}, on_status=lambda *a: None)


# ---------------------------------------------------------------- BlockQueue

def _block(n_frames: int, rate: int = 8000, t: float = 0.0) -> Block:
    z = np.zeros(n_frames * frame_len(rate), np.int16)
    return Block("L", t, rate, z, z.copy())


def test_block_queue_drops_whole_blocks_when_full_and_never_blocks():
    q = BlockQueue(12)
    assert q.put(_block(5)) and q.put(_block(5))
    t0 = time.perf_counter()
    for _ in range(1000):
        assert not q.put(_block(5))        # 15 > 12: dropped, counted, no waiting
    assert time.perf_counter() - t0 < 0.5
    assert q.depth_frames == 10 and q.dropped_frames == 5000 and q.accepted_frames == 10
    assert q.put(_block(2))                # exactly fills the bound
    assert q.get(0).n_frames == 5 and q.depth_frames == 7
    assert q.put(_block(5)) and q.depth_frames == 12


def test_block_queue_get_times_out_and_wait_for_room_wakes_on_get():
    q = BlockQueue(10)
    t0 = time.monotonic()
    assert q.get(timeout=0.2) is None
    assert 0.15 < time.monotonic() - t0 < 1.0
    q.put(_block(10))
    assert q.wait_for_room(5, timeout=0.1) is False
    threading.Timer(0.2, q.get).start()
    t0 = time.monotonic()
    assert q.wait_for_room(5, timeout=5) is True
    assert 0.1 < time.monotonic() - t0 < 2


# ---------------------------------------------------------------- devices (PyAudio on ALSA file PCMs)

@pytest.mark.parametrize("rate", [8000, 16000])
def test_stereo_tap_is_read_sample_exactly(alsa, rate):
    """The repo's alsa-file-tap profile: agent left, customer right, paced to real time."""
    n = rate  # one second
    data = noise(n, 2, seed=rate)
    alsa.tap("callcue_filetap", alsa.raw("line", data))
    cfg = site([{"id": "L1", "sample_rate": rate, "source": {"device": "alsa-file-tap"}}])
    q, ev = BlockQueue(cfg.queues.capture_frames), Events()
    mgr = CaptureManager(cfg, {"L1": q}, on_status=ev.status)
    t0 = time.monotonic()
    mgr.start()
    try:
        blocks = collect(q, n)
        elapsed = time.monotonic() - t0
    finally:
        mgr.stop()
    a, c = joined(blocks)
    assert np.array_equal(a[:n], data[:, 0]) and np.array_equal(c[:n], data[:, 1])
    check_block_shape(blocks, "L1", rate)
    assert {len(b.agent) for b in blocks} == {5 * frame_len(rate)}     # 5 x 20 ms per read
    assert elapsed >= 0.9, "an unclocked file tap must be paced to the wall clock"
    assert ev.of("L1")[0] == (True, f"device 'alsa-file-tap' open as 'callcue_filetap': 2 ch at {rate} Hz")
    assert all(up for up, _ in ev.of("L1"))
    assert mgr.devices()["alsa-file-tap"]["opens"] == 1


def test_four_channel_device_carries_two_lines_opened_once(alsa):
    rate, n = 8000, 8000
    data = noise(n, 4, seed=4)
    alsa.tap("quadtap", alsa.raw("quad", data))
    alsa.profile("quad", "quadtap", channels=4)
    cfg = site([{"id": "A", "source": {"device": "quad", "agent": 0, "customer": 1}},
                {"id": "B", "source": {"device": "quad", "agent": 3, "customer": 2}}],
               hardware_dirs=[alsa.profiles])
    qa, qb, ev = BlockQueue(2000), BlockQueue(2000), Events()
    mgr = CaptureManager(cfg, {"A": qa, "B": qb}, on_status=ev.status)
    mgr.start()
    try:
        ba, bb = collect(qa, n), collect(qb, n)
    finally:
        mgr.stop()
    a_agent, a_cust = joined(ba)
    b_agent, b_cust = joined(bb)
    assert np.array_equal(a_agent[:n], data[:, 0]) and np.array_equal(a_cust[:n], data[:, 1])
    assert np.array_equal(b_agent[:n], data[:, 3]) and np.array_equal(b_cust[:n], data[:, 2])
    check_block_shape(ba, "A", rate)
    check_block_shape(bb, "B", rate)
    devs = mgr.devices()
    assert list(devs) == ["quad"] and devs["quad"]["opens"] == 1 and devs["quad"]["channels"] == 4


def test_mono_speaker_taps_on_two_devices_are_locked_frame_by_frame(alsa):
    """Two independent devices: each speaker's audio arrives complete and in order, and
    the pairing offset between them never changes (no drift, no drop, no duplicate)."""
    rate, n = 8000, 3 * 8000
    ramp = np.arange(n, dtype=np.int64)
    alsa.tap("agenttap", alsa.raw("agent", (ramp % 32768).astype(np.int16)))
    alsa.tap("custtap", alsa.raw("cust", (-(ramp % 32768) - 1).astype(np.int16)))
    alsa.profile("agentdev", "agenttap", channels=1)
    alsa.profile("custdev", "custtap", channels=1)
    cfg = site([{"id": "M", "source": {"agent": {"device": "agentdev"}, "customer": {"device": "custdev"}}}],
               hardware_dirs=[alsa.profiles])
    q, ev = BlockQueue(2000), Events()
    mgr = CaptureManager(cfg, {"M": q}, on_status=ev.status)
    mgr.start()
    try:
        blocks = collect(q, 2 * rate)
    finally:
        mgr.stop()
    check_block_shape(blocks, "M", rate)
    a, c = joined(blocks)
    a, c = a[: 2 * rate].astype(np.int64), c[: 2 * rate].astype(np.int64)
    assert np.all(np.diff(a) == 1), "agent samples must be contiguous"
    assert np.all(np.diff(c) == -1), "customer samples must be contiguous"
    offset = a - (-c - 1)                     # agent position minus customer position
    assert len(set(offset.tolist())) == 1
    assert abs(int(offset[0])) <= rate // 2
    assert ev.of("M")[-1][0] is True and "agentdev" in ev.of("M")[-1][1] and "custdev" in ev.of("M")[-1][1]


def test_unknown_device_is_reported_and_retried_while_other_lines_run(alsa, attempts):
    n = 8000              # one second at the default line rate
    data = noise(n, 2, seed=7)
    alsa.tap("goodtap", alsa.raw("good", data))
    alsa.profile("good", "goodtap")
    cfg = site([{"id": "bad", "source": {"device": "no-such-tap"}},
                {"id": "ok", "source": {"device": "good"}}], hardware_dirs=[alsa.profiles], retry_s=0.1)
    qbad, qok, ev = BlockQueue(2000), BlockQueue(2000), Events()
    mgr = CaptureManager(cfg, {"bad": qbad, "ok": qok}, on_status=ev.status)
    mgr.start()
    try:
        ev.wait(lambda e: e.of("bad"))
        blocks = collect(qok, n)
        wait_until(lambda: attempts.of("no-such-tap") >= 3, 10, "two retries of the bad line",
                   detail=lambda: attempts.counts)
        bad_events = ev.of("bad")
        health = mgr.health()
    finally:
        mgr.stop()
    assert bad_events == [(False, "device 'no-such-tap': no input device name contains 'no-such-tap' "
                                  "(input devices: 'goodtap')")], "reported once, not once per retry"
    assert np.array_equal(joined(blocks)[0][:n], data[:, 0])
    assert qbad.depth_frames == 0 and health["bad"]["up"] is False and health["ok"]["up"] is True
    assert "no-such-tap" in health["bad"]["reason"]


def test_device_whose_infile_is_missing_reports_the_alsa_error(alsa):
    alsa.tap("ghosttap", alsa.root / "missing.raw")
    cfg = site([{"id": "G", "source": {"device": "ghosttap"}}])
    q, ev = BlockQueue(100), Events()
    mgr = CaptureManager(cfg, {"G": q}, on_status=ev.status)
    mgr.start()
    try:
        ev.wait(lambda e: e.of("G"))
    finally:
        mgr.stop()
    up, reason = ev.of("G")[0]
    assert up is False
    assert reason == (f"device 'ghosttap': 'ghosttap' is listed but cannot capture (it has no input channels now): "
                      f"open {alsa.root / 'missing.raw'} for reading failed: No such file or directory")


def test_device_that_appears_after_start_comes_up(alsa, attempts):
    """PortAudio lists devices once per init; each retry runs a fresh worker, so a
    device added to the ALSA config (a tap plugged in) is found without a restart."""
    n = 8000              # one second at the default line rate
    data = noise(n, 2, seed=11)
    alsa.profile("late", "latetap")
    alsa.tap("othertap", alsa.raw("other", noise(n, 2, seed=12)))
    cfg = site([{"id": "late", "source": {"device": "late"}}], hardware_dirs=[alsa.profiles], retry_s=0.1)
    q, ev = BlockQueue(2000), Events()
    mgr = CaptureManager(cfg, {"late": q}, on_status=ev.status)
    mgr.start()
    try:
        ev.wait(lambda e: e.of("late"))
        assert ev.of("late")[0][0] is False and "'latetap'" in ev.of("late")[0][1]
        wait_until(lambda: attempts.of("late") >= 2, 10, "a retry while the tap is missing",
                   detail=lambda: attempts.counts)
        assert q.depth_frames == 0
        alsa.tap("latetap", alsa.raw("late", data))
        ev.wait(lambda e: e.of("late")[-1][0] is True, timeout=10)
        blocks = collect(q, n)
    finally:
        mgr.stop()
    a, c = joined(blocks)
    assert np.array_equal(a[:n], data[:, 0]) and np.array_equal(c[:n], data[:, 1])
    assert ev.of("late")[-1] == (True, "device 'late' open as 'latetap': 2 ch at 8000 Hz")


def test_file_tap_end_of_infile_repeats_the_last_two_blocks(alsa):
    """Measured ALSA file-PCM behaviour the docs rely on: at the end of the infile
    the device neither fails nor goes silent; it replays its last two 100 ms reads."""
    n = 8000              # one second at the default line rate
    data = noise(n, 2, seed=13)
    alsa.tap("endtap", alsa.raw("end", data))
    alsa.profile("end", "endtap")
    cfg = site([{"id": "E", "source": {"device": "end"}}], hardware_dirs=[alsa.profiles])
    q, ev = BlockQueue(2000), Events()
    mgr = CaptureManager(cfg, {"E": q}, on_status=ev.status)
    mgr.start()
    try:
        blocks = collect(q, n + 6 * 800)
    finally:
        mgr.stop()
    a, c = joined(blocks)
    tail_a, tail_c = data[-1600:, 0], data[-1600:, 1]
    post = len(a) - n
    assert np.array_equal(a[n:], np.tile(tail_a, post // 1600 + 1)[:post])
    assert np.array_equal(c[n:], np.tile(tail_c, post // 1600 + 1)[:post])
    assert ev.of("E") == [(True, "device 'end' open as 'endtap': 2 ch at 8000 Hz")]


def test_line_with_one_device_missing_stays_down_and_buffers_only_half_a_second(alsa):
    rate = 8000
    alsa.tap("halftap", alsa.raw("half", noise(3 * rate, 1, seed=17)))
    alsa.profile("half", "halftap", channels=1)
    cfg = site([{"id": "H", "source": {"agent": {"device": "half"}, "customer": {"device": "gone-tap"}}}],
               hardware_dirs=[alsa.profiles], retry_s=5)
    q, ev = BlockQueue(2000), Events()
    mgr = CaptureManager(cfg, {"H": q}, on_status=ev.status)
    mgr.start()
    try:
        ev.wait(lambda e: e.of("H"))
        # the agent's device delivers audio that cannot be paired: beyond 0.5 s it is dropped
        health = wait_until(lambda: (h := mgr.health()["H"])["skew_dropped_frames"] >= 40 and h, 15,
                            "40 unpaired frames dropped", detail=lambda: mgr.health()["H"])
        devices = mgr.devices()
    finally:
        mgr.stop()
    assert ev.of("H") == [(False, "device 'gone-tap': no input device name contains 'gone-tap' "
                                  "(input devices: 'halftap')")]
    assert devices["half"]["up"] is True and devices["gone-tap"]["up"] is False
    assert q.depth_frames == 0 and health["up"] is False


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def _blocked_opening_a_fifo(pid: int) -> bool:
    """Some thread of pid sleeps in the kernel's FIFO open (waiting for a writer)."""
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            if (task / "wchan").read_text().strip() in ("wait_for_partner", "fifo_open"):
                return True
        except (FileNotFoundError, ProcessLookupError):
            continue
    return False


def _alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except FileNotFoundError:
        return False


def test_device_worker_stuck_in_the_driver_dies_with_the_daemon(alsa):
    """A worker blocked inside ALSA (here: PortAudio's device probe opening a FIFO
    infile that has no writer, which blocks in open()) cannot notice anything itself;
    killing the daemon with SIGKILL must still take it down."""
    import signal
    import subprocess
    import sys
    fifo = alsa.root / "stuck.fifo"
    os.mkfifo(fifo)                    # no writer: opening it for reading blocks
    alsa.tap("stucktap", fifo)
    script = (
        "import time\n"
        "from callcue.daemon.config import SiteConfig\n"
        "from callcue.daemon.capture import CaptureManager, BlockQueue\n"
        "cfg = SiteConfig(site='s', floor='f', box='b', lines=[{'id': 'L', 'source': {'device': 'stucktap'}}])\n"
        "CaptureManager(cfg, {'L': BlockQueue(100)}, on_status=lambda *a: None).start()\n"
        "time.sleep(60)\n")
    daemon = subprocess.Popen([sys.executable, "-c", script])
    worker = None
    try:
        worker = wait_until(lambda: _children(daemon.pid), 10, "a device worker started")[0]
        assert "device_worker.py" in Path(f"/proc/{worker}/cmdline").read_text()
        wait_until(lambda: _blocked_opening_a_fifo(worker), 20, "the device worker stuck opening the FIFO")
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(5)
        wait_until(lambda: not _alive(worker), 5, "the device worker gone with the daemon")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if worker is not None and _alive(worker):
            os.kill(worker, signal.SIGKILL)


class FifoWriter:
    """Feeds a FIFO infile with a stereo frame-counter ramp and keeps it full.

    Measured: the file PCM fills a short read() with stale samples, so a FIFO must
    never run nearly empty while audio is expected; the reader (a clocked: false
    profile) sets the pace. Pausing the writer lets the pipe drain, after which the
    PCM's reads block: a device that stops delivering.
    """

    CHUNK = 800          # frames: 3200 bytes <= PIPE_BUF, so each write is atomic

    def __init__(self, path: Path):
        os.mkfifo(path)
        # O_RDWR: opening never waits for a reader, and the FIFO outlives each worker
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.k = 0
        self.flowing = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.flowing.wait(0.05):
                continue
            if not select.select([], [self.fd], [], 0.05)[1]:
                continue
            k = np.arange(self.k, self.k + self.CHUNK)
            frames = np.stack([k % 30000, -(k % 30000) - 1], axis=1).astype("<i2")
            try:
                os.write(self.fd, frames.tobytes())
            except BlockingIOError:
                continue          # less than a chunk free: try again, never split or drop
            self.k += self.CHUNK

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.fd)


def test_device_that_stops_delivering_goes_down_and_comes_back(alsa):
    rate = 16000            # the 64 KiB pipe holds 1 s of 16 kHz stereo: it drains quickly
    fifo = alsa.root / "live.fifo"
    writer = FifoWriter(fifo)
    alsa.tap("livetap", fifo)
    alsa.profile("live", "livetap")
    cfg = site([{"id": "live", "sample_rate": rate, "source": {"device": "live"}}],
               hardware_dirs=[alsa.profiles], retry_s=0.2)
    q, ev = BlockQueue(5000), Events()
    mgr = CaptureManager(cfg, {"live": q}, on_status=ev.status)
    writer.flowing.set()
    mgr.start()
    try:
        ev.wait(lambda e: e.of("live") and e.of("live")[-1][0] is True)
        collect(q, rate // 2)
        writer.flowing.clear()
        t_pause = time.monotonic()
        ev.wait(lambda e: e.of("live")[-1][0] is False, timeout=10)
        t_down = time.monotonic()
        while q.get(timeout=0.05) is not None:
            pass
        time.sleep(1.0)                  # retries while nothing flows
        writer.flowing.set()
        ev.wait(lambda e: e.of("live")[-1][0] is True, timeout=15)
        t_up = time.monotonic()
        after = collect(q, 2 * rate)
        health = mgr.health()["live"]
        opens = mgr.devices()["live"]["opens"]
    finally:
        mgr.stop()
        writer.close()
    states = [up for up, _ in ev.of("live")]
    assert states[:3] == [True, False, True]
    assert ev.of("live")[1][1] == f"device 'live': 'livetap' delivered no audio for {STALL_S:g} s"
    # the PCM first plays out what the pipe still holds (up to 1 s), then 1 s of nothing is a fault
    assert STALL_S <= t_down - t_pause <= 5
    assert opens >= 2 and health["up"] is True
    # a FIFO restart can leave a stale or short read in the first part of a second;
    # once the pipe is full again the audio must be the writer's, in order, paired
    a, c = joined(after)
    a, c = a[-rate:].astype(np.int64), c[-rate:].astype(np.int64)
    assert np.all(np.diff(a) % 30000 == 1), "audio after recovery is contiguous"
    assert np.array_equal(a, -c - 1), "and the channels stay paired"
    print(f"fifo tap: down {t_down - t_pause:.2f} s after the writer paused; up {t_up - t_down:.2f} s "
          f"after down (writer resumed 1.0 s after down)")


# ---------------------------------------------------------------- WAV replay

def wav_line(lid: str, rate: int = 8000, **source) -> dict:
    return {"id": lid, "sample_rate": rate, "source": source}


def test_wav_stereo_fast_replay_is_exact_and_waits_for_room_instead_of_dropping(tmp_path):
    rate = 16000
    n = 5 * rate + 123                      # ends inside a frame: the last frame is zero-padded
    data = noise(n, 2, seed=21)
    path = write_wav(tmp_path / "call.wav", data, rate)
    cfg = site([wav_line("W", rate, wav=str(path), pace="fast")], capture_frames=20)
    q, ev = BlockQueue(cfg.queues.capture_frames), Events()
    mgr = CaptureManager(cfg, {"W": q}, on_status=ev.status, on_eof=ev.eof)
    mgr.start()
    try:
        blocks = []
        while not (ev.of("W") and ev.of("W")[-1][0] == "eof" and q.depth_frames == 0):
            b = q.get(timeout=0.01)
            if b is not None:
                blocks.append(b)
    finally:
        mgr.stop()
    check_block_shape(blocks, "W", rate)
    a, c = joined(blocks)
    fl = frame_len(rate)
    assert len(a) == -(-n // fl) * fl
    assert np.array_equal(a[:n], data[:, 0]) and np.array_equal(c[:n], data[:, 1])
    assert not a[n:].any() and not c[n:].any()
    assert q.dropped_frames == 0
    assert ev.of("W") == [(True, f"replaying {path} (fast)"), ("eof", "")]


def test_two_mono_wavs_are_read_in_lockstep(tmp_path):
    rate = 8000
    agent = noise(rate, 1, seed=31)[:, 0]
    cust = noise(rate // 2 + 7, 1, seed=32)[:, 0]       # shorter: reads as silence after its end
    pa = write_wav(tmp_path / "agent.wav", agent, rate)
    pc = write_wav(tmp_path / "cust.wav", cust, rate)
    line = LineConfig(**wav_line("T", rate, agent={"wav": str(pa)}, customer={"wav": str(pc)}))
    src = WavReplay(line)
    parts = []
    while (got := src.read(800)) is not None:
        parts.append(got)
    src.close()
    a = np.concatenate([p[0] for p in parts])
    c = np.concatenate([p[1] for p in parts])
    assert len(a) == len(c) == rate
    assert np.array_equal(a, agent)
    assert np.array_equal(c[: len(cust)], cust) and not c[len(cust):].any()


def test_realtime_wav_replay_is_paced_without_drift(tmp_path):
    rate = 8000
    data = noise(rate * 3 // 2, 2, seed=41)                 # 1.5 s
    path = write_wav(tmp_path / "rt.wav", data, rate)
    cfg = site([wav_line("R", rate, wav=str(path))])
    q, ev = BlockQueue(2000), Events()
    mgr = CaptureManager(cfg, {"R": q}, on_status=ev.status, on_eof=ev.eof)
    t0 = time.monotonic()
    mgr.start()
    arrivals = []
    try:
        while len(arrivals) < 15:
            b = q.get(timeout=3)
            assert b is not None
            arrivals.append((time.monotonic() - t0, b.t + b.duration))
        ev.wait(lambda e: e.of("R")[-1][0] == "eof", timeout=3)
    finally:
        mgr.stop()
    lag = [got - audio_end for got, audio_end in arrivals]
    # each block is handed over when its audio time has passed, never early, and the
    # lag does not grow over the call: sleeps aim at absolute times, so a late wake-up
    # (a busy box) delays one block, not every block after it
    assert min(lag) >= -0.005
    assert max(lag) < 0.5
    assert min(lag[-5:]) - min(lag[1:6]) < 0.02
    print(f"realtime WAV: block hand-over lag {min(lag) * 1000:.1f}..{max(lag) * 1000:.1f} ms")


def test_looping_wav_keeps_counting_audio_time(tmp_path):
    rate = 8000
    data = noise(1600, 2, seed=51)                          # 0.2 s
    path = write_wav(tmp_path / "loop.wav", data, rate)
    cfg = site([wav_line("P", rate, wav=str(path), pace="fast", loop=True)])
    q, ev = BlockQueue(60), Events()
    mgr = CaptureManager(cfg, {"P": q}, on_status=ev.status, on_eof=ev.eof)
    mgr.start()
    try:
        blocks = collect(q, 3 * 1600)
    finally:
        mgr.stop()
    check_block_shape(blocks, "P", rate)
    a, _ = joined(blocks)
    assert np.array_equal(a[: 3 * 1600], np.tile(data[:, 0], 3))
    assert all(up is True for up, _ in ev.of("P"))          # no eof while looping


@pytest.mark.parametrize("case", ["not_audio", "mono_for_stereo", "wrong_rate", "eight_bit", "missing"])
def test_bad_wav_is_reported_once_clearly_and_other_lines_run(tmp_path, case, attempts):
    rate = 8000
    bad = tmp_path / "bad.wav"
    if case == "not_audio":
        bad.write_text("this is a text file, not a recording\n")
        want = f"{bad}: not a WAV file (RIFF header missing)"
    elif case == "mono_for_stereo":
        write_wav(bad, noise(800, 1, seed=1), rate)
        want = f"{bad} is mono but the line maps customer to channel 1"
    elif case == "wrong_rate":
        write_wav(bad, noise(1600, 2, seed=1), 16000)
        want = (f"{bad}: sample rate is 16000 Hz but the line is configured for 8000 Hz "
                f"(convert with: sox {bad} -r 8000 {tmp_path / 'bad'}-fixed.wav)")
    elif case == "eight_bit":
        write_wav(bad, noise(800, 2, seed=1), rate, width=1)
        want = (f"{bad}: samples are 8-bit; only 16-bit PCM WAV is supported "
                f"(convert with: sox {bad} -b 16 {tmp_path / 'bad'}-fixed.wav)")
    else:
        want = f"{bad}: file not found"
    good = write_wav(tmp_path / "good.wav", noise(4000, 2, seed=2), rate)
    cfg = site([wav_line("bad", rate, wav=str(bad)), wav_line("good", rate, wav=str(good), pace="fast")],
               retry_s=0.05)
    qbad, qgood, ev = BlockQueue(100), BlockQueue(1000), Events()
    mgr = CaptureManager(cfg, {"bad": qbad, "good": qgood}, on_status=ev.status, on_eof=ev.eof)
    mgr.start()
    try:
        ev.wait(lambda e: e.of("bad") and e.of("good") and e.of("good")[-1][0] == "eof")
        # retries happen (after 0.05, 0.1, 0.2 s ...) without repeating the report
        wait_until(lambda: attempts.of("bad") >= 3, 10, "two retries of the bad file",
                   detail=lambda: attempts.counts)
        bad_events = ev.of("bad")
    finally:
        mgr.stop()
    assert bad_events == [(False, want)]
    assert qbad.depth_frames == 0
    assert qgood.depth_frames == 4000 // frame_len(rate)


def test_wav_for_one_speaker_and_device_for_the_other_is_refused(tmp_path):
    line = LineConfig(**wav_line("X", 8000, agent={"wav": str(tmp_path / "a.wav")}, customer={"device": "tap0"}))
    from callcue.daemon.audio import SourceError
    with pytest.raises(SourceError, match="must both be devices or both be WAV files"):
        WavReplay(line)
