"""The streaming ASR path through real sherpa-onnx, on a transducer the suite generates.

`make_test_transducer` writes a tiny random-weight LSTM transducer in the exact layout
sherpa-onnx's online transducer loads; these tests run sherpa-onnx's real loading,
feature extraction, batched streaming decode, endpointing, timestamps and hotword
biasing on espeak-ng speech fed in 100 ms chunks. The text is gibberish by design: the
model emits tokens on speech and blanks on silence, which is what the mechanics need.

Several tests pin sherpa-onnx behaviour the daemon's ASR engine must guard against
(a wrong model kind or a missing hotwords file ends the whole process; a stream that is
not ready must never go into decode_streams). Those run in a child process.
"""
from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sherpa_onnx

from callcue.daemon.eval.synth.render import synth_speech
from callcue.daemon.eval.synth.script import ResolvedParams
from callcue.models import transducer_build as tt
from callcue.models.transducer_build import make_test_transducer

RATE = 16000
CHUNK = RATE // 10                    # 100 ms, what a line worker hands over
LEAD_S = 0.3                          # silence before the speech in each stream
# Decisions lag the audio by one encoder chunk (32 frames) plus the 7-frame look-ahead.
DECISION_LAG_S = (tt.T + tt.DECODE_CHUNK_LEN) * 0.01 + 0.1


def _speak(text: str, voice: str, rate: int = RATE) -> np.ndarray:
    return synth_speech(text, ResolvedParams(voice=voice, speed=165, pitch=50, amplitude=100), rate)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> dict[str, Path]:
    return make_test_transducer(tmp_path_factory.mktemp("transducer"), seed=0)


@pytest.fixture(scope="module")
def speech() -> dict[str, np.ndarray]:
    return {
        "en": _speak("hello, thank you for calling, how can I help you today", "en-us"),
        "en2": _speak("my account number is wrong", "en-us+f3"),
        "zh": _speak("您好，请问有什么可以帮您", "cmn-latn-pinyin"),
    }


def _silence(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    # a -60 dBFS noise floor, like the synthetic calls
    return np.random.default_rng(seed).normal(0, 1e-3, int(seconds * rate)).astype(np.float32)


def _recognizer(model: dict[str, Path], **kw) -> sherpa_onnx.OnlineRecognizer:
    return sherpa_onnx.OnlineRecognizer.from_transducer(
        tokens=str(model["tokens"]), encoder=str(model["encoder"]), decoder=str(model["decoder"]),
        joiner=str(model["joiner"]), num_threads=1, **kw)


class Driver:
    """Feeds several streams 100 ms at a time and decodes all ready streams in one batch,
    the way the daemon's ASR engine will; records partials, endpoints and batch sizes."""

    def __init__(self, rec: sherpa_onnx.OnlineRecognizer, audios: list[np.ndarray], rate: int = RATE,
                 batch: bool = True, streams: list | None = None, reset_on_endpoint: bool = True):
        self.rec, self.audios, self.rate, self.batch = rec, audios, rate, batch
        self.streams = streams or [rec.create_stream() for _ in audios]
        self.reset_on_endpoint = reset_on_endpoint
        self.partials: list[list[str]] = [[] for _ in audios]
        # (time fed so far, result at the endpoint) per stream
        self.endpoints: list[list[tuple[float, object]]] = [[] for _ in audios]
        self.batch_sizes: list[int] = []

    def run(self) -> "Driver":
        step = self.rate // 10
        end = max(len(a) for a in self.audios)
        for i in range(0, end, step):
            for s, a in zip(self.streams, self.audios):
                if i < len(a):
                    s.accept_waveform(self.rate, a[i:i + step])
            self._decode_ready()
            t = min(i + step, end) / self.rate
            for k, s in enumerate(self.streams):
                self.partials[k].append(self.rec.get_result_all(s).text)
                if self.rec.is_endpoint(s):
                    self.endpoints[k].append((t, self.rec.get_result_all(s)))
                    if self.reset_on_endpoint:
                        self.rec.reset(s)
        return self

    def _decode_ready(self) -> None:
        while True:
            # never pass a stream that is not ready: sherpa-onnx exits the process
            ready = [s for s in self.streams if self.rec.is_ready(s)]
            if not ready:
                return
            if self.batch:
                self.batch_sizes.append(len(ready))
                self.rec.decode_streams(ready)
            else:
                for s in ready:
                    self.rec.decode_stream(s)

    def results(self):
        return [self.rec.get_result_all(s) for s in self.streams]


# --------------------------------------------------------------------------- the model


def test_generated_layout_matches_sherpa_onnx_lstm_transducer(model):
    import onnx

    def io(m):
        def dims(v):
            return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        return ({i.name: dims(i) for i in m.graph.input}, {o.name: dims(o) for o in m.graph.output},
                {p.key: p.value for p in m.metadata_props})

    enc_in, enc_out, enc_meta = io(onnx.load(model["encoder"]))
    assert enc_in == {"x": ["N", 39, 80], "state0": [2, "N", 64], "state1": [2, "N", 64]}
    assert enc_out == {"encoder_out": ["N", 8, 64], "new_state0": [2, "N", 64], "new_state1": [2, "N", 64]}
    assert {k: enc_meta[k] for k in ("model_type", "decode_chunk_len", "T", "num_encoder_layers",
                                     "d_model", "rnn_hidden_size")} == {
        "model_type": "lstm", "decode_chunk_len": "32", "T": "39", "num_encoder_layers": "2",
        "d_model": "64", "rnn_hidden_size": "64"}
    vocab = model["tokens"].read_text(encoding="utf-8").splitlines()
    dec_in, dec_out, dec_meta = io(onnx.load(model["decoder"]))
    assert dec_in == {"y": ["N", 2]} and dec_out == {"decoder_out": ["N", 64]}
    assert dec_meta == {"context_size": "2", "vocab_size": str(len(vocab))}
    j_in, j_out, _ = io(onnx.load(model["joiner"]))
    assert j_in == {"encoder_out": ["N", 64], "decoder_out": ["N", 64]}
    assert j_out == {"logit": ["N", len(vocab)]}
    # a plausible bilingual table: blank first, BPE pieces, CJK characters, no duplicates
    syms = [line.rsplit(" ", 1)[0] for line in vocab]
    assert [line.rsplit(" ", 1)[1] for line in vocab] == [str(i) for i in range(len(vocab))]
    assert syms[0] == "<blk>" and len(set(syms)) == len(syms) and 250 <= len(syms) <= 600
    assert sum(s.startswith("\u2581") for s in syms) > 100 and sum("\u4e00" <= s[0] <= "\u9fff" for s in syms) > 100


def test_seed_fixes_weights(model, tmp_path):
    again = make_test_transducer(tmp_path / "same", seed=0)
    other = make_test_transducer(tmp_path / "other", seed=1)
    for part in ("encoder", "decoder", "joiner", "tokens"):
        assert again[part].read_bytes() == model[part].read_bytes(), part
    assert other["joiner"].read_bytes() != model["joiner"].read_bytes()


def test_cli_writes_a_loadable_model(tmp_path, speech):
    out = tmp_path / "cli-model"
    proc = subprocess.run([sys.executable, "-m", "callcue.daemon.cli", "models", "make-test-transducer",
                           "--out", str(out), "--seed", "7"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    paths = {line.split(": ", 1)[0]: Path(line.split(": ", 1)[1]) for line in proc.stdout.splitlines()}
    assert set(paths) == {"encoder", "decoder", "joiner", "tokens", "bpe_vocab"}
    assert all(p.is_file() and p.parent == out for p in paths.values())
    rec = _recognizer(paths)
    s = rec.create_stream()
    s.accept_waveform(RATE, np.concatenate([speech["en"], _silence(0.5)]))
    s.input_finished()
    while rec.is_ready(s):
        rec.decode_stream(s)
    assert rec.get_result_all(s).tokens


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("method", ["greedy_search", "modified_beam_search"])
def test_streams_decoded_together_match_one_by_one(model, speech, method):
    rec = _recognizer(model, decoding_method=method)
    # staggered starts so streams become ready at different times; one stream is silence only
    audios = [np.concatenate([_silence(LEAD_S + 0.1 * k, seed=k), x, _silence(1.0, seed=10 + k)])
              for k, x in enumerate([speech["en"], speech["zh"], speech["en2"]])]
    audios.append(_silence(4.0, seed=99))
    batched = Driver(rec, audios).run()
    single = Driver(rec, audios, batch=False).run()

    assert max(batched.batch_sizes) == len(audios) and min(batched.batch_sizes) < len(audios)
    for k, (b, s) in enumerate(zip(batched.results(), single.results())):
        assert b.tokens == s.tokens, k
        assert np.allclose(b.timestamps, s.timestamps), k
    res = batched.results()
    assert all(len(r.tokens) >= 10 for r in res[:3]), [r.text for r in res]
    assert res[3].text == "" and res[3].tokens == []
    # both scripts of the bilingual table come out
    all_tokens = [t for r in res for t in r.tokens]
    assert any(t.startswith(" ") for t in all_tokens) and any("\u4e00" <= t[0] <= "\u9fff" for t in all_tokens)


def test_partials_grow_and_timestamps_follow_the_speech(model, speech):
    rec = _recognizer(model)   # greedy: a partial result only ever gains tokens
    lead = [LEAD_S, 1.0]
    clips = [speech["en"], speech["zh"]]
    audios = [np.concatenate([_silence(lead[k]), clips[k], _silence(0.8)]) for k in range(2)]
    d = Driver(rec, audios).run()
    for k, parts in enumerate(d.partials):
        changes = [b for a, b in zip(parts, parts[1:]) if a != b]
        assert len(changes) >= 5, parts
        assert all(b.startswith(a) for a, b in zip(parts, parts[1:])), parts
        # nothing before the speech could have been decoded yet
        assert parts[int(lead[k] * 10) - 1] == ""
        r = d.results()[k]
        ts = np.array(r.timestamps)
        assert len(ts) == len(r.tokens) >= 10
        assert np.all(np.diff(ts) >= 0), ts
        # tokens sit inside the speech (40 ms frames, a chunk's worth of slack)
        start, end = lead[k], lead[k] + len(clips[k]) / RATE
        assert r.start_time == 0.0
        assert ts[0] >= start - 0.1 and ts[-1] <= end + 0.2, (ts[0], ts[-1], start, end)


def test_telephone_band_8khz_is_resampled(model):
    rec = _recognizer(model)
    clip = _speak("thank you for calling, how can I help you", "en-us", rate=8000)
    d = Driver(rec, [np.concatenate([_silence(0.5, 8000), clip, _silence(0.5, 8000)]), _silence(3.0, 8000)],
               rate=8000).run()
    speech_res, quiet = d.results()
    assert len(speech_res.tokens) >= 5 and quiet.tokens == []
    assert 0.4 <= speech_res.timestamps[0] and speech_res.timestamps[-1] <= 0.5 + len(clip) / 8000 + 0.2


# --------------------------------------------------------------------------- endpoints


def test_endpoint_after_trailing_silence_then_reset(model, speech):
    rule2 = 0.8
    rec = _recognizer(model, enable_endpoint_detection=True, rule1_min_trailing_silence=5.0,
                      rule2_min_trailing_silence=rule2, rule3_min_utterance_length=30.0)
    first, second = speech["en"], speech["en2"]
    gap = 2.0
    audio = np.concatenate([_silence(LEAD_S), first, _silence(gap), second, _silence(gap)])
    end1 = LEAD_S + len(first) / RATE
    start2 = end1 + gap
    end2 = start2 + len(second) / RATE
    d = Driver(rec, [audio]).run()

    eps = d.endpoints[0]
    assert len(eps) == 2, [(t, r.text) for t, r in eps]
    (t1, r1), (t2, r2) = eps
    # rule 2 counts silence from the last emitted token, so it fires no earlier than
    # that plus rule2 and no later than the end of speech plus rule2 plus decision lag
    assert r1.tokens and r1.segment == 0 and r1.start_time == 0.0
    assert r1.timestamps[-1] + rule2 <= t1 <= end1 + rule2 + DECISION_LAG_S, (t1, end1, r1.timestamps[-1])
    assert r2.tokens and r2.segment == 1
    # after reset, timestamps restart at 0 and start_time says where the segment begins
    assert t1 - DECISION_LAG_S <= r2.start_time <= t1
    absolute = r2.start_time + np.array(r2.timestamps)
    assert absolute[0] >= start2 - 0.1 and absolute[-1] <= end2 + 0.2, (absolute, start2, end2)
    assert r2.start_time + r2.timestamps[-1] + rule2 <= t2 <= end2 + rule2 + DECISION_LAG_S
    # the segment-0 tokens are gone from the stream after reset
    assert d.results()[0].text == "" and d.results()[0].segment == 2


def test_endpoint_rule1_on_silence_and_rule3_on_long_speech(model, speech):
    rule1, rule3 = 1.5, 2.0
    rec = _recognizer(model, enable_endpoint_detection=True, rule1_min_trailing_silence=rule1,
                      rule2_min_trailing_silence=5.0, rule3_min_utterance_length=rule3)
    long_talk = np.concatenate([speech["en"], speech["en2"]])
    assert len(long_talk) / RATE > rule3 + 1.0
    d = Driver(rec, [_silence(rule1 + 1.0), np.concatenate([_silence(0.2), long_talk])],
               reset_on_endpoint=False).run()
    # rule 1: only silence, nothing decoded -> endpoint with empty text
    t_quiet, r_quiet = d.endpoints[0][0]
    assert rule1 <= t_quiet <= rule1 + DECISION_LAG_S and r_quiet.text == ""
    # rule 3: the utterance is cut at rule3 seconds even though speech goes on
    t_long, r_long = d.endpoints[1][0]
    assert rule3 <= t_long <= rule3 + DECISION_LAG_S and r_long.tokens
    assert t_long < 0.2 + len(long_talk) / RATE - 1.0


# --------------------------------------------------------------------------- hotwords


def _decode_one(rec, audio, hotwords: str | None = None):
    s = rec.create_stream() if hotwords is None else rec.create_stream(hotwords)
    Driver(rec, [audio], streams=[s]).run()
    return rec.get_result_all(s)


def test_hotwords_bias_modified_beam_search(model, speech, tmp_path):
    audio = np.concatenate([_silence(LEAD_S), speech["en"], _silence(0.5), speech["zh"], _silence(0.8)])
    beam = dict(decoding_method="modified_beam_search", max_active_paths=4,
                modeling_unit="cjkchar+bpe", bpe_vocab=str(model["bpe_vocab"]))
    plain = _decode_one(_recognizer(model, **beam), audio)
    assert plain.context_scores == [] or not any(plain.context_scores)

    # hotwords built from what this random model says anyway, so biasing has a chance:
    # the most frequent pair of Chinese characters and the most frequent English piece
    toks = plain.tokens
    pairs = collections.Counter((a, b) for a, b in zip(toks, toks[1:])
                                if "\u4e00" <= a[0] <= "\u9fff" and "\u4e00" <= b[0] <= "\u9fff" and a != b)
    (a, b), _ = pairs.most_common(1)[0]
    word, _ = collections.Counter(t.strip() for t in toks if t.startswith(" ")).most_common(1)[0]
    phrase = a + b
    hot_file = tmp_path / "hotwords.txt"
    # the English word is given as a word; the bpe vocab splits it into pieces
    hot_file.write_text(f"{phrase}\n{word}\n", encoding="utf-8")

    boosted = _decode_one(_recognizer(model, hotwords_file=str(hot_file), hotwords_score=3.0, **beam), audio)
    assert boosted.text.count(phrase) > plain.text.count(phrase), (phrase, plain.text, boosted.text)
    assert boosted.tokens.count(" " + word) >= plain.tokens.count(" " + word)
    assert len(boosted.context_scores) == len(boosted.tokens)
    assert any(c > 0 for c in boosted.context_scores)

    # the same phrases per stream ("/" separates them), on a recognizer without a file
    per_stream = _decode_one(_recognizer(model, hotwords_score=3.0, **beam), audio, hotwords=f"{phrase}/{word}")
    assert per_stream.tokens == boosted.tokens
    # and a stream of that recognizer without hotwords is unbiased
    assert _decode_one(_recognizer(model, hotwords_score=3.0, **beam), audio).tokens == plain.tokens


# --------------------------------------------------------------------------- bad input


def _broken_copy(model: dict[str, Path], dest: Path) -> dict[str, Path]:
    dest.mkdir()
    return {k: Path(shutil.copy(p, dest / p.name)) for k, p in model.items()}


def test_missing_or_corrupt_model_file_is_a_clear_error(model, tmp_path):
    gone = _broken_copy(model, tmp_path / "gone")
    gone["encoder"].unlink()
    with pytest.raises((AssertionError, RuntimeError), match="encoder.onnx"):
        _recognizer(gone)

    for name, mangle in [("truncated", lambda b: b[: len(b) // 2]), ("garbage", lambda b: b"\x00junk" * 50),
                         ("empty", lambda b: b"")]:
        bad = _broken_copy(model, tmp_path / name)
        bad["joiner"].write_bytes(mangle(bad["joiner"].read_bytes()))
        with pytest.raises(RuntimeError, match=r"Load model from .*joiner\.onnx failed"):
            _recognizer(bad)


def test_failures_that_only_show_when_decoding(model, tmp_path, speech):
    # an encoder in the joiner's place loads fine and fails on the first decode:
    # the engine must run a warm-up decode at start-up, not meet this mid-call
    swapped = _broken_copy(model, tmp_path / "swapped")
    shutil.copy(model["encoder"], swapped["joiner"])
    rec = _recognizer(swapped)
    s = rec.create_stream()
    s.accept_waveform(RATE, _silence(1.0))
    with pytest.raises(RuntimeError, match="Invalid rank for input"):
        while rec.is_ready(s):
            rec.decode_stream(s)

    # a token table shorter than the model's vocabulary fails when a result is read
    short = _broken_copy(model, tmp_path / "short")
    short["tokens"].write_text("<blk> 0\n<sos/eos> 1\n<unk> 2\n", encoding="utf-8")
    rec = _recognizer(short)
    s = rec.create_stream()
    s.accept_waveform(RATE, np.concatenate([speech["en"], _silence(0.5)]))
    while rec.is_ready(s):
        rec.decode_stream(s)
    with pytest.raises(IndexError):
        rec.get_result_all(s)


CHILD = textwrap.dedent("""
    import sys, numpy as np, sherpa_onnx
    d, case = sys.argv[1], sys.argv[2]
    kw = dict(tokens=d + "/tokens.txt", encoder=d + "/encoder.onnx", decoder=d + "/decoder.onnx",
              joiner=d + "/joiner.onnx", num_threads=1)
    if case == "hotwords_file_missing":
        kw.update(decoding_method="modified_beam_search", hotwords_file=d + "/no-such-hotwords.txt")
    rec = sherpa_onnx.OnlineRecognizer.from_transducer(**kw)
    if case == "not_ready_stream":
        a, b = rec.create_stream(), rec.create_stream()
        a.accept_waveform(16000, np.zeros(16000, np.float32))
        b.accept_waveform(16000, np.zeros(800, np.float32))
        rec.decode_streams([a, b])
    print("survived")
""")


@pytest.mark.parametrize("case, message", [
    # a transducer file of the wrong kind (no model_type metadata): sherpa-onnx crashes
    ("wrong_kind", "No model_type in the metadata"),
    ("hotwords_file_missing", "Open hotwords file failed"),
    ("not_ready_stream", "GetFrames"),
])
def test_sherpa_onnx_ends_the_process_on(case, message, model, tmp_path):
    """Pins what the engine must check before calling sherpa-onnx: these are not
    exceptions but the end of the process (exit or segfault)."""
    d = _broken_copy(model, tmp_path / "m")
    if case == "wrong_kind":
        shutil.copy(model["decoder"], d["encoder"])
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "m"), case],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "survived" not in proc.stdout, (proc.returncode, proc.stdout)
    assert message in proc.stderr, proc.stderr
