"""The reference transcriber: the CTranslate2 original of the demo Whisper model through
faster-whisper. `callcue score-asr --reference` and the Whisper converter's check
(callcue.models.whisper_check) put it next to what callcue's sherpa-onnx model hears.

Needs faster-whisper (the "convert" extra); imported only when a reference is asked for.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...models.whisper_ct2 import Ct2Error

SAMPLE_RATE = 16000


class Ct2Transcriber:
    """The CTranslate2 original through faster-whisper, decoding like sherpa-onnx does
    (greedy unless told, English, no timestamps, no conditioning on earlier text, no VAD)."""

    def __init__(self, ct2_dir: str | Path, compute_type: str = "float32", num_threads: int = 2, beam_size: int = 1):
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            # Ct2Error: the commands that use a reference already report it as a usage error
            raise Ct2Error("the CTranslate2 reference needs faster-whisper: pip install -e '.[convert]'") from None
        self.compute_type = compute_type
        self.beam_size = beam_size     # 1 = greedy, as sherpa-onnx; 5 = faster-whisper's default
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)   # one INFO line per file otherwise
        self.model = WhisperModel(str(ct2_dir), device="cpu", compute_type=compute_type, cpu_threads=num_threads)

    def transcribe(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"faster-whisper needs {SAMPLE_RATE} Hz samples, got {sample_rate}")
        segments, _ = self.model.transcribe(
            np.ascontiguousarray(samples, dtype=np.float32), language="en", task="transcribe", beam_size=self.beam_size,
            best_of=1, temperature=0.0, without_timestamps=True, condition_on_previous_text=False,
            vad_filter=False)
        return " ".join(seg.text.strip() for seg in segments).strip()
