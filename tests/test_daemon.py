"""The live daemon end to end, in-process: WAV lines -> analysis -> real Mosquitto."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from callcue.daemon.app import Daemon
from callcue.daemon.config import BrokerConfig, LineConfig, SourceConfig, default_config
from callcue.daemon.store.calls import CallStore
from conftest import wait_until
from helpers import call, speech, write_wav

SR = 8000


@pytest.fixture
def sample_call(tmp_path) -> Path:
    # greeting, an interruption by the agent at 3.5 s (2 s overlap), then 6 s of dead air
    audio = call([("customer", 0.5, speech(5.0, f0=210)), ("agent", 3.5, speech(4.0)),
                  ("customer", 13.5, speech(3.0, f0=210))], 17.0)
    return write_wav(tmp_path / "call.wav", audio)


def payloads(col, suffix):
    out = []
    for m in col.snapshot():
        if m.topic.endswith(suffix) and m.payload:
            out.append(json.loads(m.payload))
    return out


def make_daemon(tmp_path, mqtt_broker, lines, site):
    host, port = mqtt_broker
    cfg = default_config(site=site, lines=lines, data_dir=tmp_path / "data",
                         broker=BrokerConfig(url=f"mqtt://{host}:{port}"))
    return Daemon(cfg), cfg


def test_alerts_and_line_down_reach_the_broker(tmp_path, mqtt_broker, collector, sample_call):
    site = f"t{uuid.uuid4().hex[:8]}"
    mono = write_wav(tmp_path / "mono.wav", np.zeros((SR * 2, 1)))
    lines = [LineConfig(id="good", agent="Alice", source=SourceConfig(wav=sample_call, pace="fast")),
             LineConfig(id="bad", agent="Bob", source=SourceConfig(wav=mono, pace="fast"))]
    daemon, cfg = make_daemon(tmp_path, mqtt_broker, lines, site)
    col = collector(*mqtt_broker, f"{cfg.topic_root}/#")
    daemon.start()
    try:
        col.wait_for(lambda ms: any(m.topic.endswith("line/good/state") and b'"idle"' in m.payload
                                    and b"call_id\":null" in m.payload for m in ms[3:]) and
                     any(m.topic.endswith("line/bad/alert") for m in ms), timeout=30)
        good = payloads(col, "line/good/alert")
        kinds = sorted(a["kind"] for a in good)
        assert kinds == ["long_silence", "talk_over"], good
        tov = next(a for a in good if a["kind"] == "talk_over")
        assert tov["speaker"] == "agent" and tov["evidence"]["overlap_s"] >= 1.0
        down = payloads(col, "line/bad/alert")
        assert down[0]["kind"] == "line_down"
        assert "mono" in down[0]["message"] and "channel 1" in down[0]["message"]
        states = payloads(col, "line/bad/state")
        assert states[-1]["status"] == "down"
        # a late subscriber (a TUI started now) sees the retained box status and line states
        late = collector(*mqtt_broker, f"{cfg.topic_root}/#")
        late.wait_for(lambda ms: any(m.retain and m.topic.endswith(f"box/{cfg.box}/status")
                                     and m.payload == b"online" for m in ms)
                      and any(m.retain and m.topic.endswith("line/bad/state") and b'"down"' in m.payload
                              for m in ms), 5)
    finally:
        daemon.stop()
    # the call and its alerts are in the store (the daemon has closed it)
    store = CallStore(tmp_path / "data" / "calls")
    try:
        calls = store.list_calls(line="good")
        assert len(calls) == 1
        rec = store.get_call(calls[0]["call_id"])
        assert {e["payload"]["kind"] for e in rec["events"] if e["kind"] == "alert"} == {"long_silence", "talk_over"}
    finally:
        store.close()


def test_commands_drive_calls_and_bad_commands_are_rejected(tmp_path, mqtt_broker, collector, sample_call):
    site = f"t{uuid.uuid4().hex[:8]}"
    lines = [LineConfig(id="101", agent="Alice", source=SourceConfig(wav=sample_call, pace="realtime", loop=True))]
    daemon, cfg = make_daemon(tmp_path, mqtt_broker, lines, site)
    daemon.cfg = cfg.model_copy(update={"calls": cfg.calls.model_copy(update={"auto": False})})
    col = collector(*mqtt_broker, f"{cfg.topic_root}/#")
    daemon.start()
    cmd = f"{cfg.topic_root}/line/101/cmd/cti"           # the phone system's topic (contract.cmd_topic)
    sup = f"{cfg.topic_root}/line/101/cmd/supervisor"
    try:
        # the daemon subscribes before it announces itself online: commands sent earlier would be lost
        col.wait_for(lambda ms: any(m.topic.endswith("/status") and m.payload == b"online" for m in ms), 20)
        for bad in (b"not json", b"[1,2]", b'{"op":"explode"}', b'{"op":"ivr_context"}', b"\xff\xfe"):
            col.client.publish(cmd, bad, qos=1).wait_for_publish(5)
        col.client.publish(f"{cfg.topic_root}/line/nope/cmd/cti", b'{"op":"call_end"}', qos=1).wait_for_publish(5)
        wait_until(lambda: daemon.rejected_commands == 6, 10, "six rejected commands")
        # well-formed, but not the sender's: a flag from the phone system, a call_start from a
        # supervisor, anything on the role-less topic of contract v1's first version
        col.client.publish(cmd, b'{"op":"flag","reason":"coaching","by":"x"}', qos=1).wait_for_publish(5)
        col.client.publish(sup, b'{"op":"call_start","call_id":"fake"}', qos=1).wait_for_publish(5)
        col.client.publish(f"{cfg.topic_root}/line/101/cmd", b'{"op":"call_end"}', qos=1).wait_for_publish(5)
        wait_until(lambda: daemon.refused_commands == 3, 10, "three refused commands")
        col.client.publish(cmd, json.dumps({"op": "call_start", "call_id": "c-42", "agent": "Alice W"}),
                           qos=1).wait_for_publish(5)
        col.wait_for(lambda ms: any(b'"c-42"' in m.payload and b"in_call" in m.payload for m in ms), 10)
        # the daemon takes one line's commands in the order they were published: the flag
        # lands on the call in progress, before call_end closes it
        col.client.publish(sup, json.dumps({"op": "flag", "reason": "coaching", "by": "sup1"}),
                           qos=1).wait_for_publish(5)
        col.client.publish(cmd, json.dumps({"op": "call_end", "call_id": "c-42"}), qos=1).wait_for_publish(5)
        col.wait_for(lambda ms: payloads(col, "line/101/state")[-1]["status"] == "idle", 10)
        assert daemon.errors == 0
    finally:
        daemon.stop()
    store = CallStore(tmp_path / "data" / "calls")
    try:
        rec = store.get_call("c-42")
        assert rec["agent"] == "Alice W" and rec["ended"]
        # kept both on the call record and as an event of the call
        assert [(f["reason"], f["by"]) for f in rec["flags"]] == [("coaching", "sup1")], rec["flags"]
        flags = [e["payload"] for e in rec["events"] if e["kind"] == "flag"]
        assert [(f["reason"], f["by"]) for f in flags] == [("coaching", "sup1")], rec["events"]
    finally:
        store.close()


def test_speech_results_have_their_own_bounded_queue(tmp_path, caplog):
    """A full command queue never costs a transcript; a worker so far behind that its
    result queue fills drops (never blocks the engine), counts it in health and says so."""
    from callcue.daemon.app import CONTROL_QUEUE, RESULT_QUEUE, LineWorker, _Control
    from callcue.daemon.asr.engine import AsrResult
    from callcue.daemon.assist.setup import Assist
    from callcue.daemon.prosody.session import Detectors

    line = LineConfig(id="7", source=SourceConfig(wav=tmp_path / "x.wav"), sample_rate=SR)
    cfg = default_config(lines=[line], data_dir=tmp_path / "data")
    d = Daemon(cfg)
    d.assist = Assist(None, None, None)
    w = d.workers["7"] = LineWorker(d, line, Detectors(cfg.detectors, SR))
    for _ in range(CONTROL_QUEUE + 2):
        w.post(_Control("status", (True, "test")))
    res = AsrResult("7", "customer", "c1", "my policy number", True, 1.0, 2.0, 0)
    for _ in range(RESULT_QUEUE + 3):
        w.post_result(res)
    assert w.control_dropped == 2 and w.results.qsize() == RESULT_QUEUE
    assert d.health()["lines"]["7"]["results_dropped"] == 3
    assert "speech result queue full" in caplog.text and "final result of call c1" in caplog.text
