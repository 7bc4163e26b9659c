"""`callcue bench embed`: sentence-embedding latency, int8 against fp32 in the same run."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from ..eval.utterances import utterances
from ..text import has_cjk


def _int8_units() -> str:
    """The CPU's int8 dot-product instructions: without them int8 is not faster than fp32."""
    try:
        flags = next((ln.split(":", 1)[1].split() for ln in open("/proc/cpuinfo", encoding="ascii")
                      if ln.startswith("flags")), [])
    except OSError:
        return "unknown"
    have = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return ", ".join(have) if have else "none (no VNNI/AMX: int8 runs on plain AVX2 and gains little or nothing)"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench_embed(n: int = 200, rounds: int = 3, threads: int = 1, model: str = "minilm-l6-v2",
                models_dir: Path | None = None, seed: int = 11) -> int:
    """Per-utterance latency at batch 1 of the int8 and fp32 IRs, measured interleaved in
    one run; fp32/int8 is the figure to compare between runs."""
    from ..assist.embed import EmbedError, Embedder

    try:
        t0 = time.perf_counter()
        e8 = Embedder.load(model, precision="int8", threads=threads, models_dir=models_dir)
        t_load8 = time.perf_counter() - t0
        t0 = time.perf_counter()
        e32 = Embedder.load(model, precision="fp32", threads=threads, models_dir=models_dir)
        t_load32 = time.perf_counter() - t0
    except EmbedError as exc:
        print(f"callcue bench embed: {exc}")
        return 2
    texts = utterances(n, seed)
    n_zh = sum(has_cjk(t) for t in texts)
    print(f"callcue bench embed: {model}, {n} call-centre utterances ({n - n_zh} English, {n_zh} Chinese), "
          f"batch 1, {threads} thread(s), {rounds} interleaved rounds after a warm-up")
    print(f"load (sha256 check + compile): int8 {t_load8:.2f} s, fp32 {t_load32:.2f} s")
    for t in texts[:20]:                         # warm-up: first-inference allocations, caches
        e8.encode([t])
        e32.encode([t])
    print(f"CPU int8 units: {_int8_units()}")
    for e in (e8, e32):      # kernels are picked at the first inference (dynamic shapes)
        print(f"{e.precision} linear layers: " + ", ".join(f"{n} x {k}" for k, n in e.linear_kernels().items()))
    lat: dict[str, list[float]] = {"int8": [], "fp32": []}
    vec: dict[str, list[np.ndarray]] = {"int8": [], "fp32": []}
    for r in range(rounds):
        for i, t in enumerate(texts):
            # alternate which goes first, so neither always runs on a warmer cache
            order = (("int8", e8), ("fp32", e32)) if (i + r) % 2 == 0 else (("fp32", e32), ("int8", e8))
            for name, e in order:
                s = time.perf_counter()
                v = e.encode([t])
                lat[name].append(time.perf_counter() - s)
                if r == 0:
                    vec[name].append(v[0])
    batch = {}
    for name, e in (("int8", e8), ("fp32", e32)):
        s = time.perf_counter()
        for i in range(0, n, 32):
            e.encode(texts[i:i + 32])
        batch[name] = n / (time.perf_counter() - s)
    cos = np.sum(np.stack(vec["int8"]) * np.stack(vec["fp32"]), axis=1)
    print(f"{'':6} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'utt/s b1':>9} {'utt/s b32':>10}")
    for name in ("int8", "fp32"):
        v = lat[name]
        print(f"{name:6} {_pct(v, 50) * 1e3:8.2f} {_pct(v, 95) * 1e3:8.2f} {statistics.fmean(v) * 1e3:8.2f} "
              f"{1 / statistics.fmean(v):9.0f} {batch[name]:10.0f}")
    print(f"fp32/int8: p50 {_pct(lat['fp32'], 50) / _pct(lat['int8'], 50):.2f}x, "
          f"p95 {_pct(lat['fp32'], 95) / _pct(lat['int8'], 95):.2f}x, "
          f"mean {statistics.fmean(lat['fp32']) / statistics.fmean(lat['int8']):.2f}x, "
          f"batch 32 {batch['int8'] / batch['fp32']:.2f}x")
    print(f"int8 vs fp32 cosine: mean {cos.mean():.4f}, min {cos.min():.4f} "
          f"(worst: {texts[int(cos.argmin())]!r})")
    return 0
