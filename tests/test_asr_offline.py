"""The offline engine (silero VAD + Whisper tiny.en through real sherpa-onnx): how it
orders and overlaps decodes. Needs the demo model (hardware/provision.sh builds it)."""
from __future__ import annotations

import threading

import pytest

from callcue.daemon.asr.gate import Chunk
from callcue.daemon.asr.offline import OfflineEngine
from callcue.daemon.asr.setup import build_engine
from callcue.daemon.config import AsrConfig
from callcue.daemon.replay import load_call
from conftest import needs_demo_calls, wait_until
from helpers import DEMO_CALLS

pytestmark = pytest.mark.needs_models("whisper-tiny.en", "silero-vad")
SECONDS = 14      # of each demo call: a few utterances per channel


@pytest.fixture(scope="module")
def calls():
    needs_demo_calls()
    out = []
    for name in ("en_claim_status.wav", "en_billing_angry.wav"):
        sr, audio = load_call(DEMO_CALLS / name)
        out.append((sr, audio[:SECONDS * sr]))
    return out


def _engine(results: list, **asr) -> OfflineEngine:
    eng = build_engine(AsrConfig(num_threads=2, **asr), results.append, preflight=False)
    assert isinstance(eng, OfflineEngine)
    return eng


def _feed(eng, calls, step: bool) -> None:
    """Both channels of each call as its own line, in 0.5 s chunks, interleaved like live lines."""
    for i, (sr, _) in enumerate(calls):
        for who in ("agent", "customer"):
            eng.open(f"L{i}", who, f"c{i}", sr)
    half = [sr // 2 for sr, _ in calls]
    for k in range(2 * SECONDS):
        for i, (sr, audio) in enumerate(calls):
            for c, who in enumerate(("agent", "customer")):
                eng.feed(f"L{i}", who, Chunk(audio[k * half[i]:(k + 1) * half[i], c].copy(), k * 0.5))
        if step:
            eng.step()
    for i in range(len(calls)):
        for who in ("agent", "customer"):
            eng.close(f"L{i}", who)


def _by_channel(results) -> dict:
    out: dict = {}
    for r in results:
        assert r.final
        if r.record:          # the call record's turns: tests/test_asr_record.py
            continue
        out.setdefault((r.line, r.speaker), []).append((r.utterance, round(r.t_start, 3), r.text))
    return out


def test_step_driven_rounds_are_deterministic_and_in_cut_order(calls):
    runs = []
    for _ in range(2):
        results: list = []
        eng = _engine(results)
        _feed(eng, calls, step=True)
        while eng.step() or eng.channels:
            pass
        runs.append(results)
    a, b = runs
    assert len({(r.line, r.speaker) for r in a}) == 4 and len(a) >= 6     # some channels say more than one
    # same results in the same order, however the two decode threads happened to finish
    assert [(r.line, r.speaker, r.utterance, r.text) for r in a] == [(r.line, r.speaker, r.utterance, r.text) for r in b]
    for seq in _by_channel(a).values():
        assert [u for u, _, _ in seq] == sorted(u for u, _, _ in seq)        # a channel's finals in order
        assert [t for _, t, _ in seq] == sorted(t for _, t, _ in seq)
    assert "help you today" in " ".join(r.text.lower() for r in a)


def test_engine_thread_decodes_while_it_feeds_and_keeps_channel_order(calls):
    ref: list = []
    eng = _engine(ref)
    _feed(eng, calls, step=True)
    while eng.step() or eng.channels:
        pass
    assert eng.stats()["busy_decodes"] == 0      # step(): always the accurate padding

    results: list = []
    eng = _engine(results, whisper_busy_tail_s=AsrConfig().whisper_tail_s)    # one padding: same text as ref
    lock, running, peak = threading.Lock(), [0], [0]
    real = eng._decode_one

    def decode_one(seg, rec):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            return real(seg, rec)
        finally:
            with lock:
                running[0] -= 1

    eng._decode_one = decode_one
    eng.start()
    assert eng.rec_busy is None               # one padding: no second copy, even live
    try:
        _feed(eng, calls, step=False)
        wait_until(eng.idle, 120, "every channel decoded and closed",
                   detail=eng.stats)
    finally:
        eng.stop()
    assert eng.stats()["errors"] == 0
    # the same utterances and texts as the step-driven run (each decode is the same input)
    assert _by_channel(results) == _by_channel(ref)
    assert peak[0] == 2                 # both decode threads were busy at once


def test_a_backlog_is_decoded_with_the_short_padding_and_stays_in_order(calls):
    """Everything fed at once is a backlog the live engine works off with its second,
    short-padding recogniser; every channel still gets its finals, in order."""
    results: list = []
    eng = _engine(results)
    eng.start()
    assert eng.rec_busy is not None           # loaded by start(): only the live engine needs it
    try:
        _feed(eng, calls, step=False)
        wait_until(eng.idle, 120, "every channel decoded and closed",
                   detail=eng.stats)
    finally:
        eng.stop()
    st = eng.stats()
    assert st["errors"] == 0
    assert st["busy_decodes"] > 0
    seq = _by_channel(results)
    assert len(seq) == 4
    for s in seq.values():
        assert [u for u, _, _ in s] == sorted(u for u, _, _ in s)
    assert "help you" in " ".join(r.text.lower() for r in results)


def test_a_fast_talker_keeps_the_words_past_sherpa_onnx_token_cap():
    """sherpa-onnx lets greedy Whisper write 6 tokens per second of audio; a fast turn says
    more. The engine decodes such an utterance again with silence after it, so the final
    has more tokens than the first decode was allowed and ends where the speech ended."""
    import numpy as np

    from callcue.daemon.asr.offline import whisper_token_cap
    from callcue.daemon.eval.synth.render import synth_speech
    from callcue.daemon.eval.synth.script import ResolvedParams

    text = ("The refund will go back to the card you paid with, it can take up to ten working days depending on "
            "your bank, and you will receive an email confirmation as soon as it has been processed on our side.")
    x = synth_speech(text, ResolvedParams(voice="en-us", speed=330, pitch=50, amplitude=100), 16000)
    audio = (np.concatenate([np.zeros(8000, np.float32), x, np.zeros(16000, np.float32)]) * 32767).astype(np.int16)
    results: list = []
    eng = _engine(results)
    eng.open("L", "agent", "c", 16000)
    for k in range(0, len(audio), 8000):
        eng.feed("L", "agent", Chunk(audio[k:k + 8000].copy(), k / 16000))
        eng.step()
    eng.close("L", "agent")
    while eng.step() or eng.channels:
        pass
    live = [r for r in results if not r.record]     # the call record's turn (second pass) comes after it
    assert eng.stats()["cap_retries"] == 1 and len(live) == 1
    r = live[0]
    assert len(r.tokens) > whisper_token_cap(round((r.t_end - r.t_start) * 16000))
    assert r.text.endswith("our side.") and len(r.timestamps) in (0, len(r.tokens))
