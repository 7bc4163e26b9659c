"""Building the configured speech engine (`build_engine`), as `callcue run`, `callcue
replay`, `callcue demo` and the benchmarks do: every problem is a start-up AsrError
naming the model and the fix, never a crash in the middle of a call.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..config import AsrConfig
from .engine import AsrEngine, AsrError, AsrResult
from .factory import construct, resolve_models
from .preflight import run_preflight


def build_engine(cfg: AsrConfig, on_result: Callable[[AsrResult], None], models_dir: Path | None = None,
                 preflight: bool = True) -> AsrEngine:
    """Resolve, verify and load the configured model; AsrError with the fix if that fails.

    Before loading it here, the model is loaded and exercised in a child process
    (preflight.py): some broken models end the process inside sherpa-onnx instead of
    raising, and the daemon must answer those with a message, not a crash."""
    if cfg.hotwords_file is not None and not Path(cfg.hotwords_file).is_file():
        raise AsrError(f"hotwords file {cfg.hotwords_file} does not exist")
    model, vad, record = resolve_models(cfg, models_dir)   # the one full checksum pass
    if preflight:
        problem = run_preflight(cfg.model_copy(update={"models_dir": models_dir}))
        if problem:
            raise AsrError(f"model {cfg.model}: {problem}")
    return construct(cfg, on_result, model, vad, record)
