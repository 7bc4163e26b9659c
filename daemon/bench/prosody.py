"""`callcue bench prosody`: the full detector stack (energy, VAD, pitch, syllable rate,
talk-over, silence, agitation) in times real time on one core, against the NumPy
reference implementation (daemon/prosody/reference.py) in the same run.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from ..config import DetectorConfig
from ..prosody import reference
from ..prosody.session import Detectors

LIVE_BLOCK_FRAMES = 5   # what capture delivers: 100 ms


def _pin_one_core() -> str:
    try:
        cpu = sorted(os.sched_getaffinity(0))[-1]
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError) as exc:
        return f"not pinned ({exc})"


def _run(det: Detectors, audio: np.ndarray, block: int) -> list:
    s = det.session()
    out = []
    for i in range(0, len(audio), block):
        out += s.process(audio[i:i + block, 0], audio[i:i + block, 1])
    return out + s.close()


def _time(det, audio, block, min_time: float) -> tuple[float, float, list]:
    """Median wall and CPU seconds per run over enough runs to fill min_time. The CPU time
    is this thread's own: what one core spends, however busy the machine is."""
    times, cpu = [], []
    t_all = time.perf_counter()
    while True:
        t, c = time.perf_counter(), time.thread_time()
        events = _run(det, audio, block)
        times.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
        if time.perf_counter() - t_all >= min_time and len(times) >= 3:
            return statistics.median(times), statistics.median(cpu), events


def bench_prosody(files: list[Path], min_time: float) -> int:
    if not files:
        print("callcue bench prosody: no calls given and no rendered demo calls in flows/demo/calls "
              "(run `callcue synth flows/demo/calls/<name>.yaml` or the set-up command first)", file=sys.stderr)
        return 2
    from ..replay import load_call

    print(f"callcue bench prosody: full detector stack (energy, VAD, pitch, syllable rate, "
          f"talk-over, silence, agitation) on stereo calls; {_pin_one_core()}")
    print("xRT = seconds of call per second of CPU on one core (wall-clock xRT in brackets: lower when the "
          "machine is shared)")
    print(f"{'file':28} {'rate':>5} {'blocks':>8} {'numba xRT':>16} {'numpy xRT':>14} {'ratio':>6} same-events")
    worst_rt, worst_ratio = float("inf"), float("inf")
    for path in files:
        sr, audio = load_call(path)
        audio = audio[:, :2]
        cfg = DetectorConfig()
        fast = Detectors(cfg, sr)
        ref = Detectors(cfg, sr, reference.frame_features, reference.decide, reference.finish)
        _run(fast, audio, len(audio))  # compile / load the kernel cache outside the timing
        dur = len(audio) / sr
        for label, block in (("100ms", LIVE_BLOCK_FRAMES * fast.fl), ("whole", len(audio))):
            w_fast, t_fast, ev_fast = _time(fast, audio, block, min_time)
            w_ref, t_ref, ev_ref = _time(ref, audio, block, min_time)
            same = [(e.kind, e.speaker, round(e.t_start, 2)) for e in ev_fast] == \
                   [(e.kind, e.speaker, round(e.t_start, 2)) for e in ev_ref]
            rt, ratio = dur / t_fast, t_ref / t_fast
            if sr == 8000:
                worst_rt = min(worst_rt, rt)
            worst_ratio = min(worst_ratio, ratio)
            print(f"{path.name[:28]:28} {sr:5d} {label:>8} {rt:7.0f} [{dur / w_fast:6.0f}] "
                  f"{dur / t_ref:5.0f} [{dur / w_ref:5.0f}] {ratio:6.1f} {'yes' if same else 'NO'}")
    rt8 = f"{worst_rt:.0f}x" if worst_rt < float("inf") else "-"
    print(f"worst: {rt8} real time on one core at 8 kHz, {worst_ratio:.1f}x the NumPy version "
          f"(targets: >= 1000x at 8 kHz, >= 10x NumPy)")
    return 0
