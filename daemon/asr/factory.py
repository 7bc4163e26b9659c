"""Which backend a model needs, and making it: resolve + construct.

No I/O beyond the model files. setup.py (the daemon, replay, benchmarks) and the
preflight child (preflight.py) both construct engines through here.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from ..config import AsrConfig
from .engine import AsrEngine, AsrError, AsrResult
from .offline import OfflineEngine
from .streaming import StreamingEngine

log = logging.getLogger(__name__)

ONLINE_KINDS = ("online_transducer",)
OFFLINE_KINDS = ("offline_whisper", "offline_sense_voice", "offline_paraformer")


def resolve_models(cfg: AsrConfig, models_dir: Path | None, verify: bool = True):
    """(model, vad model or None, record model or None), of the right kinds; every file
    re-hashed when `verify` (sizes only otherwise, for a caller that has just verified them)."""
    from callcue.models.installed import ModelError, check_kind, resolve

    try:
        model = resolve(cfg.model, models_dir=models_dir, verify=verify)
        check_kind(model, ONLINE_KINDS + OFFLINE_KINDS, engine="speech recognition")
        if model.entry is not None and model.entry.estimate:
            log.warning("asr model %s is a production-model ESTIMATE: random weights with the official shapes, "
                        "for sizing (callcue bench asr --model); its transcripts are gibberish", model.name)
        vad = None
        if model.kind in OFFLINE_KINDS:
            vad = resolve(cfg.vad_model, models_dir=models_dir, verify=verify)
            check_kind(vad, "vad", engine="voice activity")
        record = None
        if vad is not None and cfg.record and cfg.record_model and cfg.record_model != cfg.model:
            record = resolve(cfg.record_model, models_dir=models_dir, verify=verify)
            check_kind(record, "offline_whisper", engine="the call record (asr.record_model)")
        return model, vad, record
    except ModelError as exc:
        raise AsrError(str(exc)) from None


def construct(cfg: AsrConfig, on_result: Callable[[AsrResult], None], model, vad, record=None) -> AsrEngine:
    """Load the resolved model into the engine of its kind (AsrError if it will not load)."""
    if vad is None:
        return StreamingEngine(cfg, model, on_result)
    return OfflineEngine(cfg, model, vad, on_result, record)
