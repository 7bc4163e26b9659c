"""Trial load of a speech model in a child process.

Some broken inputs make sherpa-onnx end the whole process (exit or segfault) instead of
raising: an encoder without metadata, a missing hotwords file, a stream fed wrongly.
The daemon must survive a bad model file with a clear message, so it loads and
exercises the configured model here first, in a process of its own.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from ..config import AsrConfig
from .factory import construct, resolve_models
from .gate import Chunk


def trial(cfg_json: str) -> None:
    cfg = AsrConfig.model_validate_json(cfg_json)
    # the parent has just re-hashed these files; sizes are enough here
    engine = construct(cfg, lambda res: None, *resolve_models(cfg, cfg.models_dir, verify=False))
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    tone = (3000 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.int16)
    noise = rng.normal(0, 300, 16000).astype(np.int16)
    for rate in (16000, 8000):
        engine.open("preflight", "agent", "preflight", rate)
        engine.feed("preflight", "agent", Chunk(np.concatenate([tone, noise])[: 2 * rate], 0.0))
        engine.step()
        engine.close("preflight", "agent")
        while engine.step() or engine.channels:
            pass


def run_preflight(cfg, timeout: float = 300.0) -> str | None:
    """None when the model loads and decodes; else what went wrong, for the operator."""
    proc = subprocess.run([sys.executable, "-m", "callcue.daemon.asr.preflight", cfg.model_dump_json()],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode == 0:
        return None
    lines = [l for l in (proc.stderr or "").splitlines() if l.strip() and "Creating a resampler" not in l
             and not l.strip().startswith(("in_sample_rate", "output_sample_rate"))]
    how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
    return f"the model crashed the recogniser in a trial load ({how}): " + " | ".join(lines[-4:])


if __name__ == "__main__":
    try:
        trial(sys.argv[1])
    except Exception as exc:   # the parent shows this text to the operator
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(3)
