"""`callcue run` as a process across restarts, against a Mosquitto of the test's own:
commands sent while the box is down are applied when it is back (persistent session),
a broker that lost its retained store gets every line state again, a call cut by
kill -9 keeps the time it ran, a reused call id is refused, retention purges at
start, every file the daemon writes is private, and a data_dir it cannot write stops
it with a message (issue 11)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callcue.daemon.bus.broker import EmbeddedBroker, free_port
from callcue.daemon.store.calls import CallStore
from conftest import collect, wait_until
from helpers import call, speech, write_wav

CALLCUE = [sys.executable, "-m", "callcue.daemon.cli"]
ROOT = "callcue/v1/rs/f1"
LINES = ("301", "302", "303")


def site(tmp: Path, port: int, extra: str = "", data_dir: str = "data") -> Path:
    wav = write_wav(tmp / "call.wav", call([("agent", 0.5, speech(3.0)), ("customer", 4.0, speech(3.0, f0=210))], 9.0))
    lines = "\n".join(f"""  - id: "{lid}"
    agent: agent{lid}
    source: {{wav: {wav.name}, pace: realtime, loop: true}}""" for lid in LINES)
    cfg = tmp / "site.yaml"
    cfg.write_text(f"""site: rs
floor: f1
box: nuc1
broker: {{url: "mqtt://127.0.0.1:{port}"}}
data_dir: {data_dir}
calls: {{auto: false}}
{extra}
lines:
{lines}
""", encoding="utf-8")
    return cfg


class Box:
    """One `callcue run` process; its output goes to a log file of the test's."""

    def __init__(self, cfg: Path, log: Path):
        self.cfg, self.log = cfg, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Box":
        fh = open(self.log, "a", encoding="utf-8")
        self.proc = subprocess.Popen(CALLCUE + ["run", "--config", str(self.cfg)], stdout=fh, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        fh.close()
        return self

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(60)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def broker(tmp_path):
    b = EmbeddedBroker("127.0.0.1", free_port(), tmp_path / "mosquitto")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def boxes():
    made: list[Box] = []
    yield made
    for b in made:
        if b.proc is not None and b.proc.poll() is None:
            b.proc.kill()
            b.proc.wait()


def online(broker, timeout=90) -> None:
    col = collect(broker.host, broker.port, f"{ROOT}/box/nuc1/status")
    try:
        col.wait_for(lambda ms: ms and ms[-1].payload == b"online", timeout)
    finally:
        col.close()


def cti(col, line: str, payload: dict) -> None:
    col.client.publish(f"{ROOT}/line/{line}/cmd/cti", json.dumps(payload), qos=1).wait_for_publish(10)


def test_commands_sent_while_the_box_is_down_are_applied_in_order_when_it_is_back(tmp_path, broker, boxes):
    box = Box(site(tmp_path, broker.port), tmp_path / "daemon.log")
    boxes.append(box)
    box.start()
    online(broker)
    assert box.stop() == 0
    # the box is down: the phone system goes on
    col = collect(broker.host, broker.port, f"{ROOT}/line/+/state")
    try:
        cti(col, "301", {"op": "call_start", "call_id": "while-down-1", "agent": "Ann"})
        cti(col, "301", {"op": "call_end", "call_id": "while-down-1"})
        cti(col, "301", {"op": "call_start", "call_id": "while-down-2"})
        cti(col, "302", {"op": "call_start", "call_id": "while-down-3"})
        box.start()
        col.wait_for(lambda ms: any(b'"while-down-2"' in m.payload and b"in_call" in m.payload for m in ms)
                     and any(b'"while-down-3"' in m.payload and b"in_call" in m.payload for m in ms), 90)
    finally:
        col.close()
    assert box.stop() == 0
    with CallStore(tmp_path / "data" / "calls") as store:
        first, second = store.get_call("while-down-1"), store.get_call("while-down-2")
        assert first["agent"] == "Ann" and first["status"] == "ended"     # in order: ended before the next began
        assert second["line"] == "301" and store.get_call("while-down-3")["line"] == "302"
        assert second["started"] >= first["ended"]
    assert "Traceback" not in box.text()


def test_a_broker_restarted_without_its_retained_store_gets_every_line_state_again(tmp_path, broker, boxes):
    box = Box(site(tmp_path, broker.port), tmp_path / "daemon.log")
    boxes.append(box)
    box.start()
    online(broker)
    col = collect(broker.host, broker.port, f"{ROOT}/line/+/state")
    cti(col, "302", {"op": "call_start", "call_id": "k-302", "agent": "Bo"})
    col.wait_for(lambda ms: any(b'"k-302"' in m.payload for m in ms), 30)
    col.close()
    broker.stop()
    (broker.data_dir / "mosquitto.db").unlink()             # its retained messages are gone
    broker.start()
    # the box reconnects (1-30 s backoff) and publishes its retained state again at once
    status = collect(broker.host, broker.port, f"{ROOT}/box/nuc1/status")
    status.wait_for(lambda ms: any(m.payload == b"online" for m in ms), 60)
    back = time.monotonic()
    status.close()
    late = collect(broker.host, broker.port, f"{ROOT}/line/+/state")     # a supervisor's new TUI
    try:
        got = late.wait_for(lambda ms: {m.topic.split("/")[-2] for m in ms if m.retain} >= set(LINES), 5)
    finally:
        late.close()
    assert time.monotonic() - back <= 6
    states = {m.topic.split("/")[-2]: json.loads(m.payload) for m in got if m.retain}
    assert states["302"]["status"] == "in_call" and states["302"]["call_id"] == "k-302"
    assert states["301"]["status"] == "idle"
    assert box.stop() == 0


def test_a_call_cut_by_kill_9_is_stored_interrupted_with_the_time_it_ran(tmp_path, broker, boxes):
    box = Box(site(tmp_path, broker.port), tmp_path / "daemon.log")
    boxes.append(box)
    box.start()
    online(broker)
    col = collect(broker.host, broker.port, f"{ROOT}/line/+/state")
    cti(col, "303", {"op": "call_start", "call_id": "cut-1"})
    col.wait_for(lambda ms: any(b'"cut-1"' in m.payload for m in ms), 30)
    col.close()
    began = time.monotonic()
    data = tmp_path / "data" / "calls"
    # every few seconds the store notes that the call still runs (seen.json); wait for a note

    def touched() -> bool:
        try:
            return "cut-1" in json.loads((data / "seen.json").read_text())["seen"]
        except (FileNotFoundError, ValueError):
            return False

    wait_until(touched, 30, "a note that call cut-1 still runs")
    wait_until(lambda: time.monotonic() - began > 11, 15, "the call running for 11 s")
    box.stop(signal.SIGKILL)
    ran = time.monotonic() - began
    box.start()
    online(broker)
    assert box.stop() == 0
    with CallStore(data) as store:
        rec = store.get_call("cut-1")
    assert rec["status"] == "interrupted"
    # it ran `ran` seconds; the record knows it to within the touch interval (5 s)
    assert ran - 7 <= rec["duration_s"] <= ran + 1, (rec["duration_s"], ran)


def test_a_reused_call_id_is_refused_not_merged(tmp_path, broker, boxes):
    box = Box(site(tmp_path, broker.port), tmp_path / "daemon.log")
    boxes.append(box)
    box.start()
    online(broker)
    col = collect(broker.host, broker.port, f"{ROOT}/line/+/state")
    try:
        cti(col, "301", {"op": "call_start", "call_id": "dup-1"})
        cti(col, "301", {"op": "call_end", "call_id": "dup-1"})
        cti(col, "302", {"op": "call_start", "call_id": "dup-1"})       # the same id again, another line
        cti(col, "301", {"op": "call_start", "call_id": "fresh-2"})
        col.wait_for(lambda ms: any(b'"fresh-2"' in m.payload for m in ms), 30)
        assert not any(b'"dup-1"' in m.payload and "/302/" in m.topic for m in col.snapshot())
    finally:
        col.close()
    assert box.stop() == 0
    out = box.text()
    assert "call_start refused: call id 'dup-1' is already recorded" in out
    with CallStore(tmp_path / "data" / "calls") as store:
        rec = store.get_call("dup-1")
        assert rec["line"] == "301" and rec["status"] == "ended"
        assert [c["call_id"] for c in store.list_calls(line="302")] == []


def test_retention_and_private_files(tmp_path, broker, boxes):
    data = tmp_path / "data"
    # an older install: old calls, and an outbox readable by anyone
    with CallStore(data / "calls") as store:
        for i in range(3):
            store.start_call("301", f"old-{i}", "ann", f"2020-01-0{i + 1}T10:00:00+00:00")
            store.add_event(f"old-{i}", "alert", {"id": f"a{i}"})
            store.end_call(f"old-{i}", f"2020-01-0{i + 1}T10:05:00+00:00", 300.0)
    (data / "outbox.sqlite3").touch()
    os.chmod(data / "outbox.sqlite3", 0o644)
    os.chmod(data, 0o755)
    box = Box(site(tmp_path, broker.port, extra="retention: {days: 30}"), tmp_path / "daemon.log")
    boxes.append(box)
    box.start()
    online(broker)
    col = collect(broker.host, broker.port, f"{ROOT}/line/+/state")
    cti(col, "301", {"op": "call_start", "call_id": "new-1"})
    col.wait_for(lambda ms: any(b'"new-1"' in m.payload for m in ms), 30)
    col.close()
    assert box.stop() == 0
    out = box.text()
    assert "retention (30 days): deleted 3 call(s)" in out, out[-3000:]
    with CallStore(data / "calls") as store:
        assert [c["call_id"] for c in store.list_calls(limit=10)] == ["new-1"]
    assert not list((data / "calls" / "events").glob("2020-*"))
    for p in [data, *data.rglob("*")]:
        if p.is_symlink():
            continue
        want = 0o700 if p.is_dir() else 0o600
        assert p.stat().st_mode & 0o777 == want, (p, oct(p.stat().st_mode))
    assert (data / "outbox.sqlite3").exists()


def test_a_data_dir_it_cannot_write_is_a_message_not_a_traceback(tmp_path):
    (tmp_path / "plain-file").write_text("x")
    cfg = site(tmp_path, 1, data_dir="plain-file/data")
    r = subprocess.run(CALLCUE + ["run", "--config", str(cfg)], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert "cannot start: data_dir" in r.stderr and "cannot be written: Not a directory" in r.stderr, r.stderr
