"""Call store on real TinyDB files: atomic writes under SIGKILL, corrupt files,
the CallStore API across close/reopen, crash recovery, bounded write-behind."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from tinydb import TinyDB

from callcue.daemon.store import (AtomicJSONStorage, BadInput, CallEndedError, CallStore, CorruptStoreError, DuplicateCallError,
                                  StoreBusyError, StoreClosedError, StoreLockedError, UnknownAlertError,
                                  UnknownCallError)
from callcue.daemon.store.atomic import read_json_file

T0 = "2024-05-01T09:00:00+08:00"


def iso(minute: int, day: int = 1) -> str:
    return f"2024-05-{day:02d}T{9 + minute // 60:02d}:{minute % 60:02d}:00+08:00"


# ---------------------------------------------------------------- atomic storage under SIGKILL

WRITER = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from tinydb import TinyDB
    from tinydb.storages import Storage
    from callcue.daemon.store.atomic import AtomicJSONStorage

    class Naive(Storage):
        # control: what an in-place rewrite does (truncate, then write)
        def __init__(self, path): self.path = Path(path)
        def read(self):
            return json.loads(self.path.read_text()) if self.path.exists() and self.path.stat().st_size else None
        def write(self, data): self.path.write_text(json.dumps(data))

    path, kind = sys.argv[1], sys.argv[2]
    db = TinyDB(path, storage=AtomicJSONStorage if kind == "atomic" else Naive)
    t = db.table("t")
    n = len(t)
    print("ready", flush=True)
    while True:
        t.insert({"n": n, "pad": "x" * 3000})
        n += 1
""")


def _kill_during_writes(tmp_path: Path, kind: str, rounds: int, stop_on_break: bool) -> list[str]:
    """Run the writer, SIGKILL it at a random moment, check the file; `rounds` times.
    Returns the problems found (empty = every file loaded with a consistent prefix)."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    path = tmp_path / f"{kind}.json"
    rng = random.Random(1234)
    problems: list[str] = []
    last_n = 0
    for r in range(rounds):
        proc = subprocess.Popen([sys.executable, str(script), str(path), kind], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready", "writer did not start"
            time.sleep(rng.uniform(0.05, 0.35))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        try:
            data = json.loads(path.read_bytes())
            ns = sorted(d["n"] for d in data["t"].values())
            if ns != list(range(len(ns))):
                problems.append(f"round {r}: not a prefix: {ns[:5]}..{ns[-5:]}")
            elif len(ns) < last_n:
                problems.append(f"round {r}: lost committed documents ({len(ns)} < {last_n})")
            last_n = len(ns)
        except (ValueError, KeyError, OSError) as exc:
            problems.append(f"round {r}: broken file: {exc!r}")
            if stop_on_break:
                break
            path.unlink()
            last_n = 0
    return problems


def test_sigkill_mid_write_leaves_a_complete_file(tmp_path):
    problems = _kill_during_writes(tmp_path, "atomic", rounds=12, stop_on_break=False)
    assert problems == []
    # the writer really was writing: the file grew across the rounds
    data = read_json_file(tmp_path / "atomic.json")
    assert len(data["t"]) > 20
    # temp files a killed writer left behind are removed when the storage opens
    AtomicJSONStorage(tmp_path / "atomic.json")
    assert list(tmp_path.glob(".atomic.json.*")) == []


def test_harness_catches_a_non_atomic_writer(tmp_path):
    """The same harness against an in-place writer finds a broken file: the atomic
    test above can fail."""
    problems = _kill_during_writes(tmp_path, "naive", rounds=60, stop_on_break=True)
    assert problems, "60 SIGKILLs never caught the in-place writer mid-write"
    assert "broken file" in problems[-1] or "not a prefix" in problems[-1]


# ---------------------------------------------------------------- corrupt files

@pytest.mark.parametrize("blob, reason", [
    (b'{"calls": {"1": {"call_id": "c1", "line": "L1"', "truncated"),
    (b"hello, not json", "invalid JSON"),
    (b"", "file is empty"),
    (b'{"calls": [1, 2]}', "table 'calls' is a JSON list"),
])
def test_corrupt_calls_file_is_reported_and_kept_aside_on_repair(tmp_path, blob, reason):
    (tmp_path / "calls.json").write_bytes(blob)
    with pytest.raises(CorruptStoreError) as err:
        CallStore(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "calls.json") in msg and reason in msg and "--repair" in msg
    # the failed open released the lock and left the file as it was
    assert (tmp_path / "calls.json").read_bytes() == blob
    with CallStore(tmp_path, repair=True) as store:
        assert store.list_calls() == []
        store.start_call("L1", "c2", "ann", T0)
    aside = list(tmp_path.glob("calls.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == blob
    assert read_json_file(tmp_path / "calls.json")["calls"]["1"]["call_id"] == "c2"


def test_tinydb_with_atomic_storage_names_the_bad_file(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"_default": {"1": {"a": 1}, "2": {"a"')
    db = TinyDB(path, storage=AtomicJSONStorage)
    with pytest.raises(CorruptStoreError, match=r"t\.json: corrupt call store file \(truncated"):
        db.all()


def test_corrupt_event_segment_of_open_call(tmp_path):
    with CallStore(tmp_path) as store:
        store.start_call("L1", "c1", "ann", T0)
        store.add_event("c1", "transcript", {"text": "hello"})
    seg = tmp_path / "events" / "2024-05-01" / "c1.0.json"
    seg.write_bytes(seg.read_bytes()[:-7])
    with pytest.raises(CorruptStoreError, match="c1.0.json"):
        CallStore(tmp_path)
    with CallStore(tmp_path, repair=True) as store:
        assert store.get_call("c1")["events"] == []
        assert store.add_event("c1", "transcript", {"text": "again"})
    assert len(list(seg.parent.glob("c1.0.json.corrupt-*"))) == 1


# ---------------------------------------------------------------- API round trip

def test_round_trip_across_close_and_reopen(tmp_path):
    store = CallStore(tmp_path)
    store.start_call("L1", "c1", "ann", iso(0), "cmd", {"intent": "billing", "lang": "zh"})
    store.start_call("L2", "c2", "bob", iso(1), "auto", None)
    assert store.add_event("c1", "transcript", {"speaker": "customer", "text": "我的账单不对", "t_start": 1.0})
    assert store.add_event("c1", "alert", {"id": "al-1", "kind": "talk_over", "severity": "warn"})
    assert store.add_event("c2", "alert", {"id": "al-2", "kind": "long_silence"})
    assert store.ack_alert(None, "al-1", "sup-zhang") == "c1"  # found by alert id alone
    assert store.ack_alert("c2", "al-2", "sup-li") == "c2"
    store.flag_call("c1", "take_over", "sup-zhang", "customer asked for a manager")
    store.end_call("c1", iso(5), 240.5)
    store.close()

    with CallStore(tmp_path) as store:
        c1 = store.get_call("c1")
        assert {k: c1[k] for k in ("line", "agent", "started", "source", "ivr", "ended", "duration_s", "status")} == {
            "line": "L1", "agent": "ann", "started": iso(0), "source": "cmd",
            "ivr": {"intent": "billing", "lang": "zh"}, "ended": iso(5), "duration_s": 240.5, "status": "ended"}
        assert [e["kind"] for e in c1["events"]] == ["transcript", "alert", "ack", "flag"]
        assert [e["seq"] for e in c1["events"]] == [0, 1, 2, 3]
        assert c1["events"][0]["payload"]["text"] == "我的账单不对"
        assert c1["events"][2]["payload"] == {"alert_id": "al-1", "by": "sup-zhang"}
        assert c1["flags"][0]["reason"] == "take_over" and c1["flags"][0]["note"] == "customer asked for a manager"
        assert c1["counts"] == {"transcript": 1, "alert": 1, "ack": 1, "flag": 1}
        assert [c["call_id"] for c in store.list_calls()] == ["c2", "c1"]
        assert [c["call_id"] for c in store.list_calls(line="L1")] == ["c1"]
        assert [c["call_id"] for c in store.open_calls()] == ["c2"]
        # alert ids of open calls are indexed again after the restart
        assert store.ack_alert(None, "al-2", "sup-wang") == "c2"
        store.add_event("c2", "transcript", {"text": "after restart"})
        assert [e["kind"] for e in store.get_call("c2")["events"]] == ["alert", "ack", "ack", "transcript"]
        assert store.get_call("nope") is None


def test_reads_are_snapshots_and_see_the_callers_writes(tmp_path):
    with CallStore(tmp_path) as store:
        store.start_call("L1", "c1", "ann", T0)
        store.add_event("c1", "alert", {"id": "a", "evidence": {"words": ["x"]}})
        got = store.get_call("c1")  # queued behind the writes: sees them
        assert len(got["events"]) == 1
        got["events"][0]["payload"]["evidence"]["words"].append("mutated")
        got["agent"] = "mallory"
        again = store.get_call("c1")
        assert again["agent"] == "ann" and again["events"][0]["payload"]["evidence"]["words"] == ["x"]


def test_bad_input_is_refused_with_clear_errors(tmp_path):
    with CallStore(tmp_path) as store:
        store.start_call("L1", "c1", "ann", T0)
        with pytest.raises(BadInput, match="call_id 'a\\\\nb' must be 1-128 printable"):
            store.start_call("L1", "a\nb", "ann", T0)
        with pytest.raises(BadInput, match="must be 1-128"):
            store.start_call("L1", "x" * 129, "ann", T0)
        with pytest.raises(ValueError, match="started 'yesterday' is not an ISO 8601 time"):
            store.start_call("L1", "c9", "ann", "yesterday")
        with pytest.raises(ValueError, match="source must be one of"):
            store.start_call("L1", "c9", "ann", T0, source="manual")
        with pytest.raises(DuplicateCallError, match="c1"):
            store.start_call("L2", "c1", "bob", T0)
        with pytest.raises(ValueError, match="alert payload cannot be stored as JSON"):
            store.add_event("c1", "alert", {"id": "x", "words": {"a", "b"}})
        with pytest.raises(ValueError, match="alert payload cannot be stored as JSON"):
            store.add_event("c1", "alert", {"rate": float("nan")})
        with pytest.raises(ValueError, match="written by ack_alert"):
            store.add_event("c1", "ack", {})
        with pytest.raises(ValueError, match="event kind 'Bad Kind'"):
            store.add_event("c1", "Bad Kind", {})
        with pytest.raises(UnknownCallError, match="c404"):
            store.add_event("c404", "alert", {})
        with pytest.raises(UnknownCallError, match="c404"):
            store.flag_call("c404", "x", "sup")
        with pytest.raises(UnknownAlertError, match="pass its call_id"):
            store.ack_alert(None, "never-raised", "sup")
        with pytest.raises(ValueError, match="duration_s"):
            store.end_call("c1", T0, -1)
        store.end_call("c1", T0, 1.0)
        with pytest.raises(CallEndedError, match="already ended"):
            store.end_call("c1", T0, 1.0)
        with pytest.raises(UnknownCallError):
            store.end_call("c404", T0, 1.0)
        assert store.stats()["apply_errors"] == 0
    with pytest.raises(StoreClosedError):
        store.add_event("c1", "alert", {})


@pytest.mark.parametrize("call_id", ["abc123@10.0.0.1", "{6F9619FF-8B86-D011-B42D-00C04FC964FF}", "../../etc/passwd",
                                     ".hidden", "呼叫-42", "%h" + "0" * 40, "é" * 128])
def test_phone_system_call_ids_become_safe_file_names(tmp_path, call_id):
    with CallStore(tmp_path, segment_events=2) as store:
        store.start_call("L1", call_id, "ann", T0)
        for i in range(3):
            store.add_event(call_id, "transcript", {"i": i})
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    folder = tmp_path / "events" / "2024-05-01"
    segs = [p for p in files if p.parent == folder]
    assert len(segs) == 2 and len(files) == 4  # .lock, calls.json, two segments: nothing outside the store
    assert all(len(p.name.encode()) < 255 and not p.name.startswith(".") for p in segs)
    with CallStore(tmp_path, segment_events=2) as store:
        store.add_event(call_id, "transcript", {"i": 3})
        assert [e["payload"]["i"] for e in store.get_call(call_id)["events"]] == [0, 1, 2, 3]
        assert store.open_calls()[0]["call_id"] == call_id


def test_one_process_owns_the_directory(tmp_path):
    store = CallStore(tmp_path)
    with pytest.raises(StoreLockedError, match=f"in use by another process \\(pid {os.getpid()}\\)"):
        CallStore(tmp_path)
    store.close()
    CallStore(tmp_path).close()


def test_event_segments_bound_each_file_and_continue_after_reopen(tmp_path):
    with CallStore(tmp_path, segment_events=10) as store:
        store.start_call("L1", "c1", "ann", T0)
        for i in range(35):
            assert store.add_event("c1", "transcript", {"i": i})
    folder = tmp_path / "events" / "2024-05-01"
    sizes = {p.name: len(read_json_file(p)["events"]) for p in folder.glob("c1.*.json")}
    assert sizes == {"c1.0.json": 10, "c1.1.json": 10, "c1.2.json": 10, "c1.3.json": 5}
    with CallStore(tmp_path, segment_events=10) as store:
        for i in range(35, 40):
            store.add_event("c1", "transcript", {"i": i})
        events = store.get_call("c1")["events"]
    assert [e["seq"] for e in events] == list(range(40)) and [e["payload"]["i"] for e in events] == list(range(40))


def test_old_ended_calls_move_to_the_day_archive(tmp_path):
    with CallStore(tmp_path, hot_limit=5) as store:
        for i in range(20):
            day = 1 + i // 10
            store.start_call(f"L{i % 3}", f"c{i:02d}", "ann", iso(i, day))
            store.add_event(f"c{i:02d}", "alert", {"id": f"a{i}"})
            store.end_call(f"c{i:02d}", iso(i + 1, day), 60.0)
        store.flush()
        hot = read_json_file(tmp_path / "calls.json")["calls"]
        assert len(hot) <= 5 + 1
        assert sorted(p.name for p in (tmp_path / "archive").iterdir()) == ["2024-05-01.json", "2024-05-02.json"]
        listed = [c["call_id"] for c in store.list_calls(limit=20)]
        assert listed == [f"c{i:02d}" for i in reversed(range(20))]
        assert [c["call_id"] for c in store.list_calls(line="L0", limit=3)] == ["c18", "c15", "c12"]
        # an archived call is still readable and can be flagged for QA
        store.flag_call("c00", "qa_review", "qa-1")
        with pytest.raises(UnknownCallError, match="no open or recent call"):
            store.add_event("c00", "alert", {})
    with CallStore(tmp_path, hot_limit=5) as store:
        c00 = store.get_call("c00")
        assert c00["flags"][0]["reason"] == "qa_review"
        assert [e["kind"] for e in c00["events"]] == ["alert", "flag"]
        assert len(store.list_calls(limit=100)) == 20


# ---------------------------------------------------------------- crash recovery

CALL_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from callcue.daemon.store import CallStore
    data, tag = Path(sys.argv[1]), sys.argv[2]
    store = CallStore(data, flush_interval_s=0.05, segment_events=40)
    ids = [f"{tag}-{k}" for k in range(3)]
    for k, cid in enumerate(ids):
        store.start_call(f"L{k}", cid, f"agent{k}", f"2024-05-01T10:0{k}:00+08:00", "auto")
    store.flush()
    print("ready", flush=True)
    i = 0
    while True:
        k = i % 3
        while not store.add_event(ids[k], "transcript", {"i": i, "text": "x" * 200}):
            time.sleep(0.001)  # the caller's own back-pressure keeps the sequence gap-free
        i += 1
""")


def _events_on_disk(data: Path, tag: str) -> int:
    # read while the writer renames files over these: each read sees a whole file
    n = 0
    for p in (data / "events").glob(f"*/{tag}-*.json"):
        doc = read_json_file(p)
        n += len(doc["events"]) if doc else 0
    return n


def test_sigkill_of_a_busy_store_then_recovery(tmp_path):
    script = tmp_path / "call_writer.py"
    script.write_text(CALL_WRITER)
    data = tmp_path / "data"
    for rnd, delay in enumerate((0.0, 0.25, 0.6)):
        tag = f"r{rnd}"
        proc = subprocess.Popen([sys.executable, str(script), str(data), tag], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 30
            while (on_disk := _events_on_disk(data, tag)) < 60:  # kill it mid-stream, not before
                assert time.monotonic() < deadline and proc.poll() is None, f"writer stalled at {on_disk} events"
                time.sleep(0.01)
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        with CallStore(data) as store:
            open_ids = [c["call_id"] for c in store.open_calls()]
            assert open_ids == [f"{tag}-{k}" for k in range(3)]  # earlier rounds were closed below
            total = 0
            for k, cid in enumerate(open_ids):
                events = store.get_call(cid)["events"]
                # a consistent prefix: gap-free seq, and the writer's own numbering
                assert [e["seq"] for e in events] == list(range(len(events)))
                assert [e["payload"]["i"] for e in events] == [k + 3 * s for s in range(len(events))]
                total += len(events)
                store.end_call(cid, "2024-05-01T11:00:00+08:00", 3600.0, status="interrupted")
            assert total >= on_disk, f"round {rnd}: {on_disk} events were on disk before the kill, {total} after"
        with CallStore(data) as store:
            assert store.open_calls() == []
            assert {c["status"] for c in store.list_calls(limit=100)} == {"interrupted"}


# ---------------------------------------------------------------- bounded write-behind

def test_full_queue_drops_events_without_blocking_and_refuses_call_boundaries(tmp_path):
    # block_s well above scheduling noise, so "did not block" and "blocked" stay apart on a busy box
    store = CallStore(tmp_path, queue_size=20, block_s=1.0)
    store.start_call("L1", "c1", "ann", T0)
    with store._hold_writer():  # the writer is stuck, as on a stalled disk
        for i in range(20):
            assert store.add_event("c1", "transcript", {"i": i})
        t = time.perf_counter()
        assert store.add_event("c1", "transcript", {"i": 20}) is False
        assert time.perf_counter() - t < 0.5, "add_event blocked on a full queue"
        st = store.stats()
        assert st["dropped_events"] == 1 and st["pending"] == 20 and st["queue_size"] == 20
        t = time.perf_counter()
        with pytest.raises(StoreBusyError, match="start was not recorded"):
            store.start_call("L2", "c2", "bob", T0)
        assert 0.9 < time.perf_counter() - t < 5.0
    store.start_call("L2", "c2", "bob", T0)  # the failed attempt left no reservation behind
    assert [e["payload"]["i"] for e in store.get_call("c1")["events"]] == list(range(20))
    store.close()


def test_writes_are_batched_and_reach_disk_within_the_interval(tmp_path):
    interval = 0.2
    store = CallStore(tmp_path, flush_interval_s=interval)
    store.start_call("L1", "c1", "ann", T0)
    seg = tmp_path / "events" / "2024-05-01" / "c1.0.json"
    t0 = time.monotonic()
    n = 0
    # a count, not a time budget: a loaded machine sleeps longer than asked
    while n < 300 or time.monotonic() - t0 < 1.0:
        store.add_event("c1", "transcript", {"i": n})
        n += 1
        time.sleep(0.002)
    elapsed = time.monotonic() - t0
    st = store.stats()
    # hundreds of events, but at most one flush per interval (plus the first, immediate one)
    assert st["flushes"] <= elapsed / interval + 3, (n, st)
    # the last event is on disk within the interval, without close()
    deadline = time.monotonic() + interval + 1.0
    while time.monotonic() < deadline:
        data = read_json_file(seg)
        if data and len(data["events"]) == n:
            break
        time.sleep(0.02)
    assert len(read_json_file(seg)["events"]) == n
    assert time.monotonic() - (t0 + elapsed) < interval + 1.0
    assert store.stats()["last_flush_age_s"] is not None
    store.close()


def test_concurrent_writers_keep_every_event(tmp_path):
    with CallStore(tmp_path) as store:
        for k in range(8):
            store.start_call(f"L{k}", f"c{k}", "ann", T0)

        def line(k: int) -> None:
            for i in range(150):
                assert store.add_event(f"c{k}", "transcript", {"i": i})

        threads = [threading.Thread(target=line, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    with CallStore(tmp_path) as store:
        for k in range(8):
            assert [e["payload"]["i"] for e in store.get_call(f"c{k}")["events"]] == list(range(150))


# ---------------------------------------------------------------- store-check command

def test_store_check_finds_and_repairs_damaged_files(tmp_path, capsys):
    from callcue.daemon.cli import main

    with CallStore(tmp_path) as store:
        store.start_call("L1", "c1", "ann", T0)
        store.add_event("c1", "transcript", {"text": "hello"})
        store.end_call("c1", T0, 1.0)
    assert main(["store-check", str(tmp_path)]) == 0
    assert "OK, 2 file(s) read" in capsys.readouterr().out
    seg = tmp_path / "events" / "2024-05-01" / "c1.0.json"
    seg.write_bytes(b'{"events": {"1": ')
    with CallStore(tmp_path) as store:
        with pytest.raises(CorruptStoreError, match="c1.0.json"):  # the daemon only sees it when read
            store.get_call("c1")
        assert main(["store-check", str(tmp_path)]) == 2  # the daemon owns the store
        assert "in use by another process" in capsys.readouterr().err
    assert main(["store-check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{seg}: truncated" in out and "--repair" in out
    assert main(["store-check", str(tmp_path), "--repair"]) == 0
    assert "moved aside to c1.0.json.corrupt-" in capsys.readouterr().out
    with CallStore(tmp_path) as store:
        assert store.get_call("c1")["events"] == []
