"""Speech recognition through real sherpa-onnx with the model the tests generate (random
weights: this checks loading, gating, batching, timing and the wire, not accuracy)."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from callcue.daemon import cli
from callcue.daemon.asr.engine import AsrError
from callcue.daemon.asr.gate import Chunk, SpeechGate, Timeline
from callcue.daemon.asr.setup import build_engine
from callcue.daemon.asr.words import WordSpotter, load_words
from callcue.daemon.config import AsrConfig
from callcue.daemon.text import normalise, syllables
from callcue.models.install import install_built
from callcue.models.transducer_build import make_test_transducer
from helpers import call, speech, write_wav


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    built = tmp_path_factory.mktemp("built")
    make_test_transducer(built)
    install_built("test-transducer", built, models_dir=root)
    return root


def stereo_call(tmp_path) -> Path:
    audio = call([("agent", 0.5, speech(3.0)), ("customer", 2.5, speech(3.0, f0=210)),
                  ("agent", 11.0, speech(2.0))], 14.0)
    return write_wav(tmp_path / "call.wav", audio)


def test_gate_passes_speech_with_pre_and_post_roll_and_maps_time_back():
    gate = SpeechGate(8000, pre_roll_s=0.1, post_roll_s=0.2)
    n = 50                                        # 1 s of frames
    speech = np.zeros(n, bool)
    speech[20:30] = True                          # 0.4 .. 0.6 s
    x = np.arange(n * 160, dtype=np.int16)
    chunks = gate.push(x, 10.0, speech)
    assert len(chunks) == 1
    c = chunks[0]
    assert c.t == pytest.approx(10.0 + 0.4 - 0.1)                     # pre-roll
    assert len(c.samples) == (10 + 5 + 10) * 160                       # pre + speech + post
    assert c.samples[0] == x[(20 - 5) * 160]                           # exact samples
    tl = Timeline()
    tl.add(c.t, len(c.samples) / 8000)
    tl.add(25.0, 1.0)                                                  # after a skipped gap
    assert tl.to_call(0.05) == pytest.approx(c.t + 0.05)
    assert tl.to_call(0.5 + 0.25) == pytest.approx(25.25)
    # audio just before a run's first sample belongs to another moment of the call
    assert tl.run_start(0.5 + 0.1) == pytest.approx(0.5) and tl.run_start(0.3) == 0.0


def test_word_spotting_is_per_speaker_case_and_punctuation_blind_and_once_per_utterance(tmp_path):
    words = tmp_path / "w.txt"
    words.write_text("# comment\nagent: I promise\ncancel my policy\n理赔\n\n", encoding="utf-8")
    phrases = load_words(words)
    agent, customer = WordSpotter(phrases, "agent"), WordSpotter(phrases, "customer")
    assert [h.phrase.text for h in agent.find("Well, I PROMISE it's done!", 1)] == ["I promise"]
    assert agent.find("i promise, I promise", 1) == []                  # once per utterance
    assert [h.phrase.text for h in agent.find("I promise", 2)] == ["I promise"]
    assert customer.find("I promise", 1) == []                          # agent-only phrase
    assert [h.phrase.text for h in customer.find("I want to cancel my policy.", 1)] == ["cancel my policy"]
    assert customer.find("cancel my policyholder", 2) == []             # whole words
    assert [h.phrase.text for h in customer.find("我的理赔进度怎么样", 3)] == ["理赔"]
    assert normalise("Hello, World!") == "hello world"
    assert syllables("I can certainly help") == 6 and syllables("您好请问") == 4


def test_bad_word_list_names_file_and_line(tmp_path):
    from callcue.daemon.yamlfile import ConfigError
    bad = tmp_path / "w.txt"
    bad.write_text("fine\nagent: ???\n")
    with pytest.raises(ConfigError, match=r"w\.txt:2: phrase"):
        load_words(bad)


def test_streaming_replay_publishes_partials_and_finals_decoded_in_batches(tmp_path, models_dir, monkeypatch):
    monkeypatch.setenv("CALLCUE_MODELS_DIR", str(models_dir))
    wav = stereo_call(tmp_path)
    events = tmp_path / "ev.jsonl"
    assert cli.main(["replay", str(wav), "--asr-model", "test-transducer", "--events", str(events)]) == 0
    msgs = [json.loads(l) for l in events.read_text().splitlines()]
    tr = [m for m in msgs if m["topic"].endswith("/transcript")]
    finals = [m for m in tr if m["final"]]
    assert finals and len(tr) > len(finals)                             # partials too
    assert [m["seq"] for m in tr] == list(range(1, len(tr) + 1))
    for f in finals:
        assert 0.0 <= f["t_start"] <= f["t_end"] <= 14.5 and f["speaker"] in ("agent", "customer")
    # no words are decoded in the 5 s without speech
    assert not [f for f in finals if 6.8 < f["t_start"] < 10.5]
    # the idle state comes after the last final
    last_state = max(i for i, m in enumerate(msgs) if m["topic"].endswith("/state"))
    assert all(i < last_state for i, m in enumerate(msgs) if m["topic"].endswith("/transcript"))


def test_engine_decodes_channels_together_and_skips_silence(models_dir):
    from callcue.daemon.audio import Block
    from callcue.daemon.config import CallsConfig, DetectorConfig, LineConfig, SourceConfig
    from callcue.daemon.line import LineAnalyzer
    from callcue.daemon.prosody.session import Detectors

    results = []
    engine = build_engine(AsrConfig(model="test-transducer"), results.append, models_dir, preflight=False)
    analyzers = []
    for i in range(4):
        line = LineConfig(id=f"L{i}", source=SourceConfig(wav="x.wav"), sample_rate=8000)
        an = LineAnalyzer(line, CallsConfig(auto=False), Detectors(DetectorConfig(), 8000), asr=engine)
        an.start_call(0.0, "cmd", call_id=f"c{i}")
        analyzers.append(an)
    audio = call([("agent", 0.5, speech(3.0)), ("customer", 1.0, speech(3.0, f0=210))], 12.0)
    for k in range(0, len(audio), 800):
        for i, an in enumerate(analyzers):
            an.feed(Block(f"L{i}", k / 8000, 8000, audio[k:k + 800, 0].copy(), audio[k:k + 800, 1].copy()))
        engine.step()
    for an in analyzers:
        an.end_call()
    while engine.step() or engine.channels:
        pass
    st = engine.stats()
    assert st["mean_batch"] > 2.0, st                    # 8 channels, decoded together
    assert engine.audio_s < 0.6 * 8 * 12.0, engine.audio_s   # silence was not sent to the recogniser
    assert {r.call_id for r in results if r.final} == {"c0", "c1", "c2", "c3"}


def test_engine_says_whether_a_call_may_still_have_results(models_dir):
    """Line workers ask has_call() from their own thread: a call counts from open() (queued,
    not yet applied by the engine) until its last result is out, closing included."""
    results = []
    engine = build_engine(AsrConfig(model="test-transducer"), results.append, models_dir, preflight=False)
    assert engine.idle() and not engine.has_call("L", "c1")
    engine.open("L", "customer", "c1", 8000)
    assert engine.has_call("L", "c1") and not engine.has_call("L", "c2") and not engine.has_call("M", "c1")
    assert not engine.idle()
    # (the random test model writes words for this voice, not for the default agent one)
    engine.feed("L", "customer", Chunk(call([("customer", 0.2, speech(3.0, f0=210))], 4.0)[:, 1].copy(), 0.0))
    engine.close("L", "customer")
    assert engine.has_call("L", "c1")
    while engine.step() or engine.channels:
        pass
    assert [r.call_id for r in results if r.final] and not engine.has_call("L", "c1") and engine.idle()


def test_wrong_kind_and_missing_model_are_start_up_errors(models_dir, tmp_path):
    with pytest.raises(AsrError, match="not installed"):
        build_engine(AsrConfig(model="whisper-tiny.en"), lambda r: None, tmp_path, preflight=False)
    with pytest.raises(AsrError, match="not in the model manifest"):
        build_engine(AsrConfig(model="no-such-model"), lambda r: None, models_dir, preflight=False)
    with pytest.raises(AsrError, match="hotwords file"):
        build_engine(AsrConfig(model="test-transducer", hotwords_file=tmp_path / "nope.txt"), lambda r: None,
                     models_dir)


def test_model_that_crashes_sherpa_onnx_is_caught_at_start(tmp_path):
    import onnx
    built = tmp_path / "built"
    make_test_transducer(built)
    enc = onnx.load(built / "encoder.onnx")
    del enc.metadata_props[:]                    # sherpa-onnx segfaults on this
    onnx.save(enc, built / "encoder.onnx")
    root = tmp_path / "models"
    install_built("test-transducer", built, models_dir=root)
    with pytest.raises(AsrError, match=r"crashed the recogniser.*model_type"):
        build_engine(AsrConfig(model="test-transducer"), lambda r: None, root)


def test_daemon_publishes_and_stores_transcripts(tmp_path, models_dir, mqtt_broker, collector, monkeypatch):
    from callcue.daemon.app import Daemon
    from callcue.daemon.config import BrokerConfig, LineConfig, SourceConfig, default_config
    from callcue.daemon.store.calls import CallStore

    host, port = mqtt_broker
    site = f"t{uuid.uuid4().hex[:8]}"
    wav = stereo_call(tmp_path)
    cfg = default_config(site=site, data_dir=tmp_path / "data", broker=BrokerConfig(url=f"mqtt://{host}:{port}"),
                         lines=[LineConfig(id="9", source=SourceConfig(wav=wav, pace="fast"))],
                         asr=AsrConfig(model="test-transducer", models_dir=models_dir))
    col = collector(host, port, f"{cfg.topic_root}/#")
    d = Daemon(cfg)
    d.start()
    try:
        col.wait_for(lambda ms: any(m.topic.endswith("/transcript") and b'"final":true' in m.payload for m in ms)
                     and any(m.topic.endswith("line/9/state") and b'"idle"' in m.payload for m in ms[2:]), 30)
    finally:
        d.stop()
    finals = [json.loads(m.payload) for m in col.snapshot()
              if m.topic.endswith("/transcript") and b'"final":true' in m.payload]
    store = CallStore(tmp_path / "data" / "calls")
    try:
        rec = store.get_call(finals[0]["call_id"])
        stored = [e for e in rec["events"] if e["kind"] == "transcript"]
        assert len(stored) == len(finals)
    finally:
        store.close()


def test_hotwords_switch_to_modified_beam_search_and_decode(models_dir, tmp_path):
    from callcue.daemon.asr.gate import Chunk

    hot = tmp_path / "hotwords.txt"
    hot.write_text("CALLCUE\nSUMMIT SHIELD\n")
    results = []
    cfg = AsrConfig(model="test-transducer", hotwords_file=hot, modeling_unit="cjkchar+bpe")
    engine = build_engine(cfg, results.append, models_dir)          # with the child-process trial load
    from callcue.daemon.eval.synth.render import synth_speech
    from callcue.daemon.eval.synth.script import ResolvedParams
    x = (synth_speech("Thank you for calling Summit Shield, how can I help?",
                      ResolvedParams(voice="en-us", speed=170, pitch=50, amplitude=100), 16000) * 16000).astype(np.int16)
    engine.open("h", "agent", "c1", 16000)
    engine.feed("h", "agent", Chunk(np.concatenate([x, np.zeros(16000, np.int16)]), 0.0))
    engine.close("h", "agent")
    while engine.step() or engine.channels:
        pass
    assert any(r.final for r in results)
