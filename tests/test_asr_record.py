"""The call record (issue 13): a second pass decodes each speaker's turn whole, after its
live utterances, by the live model or asr.record_model (Whisper base); real sherpa-onnx."""
from __future__ import annotations

import pytest

from callcue.daemon.asr.gate import Chunk
from callcue.daemon.asr.setup import build_engine
from callcue.daemon.config import AsrConfig
from callcue.daemon.eval.wer import wer_tokens
from callcue.daemon.replay import load_call
from conftest import needs_demo_calls
from helpers import DEMO_CALLS

pytestmark = pytest.mark.needs_models("whisper-tiny.en", "silero-vad")
SECONDS = 30


def _run(**asr) -> tuple[list, object]:
    needs_demo_calls()
    sr, audio = load_call(DEMO_CALLS / "en_claim_status.wav")
    audio = audio[:SECONDS * sr]
    results: list = []
    asr = {"record_gap_s": 5.0, **asr}     # the agent's two sentences 0.5 s apart at 24-30 s are one turn
    eng = build_engine(AsrConfig(num_threads=2, **asr), results.append, preflight=False)
    for who in ("agent", "customer"):
        eng.open("L", who, "c", sr)
    half = sr // 2
    for k in range(2 * SECONDS):
        for c, who in enumerate(("agent", "customer")):
            eng.feed("L", who, Chunk(audio[k * half:(k + 1) * half, c].copy(), k * 0.5))
        eng.step()
    for who in ("agent", "customer"):
        eng.close("L", who)
    while eng.step() or eng.channels:
        pass
    return results, eng


def test_every_live_final_is_covered_by_a_record_turn_that_comes_after_it():
    results, eng = _run()
    live = [r for r in results if not r.record]
    record = [r for r in results if r.record]
    assert live and record
    for r in live:
        cover = [t for t in record if t.speaker == r.speaker and t.t_start - 0.01 <= r.t_start and r.t_end <= t.t_end + 0.4]
        assert cover, f"no record turn covers {r.speaker} {r.t_start:.2f}-{r.t_end:.2f}: {r.text!r}"
        assert results.index(cover[0]) > results.index(r)       # the record follows its live finals
    # a turn of one utterance by the live model is not decoded again: the record is the live text
    singles = [t for t in record if sum(t.t_start <= r.t_start <= t.t_end and r.speaker == t.speaker for r in live) == 1]
    assert singles and all(any(r.text == t.text for r in live) for t in singles)
    # a turn of several utterances is decoded whole: one text with the words of all of them
    multi = [t for t in record if t not in singles]
    assert multi and eng.record_decodes == len(multi)
    for t in multi:
        words = sum(len(wer_tokens(r.text)) for r in live if r.speaker == t.speaker and t.t_start <= r.t_start <= t.t_end)
        assert abs(len(wer_tokens(t.text)) - words) <= max(3, words // 5), t.text


def test_no_record_when_turned_off():
    results, _ = _run(record=False)
    assert results and not any(r.record for r in results)


@pytest.mark.needs_models("whisper-base")
def test_the_record_by_whisper_base():
    results, eng = _run(record_model="whisper-base")
    record = [r for r in results if r.record]
    assert eng.record_name == "whisper-base" and record
    # every turn decoded by base (no copies of tiny.en's text)
    assert eng.record_decodes == len(record)
    assert "harbor mutual" in " ".join(r.text.lower() for r in record)
