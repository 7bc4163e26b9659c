"""Bounded whatever arrives (issue 11), piece by piece: the speech engine's caps, its VAD
pool and backlog bound; calls of a burst that never reach the recogniser; commands
and call ids from the wire; log lines; the call store's reused ids, interrupted calls,
retention and file modes; health's final latency window; a truncated WAV line.

The whole daemon under a storm is tests/test_storm.py; restarts are tests/test_restarts.py.
"""
from __future__ import annotations

import io
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest

from callcue.daemon.asr.gate import Chunk, SpeechGate
from callcue.daemon.audio import Block, SourceError
from callcue.daemon.bus.commands import CommandError, parse_command
from callcue.daemon.config import AsrConfig, CallsConfig, DetectorConfig, LineConfig, SourceConfig
from callcue.daemon.line import LineAnalyzer
from callcue.daemon.logfmt import OneLineFormatter
from callcue.daemon.prosody.session import Detectors
from callcue.daemon.store.atomic import read_json_file
from callcue.daemon.store.calls import CallStore, DuplicateCallError
from conftest import needs_demo_calls
from helpers import DEMO_CALLS, call, speech, write_pack, write_wav

SR = 8000


# ---------------------------------------------------------------- the speech engine (real models)

needs_asr = pytest.mark.needs_models("whisper-tiny.en", "silero-vad")


def offline_engine(results: list | None = None, **asr):
    from callcue.daemon.asr.setup import build_engine
    return build_engine(AsrConfig(num_threads=1, **asr), (results if results is not None else []).append,
                        preflight=False)


@pytest.fixture(scope="module")
def claim_audio():
    needs_demo_calls()
    from callcue.daemon.replay import load_call
    sr, audio = load_call(DEMO_CALLS / "en_claim_status.wav")
    return sr, audio[: 20 * sr]


@needs_asr
def test_channels_beyond_the_caps_are_refused_counted_and_logged(caplog):
    eng = offline_engine(max_channels=4, max_channels_per_line=2)
    with caplog.at_level(logging.ERROR, "callcue.daemon.asr.engine"):
        assert eng.open("L1", "agent", "c1", SR) and eng.open("L1", "customer", "c1", SR)
        assert not eng.open("L1", "third", "c1", SR)                 # the line's cap
        assert eng.open("L2", "agent", "c2", SR) and eng.open("L2", "customer", "c2", SR)
        assert not eng.open("L3", "agent", "c3", SR)                 # the box's cap
    assert eng.refused == {"L1": 1, "L3": 1} and eng.stats()["refused_channels"] == 2
    assert "refused a channel for line L1 third of call c1" in caplog.text
    # the same speaker's next call replaces its channel; a closed channel frees its place at once
    assert eng.open("L1", "agent", "c1b", SR)
    eng.close("L2", "agent")
    assert eng.open("L3", "agent", "c3", SR)
    eng.step()
    assert eng.stats()["open_channels"] == 4


@needs_asr
def test_closed_channels_give_their_vad_back_at_once(claim_audio):
    """200 calls on one line, each with audio: the VADs made stay two (the pool takes
    the closed ones back), and no closed channel lingers."""
    sr, audio = claim_audio
    eng = offline_engine()
    made = []
    real = eng._vad
    eng._vad = lambda rate: made.append(rate) or real(rate)
    quiet = np.random.default_rng(3).normal(0, 30, (sr // 5, 2)).astype(np.int16)    # line noise: nothing to decode
    chunk = [Chunk(quiet[:, c].copy(), 0.0) for c in (0, 1)]
    for i in range(200):
        for c, who in enumerate(("agent", "customer")):
            assert eng.open("L1", who, f"c{i}", sr)
            eng.feed("L1", who, chunk[c])
        for who in ("agent", "customer"):
            eng.close("L1", who)
        eng.step()
    eng.step()
    assert len(made) == 2, len(made)
    assert not eng.channels and eng.idle()
    assert len(eng._free_vads) == 2


@needs_asr
def test_a_backlog_past_max_pending_utterances_drops_the_oldest(claim_audio, caplog):
    """Decoders that fall behind: what waits stays bounded, and the newest utterances are
    the ones kept (cut here without a decode, as a starved box would)."""
    sr, audio = claim_audio
    eng = offline_engine(max_pending_utterances=4)
    for i in range(3):
        for who in ("agent", "customer"):
            eng.open(f"L{i}", who, f"c{i}", sr)
    eng.step()
    half = sr // 2
    with caplog.at_level(logging.ERROR, "callcue.daemon.asr.offline"):
        for k in range(len(audio) // half):
            for ch in eng.channels.values():
                c = 0 if ch.speaker == "agent" else 1
                eng._accept(ch, Chunk(audio[k * half:(k + 1) * half, c].copy(), k * 0.5), 0.5)
    waiting = sorted(u.order for ch in eng.channels.values() for u in ch.pending)
    assert len(waiting) == 4
    assert eng.dropped_utterances == eng._cuts - 4 > 0
    assert waiting == list(range(eng._cuts - 3, eng._cuts + 1))      # the newest four
    assert "speech recognition is behind" in caplog.text and eng.stats()["dropped_utterances"] == eng.dropped_utterances


# ---------------------------------------------------------------- calls of a burst (line analyzer)

class FakeAsr:
    """What the line asks of the speech engine, recorded."""

    def __init__(self, cap: int = 99):
        self.cfg = AsrConfig()
        self.ops: list[tuple] = []
        self.cap = cap
        self.open_now = 0

    def speech_gate(self, sr):
        return SpeechGate(sr, self.cfg.pre_roll_s, self.cfg.post_roll_s)

    def open(self, line, who, call_id, sr):
        if self.open_now >= self.cap:
            return False
        self.open_now += 1
        self.ops.append(("open", who, call_id))
        return True

    def close(self, line, who):
        self.open_now -= 1
        self.ops.append(("close", who))

    def feed(self, line, who, chunk):
        self.ops.append(("feed", who, round(chunk.t, 2)))
        return True

    def has_call(self, line, call_id):
        return False


def blocks(audio: np.ndarray, t0: float, step: int = SR // 10):
    for i in range(0, len(audio) - step + 1, step):
        yield Block("7", t0 + i / SR, SR, audio[i:i + step, 0].copy(), audio[i:i + step, 1].copy())


def test_calls_shorter_than_min_call_s_never_reach_the_recogniser_nor_get_a_summary(tmp_path):
    from callcue.daemon.assist.content import load_content
    from callcue.daemon.assist.engine import AssistEngine
    from callcue.daemon.config import AssistConfig

    content = load_content(write_pack(tmp_path / "pack"), None, grace_s=2.0, knowledge=False)
    assist = AssistEngine(content, AssistConfig(), None, "whisper-tiny.en", ("en",))
    asr = FakeAsr()
    line = LineConfig(id="7", agent="Ann", source=SourceConfig(wav="x.wav"))
    an = LineAnalyzer(line, CallsConfig(auto=False, min_call_s=1.0), Detectors(DetectorConfig(), SR),
                      asr=asr, assist=assist)
    audio = call([("agent", 0.0, speech(6.0)), ("customer", 0.0, speech(6.0, f0=210))], 6.0)
    feed = blocks(call([("agent", 0.0, speech(21.0))], 21.0), 0.0)
    summaries = []
    for i in range(200):                      # a burst: each call lasts one 100 ms block
        summaries += an.start_call(an.t, "cmd", f"b{i}")
        summaries += an.feed(next(feed))
        summaries += an.end_call("call_end").messages
    summaries += an.flush()
    assert asr.ops == []
    assert not [m for m in summaries if m.output == "summary"]
    # a real call: its channels open once it has lasted 1 s, its first second of speech
    # goes in first and in order, and it gets its summary
    an.start_call(an.t, "cmd", "real")
    t0 = an.t
    out = []
    for b in blocks(audio, an.t):
        out += an.feed(b)
    out += an.end_call("call_end").messages + an.flush()
    opens = [op for op in asr.ops if op[0] == "open"]
    assert opens == [("open", "agent", "real"), ("open", "customer", "real")]
    fed = [op for op in asr.ops if op[0] == "feed" and op[1] == "agent"]
    assert fed[0][2] <= 0.1 and [f[2] for f in fed] == sorted(f[2] for f in fed)
    assert asr.ops.index(opens[0]) < asr.ops.index(fed[0])
    assert [op for op in asr.ops if op[0] == "close"] == [("close", "agent"), ("close", "customer")]
    assert [m for m in out if m.output == "summary" and m.payload["call_id"] == "real"]
    assert t0 >= 0


def test_a_refused_speaker_is_not_fed():
    asr = FakeAsr(cap=1)
    line = LineConfig(id="7", agent="Ann", source=SourceConfig(wav="x.wav"))
    an = LineAnalyzer(line, CallsConfig(auto=False, min_call_s=0.0), Detectors(DetectorConfig(), SR), asr=asr)
    an.start_call(0.0, "cmd", "c1")
    for b in blocks(call([("customer", 0.0, speech(3.0, f0=210)), ("agent", 0.0, speech(3.0))], 3.0), 0.0):
        an.feed(b)
    an.end_call("call_end")
    assert {op[1] for op in asr.ops if op[0] in ("feed", "close")} == {"agent"}


# ---------------------------------------------------------------- the wire

def test_json_nested_5000_deep_is_rejected_not_a_crash():
    for payload in (b"[" * 5000 + b"]" * 5000, b'{"op":"call_start","ivr":' + b'{"a":' * 5000 + b"1" + b"}" * 5001):
        with pytest.raises(CommandError, match="nested more than 32 levels"):
            parse_command("1", payload, "cti")
    ok = parse_command("1", json.dumps({"op": "call_start", "ivr": {"a": {"b": [1, {"c": 2}]}}}).encode(), "cti")
    assert ok.ivr == {"a": {"b": [1, {"c": 2}]}}


@pytest.mark.parametrize("bad", ["a\nb", "c\x00", "x\r\ny", "\x1b[31mred", " lead", "tail ", "a\u2028b", "z" * 129, ""])
def test_call_ids_must_be_printable_and_bounded(bad):
    with pytest.raises(CommandError, match="call_id"):
        parse_command("1", json.dumps({"op": "call_start", "call_id": bad}).encode(), "cti")


def test_a_sip_call_id_is_fine():
    cmd = parse_command("1", json.dumps({"op": "call_start", "call_id": "a84b4c76e66710@pc33.atlanta.com {7}",
                                         "agent": "Zoë 王"}).encode(), "cti")
    assert cmd.call_id == "a84b4c76e66710@pc33.atlanta.com {7}"


def test_log_lines_escape_what_came_from_the_wire():
    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    h.setFormatter(OneLineFormatter("%(levelname)s %(message)s"))
    lg = logging.getLogger("test.onelines")
    lg.addHandler(h)
    lg.propagate = False
    try:
        lg.warning("call %s", "x\nERROR forged line\r\x1b[2J\u2028more")
        try:
            raise ValueError("boom")
        except ValueError:
            lg.exception("handler failed on %s", "t\nt")
    finally:
        lg.removeHandler(h)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "WARNING call x\\nERROR forged line\\r\\x1b[2J\\u2028more"
    assert lines[1] == "ERROR handler failed on t\\nt" and lines[2].startswith("Traceback")   # tracebacks keep their lines


# ---------------------------------------------------------------- the call store

def iso(day: int, minute: int = 0) -> str:
    return f"2024-05-{day:02d}T10:{minute:02d}:00+00:00"


def test_a_reused_call_id_is_refused_even_once_archived(tmp_path):
    with CallStore(tmp_path, hot_limit=2) as store:
        for i in range(8):
            store.start_call("L1", f"c{i}", "ann", iso(1, i))
            store.end_call(f"c{i}", iso(1, i + 1), 60.0)
        store.flush()
        assert (tmp_path / "archive" / "2024-05-01.json").exists()
        archived = {c for c in (f"c{i}" for i in range(8)) if c not in read_json_file(tmp_path / "calls.json")["calls"].__repr__()}
        assert archived
        for cid in ("c0", "c7"):
            assert store.knows(cid)
            with pytest.raises(DuplicateCallError):
                store.start_call("L2", cid, "bob", iso(2))
        assert not store.knows("c8")
    with CallStore(tmp_path, hot_limit=2) as store:      # known again after a restart
        assert store.knows("c0") and store.knows("c7")
        with pytest.raises(DuplicateCallError):
            store.start_call("L2", "c0", "bob", iso(2))


def test_a_call_ended_minutes_ago_is_not_archived_whatever_hot_limit_says(tmp_path):
    from callcue.daemon.contract import now_iso
    with CallStore(tmp_path, hot_limit=2) as store:
        for i in range(10):
            store.start_call("L1", f"n{i}", "ann", now_iso())
            store.end_call(f"n{i}", now_iso(), 0.0)
        store.flush()
        assert store.add_event("n0", "alert", {"id": "late"})      # a late final still lands
        store.flush()
        assert not (tmp_path / "archive").exists()


def test_an_interrupted_call_keeps_the_time_it_ran(tmp_path):
    from callcue.daemon.app import _interrupted_at
    with CallStore(tmp_path) as store:
        store.start_call("L1", "k1", "ann", "2024-05-01T10:00:00+00:00")
        store.touch(["k1"], "2024-05-01T10:03:20+00:00")
        store.start_call("L1", "k2", "ann", "2024-05-01T10:05:00+00:00")
        store.flush()
        recs = {r["call_id"]: r for r in store.open_calls()}
    assert _interrupted_at(recs["k1"]) == ("2024-05-01T10:03:20+00:00", 200.0)
    assert _interrupted_at(recs["k2"]) == ("2024-05-01T10:05:00+00:00", 0.0)     # never touched


def test_retention_purges_calls_events_and_archives_before_the_cutoff(tmp_path):
    with CallStore(tmp_path, hot_limit=2) as store:
        for day in (1, 2, 3, 20):
            for i in range(4):
                cid = f"d{day}-{i}"
                store.start_call("L1", cid, "ann", iso(day, i))
                store.add_event(cid, "alert", {"id": f"a-{cid}"})
                store.end_call(cid, iso(day, i + 1), 60.0)
        store.start_call("L1", "open-old", "ann", iso(2, 30))      # still open: kept
        store.add_event("open-old", "alert", {"id": "a-open"})
        store.flush()
        got = store.purge_before("2024-05-10")
        assert got["calls"] == 12 and got["archives"] >= 1
        left = {c["call_id"] for c in store.list_calls(limit=100)}
        assert left == {f"d20-{i}" for i in range(4)} | {"open-old"}
        assert store.get_call("d1-0") is None and not store.knows("d1-0")
        assert not list((tmp_path / "archive").glob("2024-05-0[123].json"))
        assert sorted(p.name for p in (tmp_path / "events").iterdir()) == ["2024-05-02", "2024-05-20"]
        assert [p.name for p in (tmp_path / "events" / "2024-05-02").iterdir()] == ["open-old.0.json"]
        store.start_call("L1", "d1-0", "ann", iso(21))            # gone for good: the id is free again


def test_the_store_files_are_private(tmp_path):
    old = os.umask(0o022)       # even under a permissive umask
    try:
        with CallStore(tmp_path / "calls") as store:
            store.start_call("L1", "p1", "ann", iso(1))
            store.add_event("p1", "alert", {"id": "x"})
            store.flush()
    finally:
        os.umask(old)
    for p in [tmp_path / "calls", *(tmp_path / "calls").rglob("*")]:
        want = 0o700 if p.is_dir() else 0o600
        assert p.stat().st_mode & 0o777 == want, (p, oct(p.stat().st_mode))


def test_private_modes_tightens_an_old_data_dir(tmp_path):
    from callcue.daemon.app import private_modes
    (tmp_path / "sub").mkdir()
    os.chmod(tmp_path / "sub", 0o755)
    (tmp_path / "outbox.sqlite3").write_bytes(b"")
    os.chmod(tmp_path / "outbox.sqlite3", 0o644)
    (tmp_path / "sub" / "f").write_bytes(b"")
    assert private_modes(tmp_path) >= 3
    assert (tmp_path / "outbox.sqlite3").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "sub").stat().st_mode & 0o777 == 0o700
    assert private_modes(tmp_path) == 0


# ---------------------------------------------------------------- health and sources

def test_final_latency_is_of_the_last_minutes_only():
    from callcue.daemon.app import LATENCY_WINDOW_S, Daemon
    d = Daemon.__new__(Daemon)
    d.final_latency = __import__("collections").deque(maxlen=5000)
    now = time.monotonic()
    d.final_latency.extend([(now - LATENCY_WINDOW_S - 60, 150.0)] * 50)       # a burst long past
    assert d._latency() is None
    d.final_latency.extend([(now - 1, 0.8), (now, 1.2)])
    got = d._latency()
    assert got["n"] == 2 and got["p95"] == 1.2 and got["window_s"] == LATENCY_WINDOW_S


def test_a_truncated_wav_is_a_problem_not_up(tmp_path):
    from callcue.daemon.capture.wav_source import open_wav
    whole = write_wav(tmp_path / "whole.wav", call([("agent", 0.5, speech(2.0))], 4.0))
    open_wav(whole, SR).close()
    blob = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(SourceError, match=r"truncated: its header promises 4\.0 s of audio but the file holds 2\.0 s"):
        open_wav(cut, SR)


def test_a_final_s_latency_is_measured_from_its_own_call_s_audio():
    """Issue 11: final_latency_s read 45-154 s after bursts of short calls, because a new
    call's final was matched with an arrival of the call before (call times restart at 0)."""
    import collections
    import types

    from callcue.daemon.app import LineWorker
    from callcue.daemon.asr.engine import AsrResult

    app = types.SimpleNamespace(final_latency=collections.deque(), emit=lambda msgs: None,
                                store_op=lambda fn, expected=(): None)
    analyzer = types.SimpleNamespace(call=types.SimpleNamespace(call_id="A", t0=0.0), on_asr_result=lambda res: [])
    w = LineWorker.__new__(LineWorker)
    w.app, w.analyzer, w.line = app, analyzer, LineConfig(id="7", source=SourceConfig(wav="x.wav"))
    w.arrivals = collections.deque(maxlen=3000)
    long_ago = time.monotonic() - 100
    w.arrivals.extend((t / 10, long_ago + t / 10) for t in range(1, 600))      # call A: a minute of audio
    nxt = types.SimpleNamespace(call_id="B", agent="", started="2024-05-01T10:00:00+00:00", source="cmd", ivr=None)
    analyzer.call = types.SimpleNamespace(call_id="B", t0=0.0)
    w._call_started(nxt)
    w.arrivals.append((1.0, time.monotonic() - 0.5))                         # call B's first second came 0.5 s ago
    w._result(AsrResult("7", "agent", "B", "hello", True, 0.2, 1.0, 0))
    (_, latency), = app.final_latency
    assert 0.4 < latency < 5, latency


def test_a_full_command_queue_is_counted_and_logged_never_silent(caplog):
    import queue as queue_mod

    from callcue.daemon import memory
    from callcue.daemon.app import LineWorker, _Control

    w = LineWorker.__new__(LineWorker)
    w.line = LineConfig(id="7", source=SourceConfig(wav="x.wav"))
    w.control = queue_mod.Queue(2)
    w.control_dropped = 0
    w._drop_log = memory.LogLimiter(logging.getLogger("callcue.daemon.app"))
    with caplog.at_level(logging.ERROR, "callcue.daemon.app"):
        assert w.post(_Control("cmd", "one"), wait=0.05) and w.post(_Control("cmd", "two"), wait=0.05)
        t = time.monotonic()
        assert not w.post(_Control("cmd", "three"), wait=0.2)       # waited for room, then dropped
        assert time.monotonic() - t >= 0.2
        assert not w.post(_Control("cmd", "four"), wait=0.01)
    assert w.control_dropped == 2
    assert "line 7: control queue full" in caplog.text and "dropped cmd 'three'" in caplog.text
