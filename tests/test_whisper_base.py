"""Whisper base (issue 13): assembled from two PyPI packages with every byte checked,
converted to sherpa-onnx's int8 layout, multilingual; real sherpa-onnx decoding."""
from __future__ import annotations

import numpy as np
import pytest

from callcue.models import whisper_parts
from callcue.models.whisper_ct2 import Ct2Error

PARTS = pytest.mark.needs_packages(*whisper_parts.MODULES, hint="pip install -e '.[convert]'")


@PARTS
def test_a_damaged_part_is_refused_before_anything_is_joined(tmp_path, monkeypatch):
    i, rel, _ = whisper_parts.FILES["config.json"]
    monkeypatch.setitem(whisper_parts.FILES, "config.json", (i, rel, "0" * 64))
    with pytest.raises(Ct2Error, match="sha256"):
        whisper_parts.assemble(tmp_path)
    assert not (tmp_path / whisper_parts.ASSEMBLED).exists()


@PARTS
def test_the_halves_join_into_the_pinned_model_bin(tmp_path):
    from callcue.models.files import sha256_file
    out = whisper_parts.assemble(tmp_path)
    assert sha256_file(out / "model.bin") == whisper_parts.MODEL_BIN_SHA256
    assert {p.name for p in out.iterdir()} == {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    assert whisper_parts.assemble(tmp_path) == out      # an intact copy is kept


@pytest.mark.needs_models("whisper-base")
def test_installed_base_is_multilingual_and_hears_english():
    from callcue.daemon.eval.synth.render import synth_speech
    from callcue.daemon.eval.synth.script import ResolvedParams
    from callcue.daemon.eval.wer import wer
    from callcue.models.installed import resolve
    from callcue.models.whisper_check import SherpaTranscriber, model_files

    folder = resolve("whisper-base").directory
    assert model_files(folder).encoder.name == "base-encoder.int8.onnx"
    rec = SherpaTranscriber(folder, verify=False)
    assert rec.metadata["is_multilingual"] == "1" and "zh" in rec.metadata["all_language_codes"].split(",")
    text = "Thank you for calling, how can I help you with your insurance policy today?"
    x = synth_speech(text, ResolvedParams(voice="en-us", speed=165, pitch=50, amplitude=100), 16000)
    pad = np.zeros(4800, np.float32)
    assert wer(text, rec.transcribe(np.concatenate([pad, x, pad]))) <= 0.2
