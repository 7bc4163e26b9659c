"""`callcue qa`: which recordings it finds and what it knows about each (names, a CSV/JSON
table, sidecars), bad files listed with their reason, every call into the central store,
and a second run (after an interruption too) that redoes nothing."""
from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from callcue.daemon.qa.discover import CallMeta, discover, load_table
from conftest import needs_demo_calls, wait_until
from helpers import DEMO_CALLS, call, speech, write_wav

CALLCUE = [sys.executable, "-m", "callcue.daemon.cli"]
PATTERN = "{date}_{time}_{agent}_{call_id}"


def stereo(path: Path, dur: float = 12.0, rate: int = 8000, agitated: bool = False) -> Path:
    parts = [("agent", 0.5, speech(3.0, sr=rate)), ("customer", 4.0, speech(3.0, f0=210, sr=rate, seed=1)),
             ("agent", 7.5, speech(3.0, sr=rate, seed=2))]
    if agitated:
        parts.append(("customer", 11.0, speech(3.0, f0=300, level_db=-12, sr=rate, seed=3)))
    return write_wav(path, call(parts, dur, sr=rate), rate)


def recordings(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rate = 16000 if i % 2 else 8000
        stereo(folder / f"2026031{i}_10{i}000_agent{i % 2}_K{i}.wav", 10.0 + i, rate, agitated=i == 1)
    # a mono pair
    x = call([("agent", 0.5, speech(3.0)), ("customer", 4.0, speech(3.0, f0=210, seed=1))], 9.0)
    write_wav(folder / "20260320_110000_agent1_P1-agent.wav", x[:, 0])
    write_wav(folder / "20260320_110000_agent1_P1-customer.wav", x[:, 1])
    # bad ones: not a WAV, a lone mono channel, a mono file, a rate the pipeline does not take
    (folder / "20260320_120000_agent0_B1.wav").write_text("not audio")
    write_wav(folder / "20260320_120500_agent0_B2-agent.wav", x[:, 0])
    write_wav(folder / "20260320_121000_agent0_B3.wav", x[:, 0])
    write_wav(folder / "20260320_121500_agent0_B4.wav", np.zeros((22050, 2), np.int16), 22050)
    return folder


def test_discovery_pairs_mono_files_and_merges_metadata(tmp_path):
    d = recordings(tmp_path / "rec", 2)
    (d / "meta.csv").write_text("file,team,intent,lang\n20260310_100000_agent0_K0,claims,claim,en\n"
                                "20260320_110000_agent1_P1,billing,,zh\n")
    (d / "20260311_101000_agent1_K1.meta.json").write_text(json.dumps({"team": "service", "call_id": "X-9",
                                                                         "started": "2026-03-11T10:10:30"}))
    recs = discover([d], CallMeta(site="hq", team="default"), PATTERN, load_table(d / "meta.csv"))
    by = {r.meta_stem: r for r in recs}
    k0, k1, p1 = by["20260310_100000_agent0_K0"], by["20260311_101000_agent1_K1"], by["20260320_110000_agent1_P1"]
    assert (k0.meta.agent, k0.meta.team, k0.meta.intent, k0.meta.lang, k0.meta.call_id, k0.meta.site) == \
        ("agent0", "claims", "claim", "en", "K0", "hq")
    assert str(k0.meta.start_time()) == "2026-03-10 10:00:00"
    assert (k1.meta.team, k1.meta.call_id, str(k1.meta.start_time())) == ("service", "X-9", "2026-03-11 10:10:30")
    assert [f.name for f in p1.files] == ["20260320_110000_agent1_P1-agent.wav", "20260320_110000_agent1_P1-customer.wav"]
    assert (p1.meta.team, p1.meta.lang, p1.meta.intent) == ("billing", "zh", None)
    lone = by["20260320_120500_agent0_B2"]
    assert "without its customer file" in lone.problem
    # a sidecar with a field that does not exist or a date that is not one: the file's bad reason
    (d / "20260310_100000_agent0_K0.meta.json").write_text(json.dumps({"agnt": "x"}))
    (d / "20260311_101000_agent1_K1.meta.json").write_text(json.dumps({"date": "2026-13-40"}))
    by = {r.meta_stem: r for r in discover([d], pattern=PATTERN)}
    assert "agnt: Extra inputs are not permitted" in by["20260310_100000_agent0_K0"].problem
    assert "is not YYYY-MM-DD" in by["20260311_101000_agent1_K1"].problem
    assert load_table_json(d) == {"a.wav": {"agent": "x"}}


def load_table_json(d: Path) -> dict:
    (d / "m.json").write_text(json.dumps([{"file": "a.wav", "agent": "x"}]))
    return load_table(d / "m.json")


def ledger(store: Path) -> dict[str, tuple[str, str | None]]:
    if not (store / "calls.sqlite3").exists():
        return {}
    db = sqlite3.connect(f"file:{store / 'calls.sqlite3'}?mode=ro", uri=True)
    try:
        return {p: (s, r) for p, s, r in db.execute("SELECT path, status, reason FROM qa_files")}
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def qa(folder: Path, store: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CALLCUE, "qa", str(folder), "--store", str(store), "--name-pattern", PATTERN,
                           "--no-progress", "--no-asr", *extra], capture_output=True, text=True, timeout=timeout)


def test_bulk_run_stores_every_call_lists_bad_files_and_resumes(tmp_path):
    d = recordings(tmp_path / "rec")
    store = tmp_path / "store"
    first = qa(d, store, "--limit", "2", "--workers", "2")
    assert first.returncode == 0, first.stderr
    done = {p for p, (s, _) in ledger(store).items() if s == "done"}
    assert len(done) == 2
    second = qa(d, store, "--workers", "2")
    assert second.returncode == 0, second.stderr
    # the rest: 3 calls and the 3 bad files only a worker finds; the lone mono file was found bad before
    assert "6 processed (3 new calls" in second.stderr and "3 done before" in second.stderr, second.stderr
    led = ledger(store)
    assert len([s for s, _ in led.values() if s == "done"]) == 5
    bad = {Path(p.split("|")[0]).name: r for p, (s, r) in led.items() if s == "bad"}
    assert set(bad) == {"20260320_120000_agent0_B1.wav", "20260320_120500_agent0_B2-agent.wav",
                        "20260320_121000_agent0_B3.wav", "20260320_121500_agent0_B4.wav"}
    assert "not a WAV file" in bad["20260320_120000_agent0_B1.wav"]
    assert "mono recording" in bad["20260320_121000_agent0_B3.wav"]
    assert "22050 Hz is not supported" in bad["20260320_121500_agent0_B4.wav"]
    for name in bad:
        assert name in first.stderr + second.stderr          # listed with the reason
    db = sqlite3.connect(f"file:{store / 'calls.sqlite3'}?mode=ro", uri=True)
    rows = db.execute("SELECT call_id, agent, day, duration_s, source FROM calls ORDER BY call_id").fetchall()
    assert [r[0] for r in rows] == ["K0", "K1", "K2", "K3", "P1"]
    assert rows[1][1:4] == ("agent1", "2026-03-11", 11.0) and {r[4] for r in rows} == {"qa"}
    # every alert the pipeline raised is a row of its call
    assert db.execute("SELECT SUM(alerts) FROM calls").fetchone()[0] == db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
    third = qa(d, store)
    assert "0 processed" in third.stderr and "9 done before" in third.stderr
    # a changed recording is done again
    stereo(d / "20260310_100000_agent0_K0.wav", 14.0)
    fourth = qa(d, store)
    assert "1 processed" in fourth.stderr and "0 new calls" in fourth.stderr    # same call id: stored once


def test_an_interrupted_run_resumes_without_redoing_calls(tmp_path):
    d = tmp_path / "rec"
    d.mkdir()
    for i in range(8):
        stereo(d / f"2026031{i}_100000_agent{i % 3}_I{i}.wav", 40.0)
    store = tmp_path / "store"
    proc = subprocess.Popen([*CALLCUE, "qa", str(d), "--store", str(store), "--name-pattern", PATTERN, "--no-progress",
                             "--no-asr", "--workers", "1"], stderr=subprocess.PIPE, text=True)
    wait_until(lambda: len(ledger(store)) >= 2, 120, "two calls done")
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err
    assert "interrupted" in err
    finished = {p for p, (s, _) in ledger(store).items() if s == "done"}
    assert 2 <= len(finished) < 8
    again = qa(d, store)
    assert again.returncode == 0, again.stderr
    assert f"{8 - len(finished)} processed" in again.stderr and f"{len(finished)} done before" in again.stderr
    for p in finished:                                       # nothing finished before was redone
        assert Path(p).name not in again.stderr
    db = sqlite3.connect(f"file:{store / 'calls.sqlite3'}?mode=ro", uri=True)
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT call_id) FROM calls").fetchone() == (8, 8)


@pytest.mark.needs_models("whisper-tiny.en", "silero-vad")
def test_a_recorded_call_with_speech_recognition_gets_its_scorecard(tmp_path):
    needs_demo_calls()
    d = tmp_path / "rec"
    d.mkdir()
    shutil.copy(DEMO_CALLS / "en_claim_status.wav", d / "20260310_090000_alice_D1.wav")
    store = tmp_path / "store"
    r = subprocess.run([*CALLCUE, "qa", str(d), "--store", str(store), "--name-pattern", PATTERN, "--no-progress",
                        "--workers", "1", "--threads", "2", "--team", "claims"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    db = sqlite3.connect(f"file:{store / 'calls.sqlite3'}?mode=ro", uri=True)
    c = db.execute("SELECT call_id, agent, team, lang, flow, flow_completion, qa_score, talk_ratio, call_type, summary "
                   "FROM calls").fetchone()
    assert c[:4] == ("D1", "alice", "claims", "en")
    assert c[4] == "inbound-service-en" and c[5] > 0.5
    assert c[6] is not None and 0 <= c[6] <= 100 and c[7] is not None and c[9]
    assert db.execute("SELECT COUNT(*) FROM score_items").fetchone()[0] >= 5


def _thread_env(_=None) -> dict:
    import os

    from callcue.daemon.qa.run import THREAD_ENV
    return {k: os.environ.get(k) for k in THREAD_ENV + ("MALLOC_ARENA_MAX",)}


def test_workers_are_spawned_with_their_share_of_the_cores(monkeypatch):
    """Each worker's native thread pools (OpenMP, BLAS, Numba) are sized before it imports
    anything: workers x threads = cores, not one pool thread per core in every worker.
    The parent's environment is its own again once the pool is gone."""
    import multiprocessing as mp
    import os

    from callcue.daemon.qa.run import THREAD_ENV, worker_env

    monkeypatch.setenv("OMP_NUM_THREADS", "8")           # the user's own setting, given back afterwards
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    with worker_env(1):
        with mp.get_context("spawn").Pool(1) as pool:
            child = pool.apply(_thread_env)
    assert child == {**{k: "1" for k in THREAD_ENV}, "MALLOC_ARENA_MAX": "2"}
    assert os.environ["OMP_NUM_THREADS"] == "8" and "NUMBA_NUM_THREADS" not in os.environ


@pytest.mark.needs_models("minilm-l6-v2")
def test_the_embedder_keeps_a_bounded_number_of_shapes(monkeypatch):
    """OpenVINO's CPU plugin keeps kernels per input shape (5000 by default, ~1-2 MB each): a
    worker encoding sentences of every length grew call after call. The cache is capped
    (what the embedder asks OpenVINO for; the compiled model does not report it back)."""
    import openvino

    from callcue.daemon.assist.embed import RUNTIME_CACHE_SHAPES, Embedder

    asked = []
    compile_model = openvino.Core.compile_model
    monkeypatch.setattr(openvino.Core, "compile_model",
                        lambda self, net, device, config: asked.append(dict(config)) or compile_model(self, net, device, config))
    e = Embedder.load("minilm-l6-v2", threads=1)
    assert [c["CPU_RUNTIME_CACHE_CAPACITY"] for c in asked] == [RUNTIME_CACHE_SHAPES] and RUNTIME_CACHE_SHAPES == 64
    assert e.encode(["the policy number", "my car was hit yesterday in the car park"]).shape == (2, e.dim)


def test_asr_model_for_a_language_is_parsed():
    from callcue.daemon.commands.qa import _lang_models

    assert _lang_models(["zh=whisper-base", " en = whisper-tiny.en "]) == {"zh": "whisper-base", "en": "whisper-tiny.en"}
    for bad in ("zh", "=whisper-base", "zh="):
        with pytest.raises(ValueError, match="LANG=MODEL"):
            _lang_models([bad])


@pytest.mark.needs_models("whisper-tiny.en", "whisper-base", "silero-vad")
def test_a_mandarin_call_gets_a_qa_score_from_its_own_model(tmp_path):
    """With the English-only model a Mandarin call is scored on prosody only (no transcript,
    no assist, no QA form); `--asr-model-for zh=whisper-base` gives its calls a Whisper that
    hears Mandarin, and the same run's English calls keep the run's model."""
    needs_demo_calls()
    d = tmp_path / "rec"
    d.mkdir()
    shutil.copy(DEMO_CALLS / "zh_claim_complaint.wav", d / "20260310_100000_li.na_Z1.wav")
    base = [*CALLCUE, "qa", str(d), "--name-pattern", PATTERN, "--no-progress", "--workers", "1", "--threads", "2",
            "--lang", "zh"]
    scores = {}
    for name, extra in (("en-only", []), ("zh-model", ["--asr-model-for", "zh=whisper-base"])):
        store = tmp_path / name
        r = subprocess.run([*base, "--store", str(store), *extra], capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, r.stderr
        db = sqlite3.connect(f"file:{store / 'calls.sqlite3'}?mode=ro", uri=True)
        scores[name] = db.execute("SELECT lang, qa_score, flow FROM calls").fetchone()
        scores[name] += (db.execute("SELECT COUNT(*) FROM score_items").fetchone()[0],)
    assert scores["en-only"][0] == "zh" and scores["en-only"][1] is None
    lang, score, flow, items = scores["zh-model"]
    assert lang == "zh" and score is not None and 0 <= score <= 100 and items >= 5
