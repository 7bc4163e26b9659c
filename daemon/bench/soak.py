"""`callcue bench soak`: the live daemon for a long while, watched from outside.

Runs `callcue run` as its own process, exactly as systemd does, against an embedded
Mosquitto on a free port, with N WAV lines replaying the English demo calls in real time
(each line's copy rotated by a few seconds, so the lines' turns do not end together),
speech recognition and the assist engine on. Calls come and go as a phone system sends
them: a call_start on every line, then on each line, every `--call-s` seconds (staggered),
call_end and a new call_start, so summaries, after-call work and channel turnover are
part of the run.

Every minute it prints the daemon's resident size (/proc/PID/status VmRSS) with the
figures of its retained health message (frames dropped, speech audio dropped, channels,
final latency). At the end it stops the daemon with SIGTERM and says whether the run
held: RSS flat within `--flat` (10 %) over the last `--window` minutes, no frame dropped,
a clean exit (code 0, no traceback, no "terminate called"). Exit status 0 when it held.

    callcue bench soak                       # 30 minutes, 8 lines (the closing check)
    callcue bench soak --minutes 5 --window 3  # a short run, to see that it works
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

from callcue.daemon.bus.broker import EmbeddedBroker, free_port

from . import demo_calls

SITE, FLOOR, BOX = "soak", "f1", "box1"
ROOT = f"callcue/v1/{SITE}/{FLOOR}"


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rotated_wav(src: Path, dst: Path, shift_s: float) -> Path:
    """A copy of `src` that starts `shift_s` into it (and wraps round)."""
    with wave.open(str(src), "rb") as w:
        params = w.getparams()
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, params.nchannels)
    k = int(shift_s * params.framerate) % len(audio)
    with wave.open(str(dst), "wb") as w:
        w.setparams(params)
        w.writeframes(np.ascontiguousarray(np.roll(audio, -k, axis=0)).tobytes())
    return dst


def site_yaml(work: Path, port: int, wavs: list[tuple[Path, int]]) -> Path:
    lines = "\n".join(f"""  - id: "{i + 1:02d}"
    agent: agent{i + 1}
    sample_rate: {rate}
    source: {{wav: {wav}, pace: realtime, loop: true}}""" for i, (wav, rate) in enumerate(wavs))
    cfg = work / "site.yaml"
    cfg.write_text(f"""site: {SITE}
floor: {FLOOR}
box: {BOX}
broker: {{url: "mqtt://127.0.0.1:{port}"}}
data_dir: data
calls: {{auto: false}}
asr: {{model: whisper-tiny.en}}
lines:
{lines}
""", encoding="utf-8")
    return cfg


class Watch:
    """The box's retained health and status, from the broker."""

    def __init__(self, port: int):
        self.health: dict | None = None
        self.online = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"soak-watch-{os.getpid()}")
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe([(f"{ROOT}/box/{BOX}/health", 0),
                                                                 (f"{ROOT}/box/{BOX}/status", 1)])
        self.c.on_message = self._message
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()

    def _message(self, client, userdata, m) -> None:
        if m.topic.endswith("/status"):
            if m.payload == b"online":
                self.online.set()
        elif m.payload:
            try:
                self.health = json.loads(m.payload)
            except ValueError:
                pass

    def cmd(self, line: str, payload: dict) -> None:
        self.c.publish(f"{ROOT}/line/{line}/cmd/cti", json.dumps(payload), qos=1)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _figures(h: dict | None) -> str:
    if not h:
        return "(no health yet)"
    asr = h.get("asr") or {}
    lat = h.get("final_latency_s") or {}
    return (f"frames_dropped {h.get('frames_dropped')}  asr_dropped_s {asr.get('dropped_s')}  "
            f"channels {asr.get('channels')}  pending_utt {asr.get('pending_utterances')}  "
            f"final p50/p95 {lat.get('p50')}/{lat.get('p95')} s  commands_dropped {h.get('commands_dropped')}  "
            f"errors {h.get('errors')}")


def main(minutes: float, lines: int, window: float, call_s: float, flat: float, every_s: float = 60.0,
         keep: Path | None = None) -> int:
    calls = [p for p in demo_calls() if p.name.startswith("en")]
    if not calls:
        print("callcue bench soak: no rendered English demo calls (hardware/provision.sh renders them)",
              file=sys.stderr)
        return 2
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="callcue-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    wavs = []
    for i in range(lines):
        src = calls[i % len(calls)]
        with wave.open(str(src), "rb") as w:
            rate = w.getframerate()
        wavs.append((rotated_wav(src, work / f"line{i + 1:02d}.wav", 7.3 * i), rate))
    broker = EmbeddedBroker("127.0.0.1", free_port(), work / "mosquitto")
    broker.start()
    cfg = site_yaml(work, broker.port, wavs)
    log_path = work / "daemon.log"
    print(f"soak: {lines} lines, {minutes:g} min, calls of {call_s:g} s, RSS sampled every {every_s:g} s; "
          f"files in {work}", flush=True)
    with open(log_path, "w", encoding="utf-8") as log_fh:
        proc = subprocess.Popen([sys.executable, "-m", "callcue.daemon.cli", "run", "--config", str(cfg)],
                                stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    watch = Watch(broker.port)
    samples: list[tuple[float, float]] = []
    ok = True
    try:
        if not watch.online.wait(300):
            print("soak: the daemon did not come online within 300 s; see", log_path, file=sys.stderr)
            return 2
        ids = [f"{i + 1:02d}" for i in range(lines)]
        n_call = {lid: 0 for lid in ids}
        for lid in ids:
            watch.cmd(lid, {"op": "call_start", "call_id": f"soak-{lid}-0"})
        t0 = time.monotonic()
        # each line's calls end `call_s` apart, the lines spread over that span
        next_turn = {lid: t0 + call_s * (1 + k / lines) for k, lid in enumerate(ids)}
        next_sample = t0 + every_s
        end = t0 + minutes * 60
        print(f"{'min':>5} {'rss_mb':>8}  health", flush=True)
        while time.monotonic() < end:
            if proc.poll() is not None:
                print(f"soak: the daemon exited with status {proc.returncode}; see {log_path}", file=sys.stderr)
                return 1
            now = time.monotonic()
            for lid in ids:
                if now >= next_turn[lid]:
                    watch.cmd(lid, {"op": "call_end", "call_id": f"soak-{lid}-{n_call[lid]}"})
                    n_call[lid] += 1
                    watch.cmd(lid, {"op": "call_start", "call_id": f"soak-{lid}-{n_call[lid]}"})
                    next_turn[lid] += call_s
            if now >= next_sample:
                next_sample += every_s
                r = rss_mb(proc.pid)
                samples.append(((now - t0) / 60, r))
                print(f"{(now - t0) / 60:5.1f} {r:8.1f}  {_figures(watch.health)}", flush=True)
            time.sleep(0.2)
        if not samples or samples[-1][0] < minutes - every_s / 120:     # the sample at the very end
            r = rss_mb(proc.pid)
            samples.append((minutes, r))
            print(f"{minutes:5.1f} {r:8.1f}  {_figures(watch.health)}", flush=True)
        last = watch.health
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                print("soak: the daemon did not stop within 120 s of SIGTERM; killed", file=sys.stderr)
                proc.kill()
                proc.wait()
                ok = False
        watch.close()
        broker.stop()
    out = log_path.read_text(encoding="utf-8", errors="replace")
    span = [r for m, r in samples if m >= minutes - window - 1e-6 and r is not None]
    dropped = (last or {}).get("frames_dropped")
    print()
    if span:
        spread = (max(span) - min(span)) / min(span)
        flat_ok = spread <= flat
        print(f"RSS over the last {window:g} min: {min(span):.0f}-{max(span):.0f} MB, spread {100 * spread:.1f} % "
              f"(limit {100 * flat:.0f} %): {'flat' if flat_ok else 'NOT flat'}")
        ok &= flat_ok
    else:
        print("RSS: no samples in the window")
        ok = False
    print(f"frames dropped: {dropped} (must be 0)")
    ok &= dropped == 0
    clean = proc.returncode == 0 and "Traceback" not in out and "terminate called" not in out
    print(f"daemon exit: status {proc.returncode}"
          f"{'' if 'terminate called' not in out else ', printed terminate called'}"
          f"{'' if 'Traceback' not in out else ', logged a traceback'}: {'clean' if clean else 'NOT clean'}")
    ok &= clean
    print(f"soak {'held' if ok else 'FAILED'} (log: {log_path})")
    return 0 if ok else 1
