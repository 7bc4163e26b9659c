"""MQTT bus against a real Mosquitto: last will, retained state, outage + outbox, re-subscribe,
command validation."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from callcue.daemon import contract
from callcue.daemon.bus import (AckAlert, BrokerAddress, BrokerError, Bus, CallStart, CommandError, EmbeddedBroker,
                                Flag, IvrContext, Outbox, parse_command, port_is_open)
from callcue.daemon.bus import broker as broker_mod
from callcue.daemon.bus.commands import OPS
from callcue.daemon.config import BrokerConfig
from conftest import free_port, wait_until


def make_bus(root: str, host: str, port: int, outbox=None, box: str | None = None) -> Bus:
    box = box or f"box{uuid.uuid4().hex[:6]}"
    return Bus(root, box, BrokerAddress(host, port, keepalive=5), outbox, client_id=f"callcue-{box}")


def status_texts(messages, topic):
    return [m.text for m in messages if m.topic == topic]


def publish_raw(host: str, port: int, topic: str, payload: bytes) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    c.connect(host, port)
    c.loop_start()
    try:
        c.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        c.disconnect()
        c.loop_stop()


# -- status and last will ------------------------------------------------------------

def test_online_while_running_offline_after_graceful_stop(mqtt_broker, mqtt_root, collector):
    host, port = mqtt_broker
    bus = make_bus(mqtt_root, host, port)
    topic = f"{mqtt_root}/box/{bus.box}/status"
    bus.start()
    try:
        wait_until(lambda: bus.connected, 5, "bus connected")
        late = collector(host, port, topic)  # subscribes after 'online' was published: sees the retained copy
        got = late.wait_for(lambda ms: status_texts(ms, topic) == ["online"])
        assert got[0].retain
    finally:
        bus.stop(timeout=3)
    late.wait_for(lambda ms: status_texts(ms, topic) == ["online", "offline"])
    later = collector(host, port, topic)
    got = later.wait_for(lambda ms: len(ms) >= 1)
    assert (got[0].text, got[0].retain) == ("offline", True)


CHILD = """
import sys, time
from callcue.daemon.bus import Bus, BrokerAddress
root, box, host, port = sys.argv[1:5]
bus = Bus(root, box, BrokerAddress(host, int(port), keepalive=5), None, client_id="callcue-" + box)
bus.start()
while True:
    time.sleep(1)
"""


def test_sigkill_leaves_offline_retained(mqtt_broker, mqtt_root, collector):
    host, port = mqtt_broker
    box = f"box{uuid.uuid4().hex[:6]}"
    topic = f"{mqtt_root}/box/{box}/status"
    watch = collector(host, port, topic)
    child = subprocess.Popen([sys.executable, "-c", CHILD, mqtt_root, box, host, str(port)])
    try:
        watch.wait_for(lambda ms: "online" in status_texts(ms, topic), timeout=10)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(5)
        # the broker publishes the will as soon as it sees the socket close
        watch.wait_for(lambda ms: status_texts(ms, topic)[-1:] == ["offline"], timeout=5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    got = collector(host, port, topic).wait_for(lambda ms: len(ms) >= 1)
    assert (got[0].text, got[0].retain) == ("offline", True)


# -- retained state, thread-safe publish -------------------------------------------------

def test_retained_line_state_for_late_subscriber(mqtt_broker, mqtt_root, collector):
    host, port = mqtt_broker
    bus = make_bus(mqtt_root, host, port)
    bus.start()
    try:
        bus.publish(contract.line_state("L7", "alice", "c-1", "in_call", "2024-01-01T00:00:00Z"))
        bus.publish(contract.line_state("L7", "alice", None, "idle", "2024-01-01T00:05:00Z"))
        assert bus.flush(5), bus.stats()
    finally:
        bus.stop(timeout=3)
    got = collector(host, port, f"{mqtt_root}/line/+/state").wait_for(lambda ms: len(ms) >= 1)
    assert got[0].topic == f"{mqtt_root}/line/L7/state" and got[0].retain
    assert json.loads(got[0].payload) == {"line": "L7", "agent": "alice", "call_id": None, "status": "idle",
                                          "since": "2024-01-01T00:05:00Z"}


def test_publish_from_many_threads_keeps_each_threads_order(mqtt_broker, mqtt_root, collector):
    host, port = mqtt_broker
    col = collector(host, port, f"{mqtt_root}/line/+/alert")
    bus = make_bus(mqtt_root, host, port)
    bus.start()
    n_threads, per = 4, 150

    def worker(t: int) -> None:
        for i in range(per):
            bus.publish(contract.Message(f"line/T{t}/alert", {"t": t, "i": i}, qos=1))

    try:
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert bus.flush(10), bus.stats()
        got = col.wait_for(lambda ms: len(ms) >= n_threads * per, timeout=10)
        stats = bus.stats()
    finally:
        bus.stop(timeout=3)
    for t in range(n_threads):
        seen = [json.loads(m.payload)["i"] for m in got if m.topic.endswith(f"/T{t}/alert")]
        assert seen == list(range(per))
    assert stats["outbox_depth"] == 0 and stats["published"] >= n_threads * per


# -- broker outage -------------------------------------------------------------------

def test_outage_keeps_qos1_in_outbox_across_restart_and_delivers_in_order(private_broker, tmp_path, collector):
    host, port = private_broker.host, private_broker.port
    root = "callcue/v1/outage/f1"
    outbox = tmp_path / "var" / "outbox.sqlite"
    # a persistent session: the broker queues for it while it is away, so nothing depends on who reconnects first
    col = collector(host, port, f"{root}/line/+/transcript", client_id="test-outage-watch", clean_session=False)

    bus1 = make_bus(root, host, port, outbox, box="b1")
    bus1.start()
    wait_until(lambda: bus1.connected, 5, "bus connected")
    private_broker.stop()
    wait_until(lambda: not bus1.connected, 5, "bus noticed the outage")

    def final(i: int) -> contract.Message:
        return contract.transcript("L1", "c-1", "agent", f"sentence {i}", True, i, i + 1, i)

    for i in range(150):
        bus1.publish(final(i))
    bus1.publish(contract.transcript("L1", "c-1", "agent", "partial", False, 0, 1, 0))  # QoS 0: dropped, counted
    s = bus1.stats()
    assert (s["outbox_depth"], s["dropped_qos0"], s["connected"]) == (150, 1, False)
    t0 = time.monotonic()
    bus1.stop(timeout=2)  # daemon restart while the broker is still away
    assert time.monotonic() - t0 < 4
    with sqlite3.connect(outbox) as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 150

    bus2 = make_bus(root, host, port, outbox, box="b1")
    bus2.start()  # broker down: must not raise
    for i in range(150, 250):
        bus2.publish(final(i))
    assert bus2.stats()["outbox_depth"] == 250
    private_broker.start()
    try:
        got = col.wait_for(lambda ms: len(ms) >= 250, timeout=15)
        assert bus2.flush(5), bus2.stats()
        stats = bus2.stats()
    finally:
        bus2.stop(timeout=3)
    assert [json.loads(m.payload)["seq"] for m in got] == list(range(250))
    assert stats["outbox_depth"] == 0 and stats["connected"]
    with sqlite3.connect(outbox) as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0


def test_unacked_messages_stay_in_outbox_and_are_resent_after_broker_crash(private_broker, collector):
    host, port = private_broker.host, private_broker.port
    root = "callcue/v1/crash/f1"
    bus = make_bus(root, host, port)
    bus.start()
    try:
        wait_until(lambda: bus.connected, 5, "bus connected")
        os.kill(private_broker.pid, signal.SIGSTOP)  # a hung broker: the socket takes the bytes, no PUBACK comes
        try:
            for i in range(30):
                bus.publish(contract.line_state(f"L{i}", "a", None, "idle", "2024-01-01T00:00:00Z"))
            # all 30 go out on the wire; none is acknowledged, so all stay in the outbox
            s = wait_until(lambda: (st := bus.stats())["inflight"] == 30 and st, 5, "30 messages in flight",
                           detail=bus.stats)
            assert (s["outbox_depth"], s["inflight"], s["published"]) == (30, 30, 0), s
        finally:
            os.kill(private_broker.pid, signal.SIGKILL)
            os.kill(private_broker.pid, signal.SIGCONT)
        private_broker.stop()
        wait_until(lambda: not bus.connected, 5, "bus noticed the crash")
        private_broker.start()  # the crash lost everything the broker had in memory
        assert bus.flush(10), bus.stats()
        status = f"{root}/box/{bus.box}/status"
        got = collector(host, port, status).wait_for(lambda ms: len(ms) >= 1)
        assert (got[0].text, got[0].retain) == ("online", True)  # re-announced on reconnect
    finally:
        bus.stop(timeout=3)
    got = collector(host, port, f"{root}/line/+/state").wait_for(lambda ms: len(ms) >= 30)
    assert sorted(m.topic for m in got) == sorted(f"{root}/line/L{i}/state" for i in range(30))


def test_resubscribes_after_broker_restart_and_survives_handler_errors(private_broker, caplog):
    host, port = private_broker.host, private_broker.port
    root = "callcue/v1/resub/f1"
    bus = make_bus(root, host, port)
    got: list[tuple[str, bytes]] = []
    cond = threading.Condition()

    def handler(subtopic: str, payload: bytes) -> None:
        if payload == b"boom":
            raise RuntimeError("handler bug")
        with cond:
            got.append((subtopic, payload))
            cond.notify_all()

    def send_until_heard(payload: bytes, timeout: float = 8.0) -> None:
        # the SUBSCRIBE travels on the bus's own connection, so retry until it is in place
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            publish_raw(host, port, f"{root}/line/L1/cmd", payload)
            with cond:
                if cond.wait_for(lambda: ("line/L1/cmd", payload) in got, 0.3):
                    return
        raise AssertionError(f"{payload!r} never reached the handler; stats {bus.stats()}")

    bus.subscribe("line/+/cmd", handler)
    bus.start()
    try:
        wait_until(lambda: bus.connected, 5, "bus connected")
        send_until_heard(b'{"op":"ivr_context"}')             # the subscription is in place
        publish_raw(host, port, f"{root}/line/L1/cmd", b"boom")  # raises inside the handler
        send_until_heard(b'{"op":"call_end"}')                  # delivered after the boom, so handled after it
        assert bus.stats()["handler_errors"] == 1
        assert any(r.exc_info and "handler bug" in str(r.exc_info[1]) for r in caplog.records)  # with traceback
        private_broker.stop()
        wait_until(lambda: not bus.connected, 5, "bus noticed the outage")
        private_broker.start()
        wait_until(lambda: bus.connected, 10, "bus reconnected")
        send_until_heard(b'{"op":"call_start"}')
        assert bus.stats()["reconnects"] == 1
    finally:
        bus.stop(timeout=3)


def test_retained_state_survives_embedded_broker_restart(private_broker, collector):
    host, port = private_broker.host, private_broker.port
    root = "callcue/v1/persist/f1"
    bus = make_bus(root, host, port)
    bus.start()
    bus.publish(contract.line_state("L2", "bob", None, "idle", "2024-01-01T00:00:00Z"))
    assert bus.flush(5)
    bus.stop(timeout=3)
    private_broker.stop()
    private_broker.start()
    got = collector(host, port, f"{root}/line/L2/state").wait_for(lambda ms: len(ms) >= 1)
    assert got[0].retain and json.loads(got[0].payload)["agent"] == "bob"


# -- outbox --------------------------------------------------------------------------

def test_outbox_fifo_bounded_and_persistent(tmp_path):
    path = tmp_path / "ob.sqlite"
    ob = Outbox(path, max_rows=5)
    ids = [ob.put(f"t/{i}", b"%d" % i, 1, i % 2 == 0) for i in range(7)]
    assert ids == sorted(ids) and len(ob) == 5 and ob.dropped == 2
    rows = ob.after(0, 10)
    assert [r.topic for r in rows] == [f"t/{i}" for i in range(2, 7)]
    assert (rows[0].payload, rows[0].retain, rows[1].retain) == (b"2", True, False)
    assert [r.topic for r in ob.after(rows[1].id, 2)] == ["t/4", "t/5"]
    assert ob.delete(rows[0].id) and not ob.delete(rows[0].id)
    ob.close()
    ob = Outbox(path, max_rows=5)
    assert len(ob) == 4 and ob.after(0, 1)[0].topic == "t/3"
    for r in ob.after(0, 10):
        ob.delete(r.id)
    # after a full drain new ids still grow, so "after(last sent id)" never skips a new row
    assert ob.put("t/new", b"", 1, False) > ids[-1]
    ob.close()


def test_outbox_rejects_bad_bound():
    with pytest.raises(ValueError, match="max_rows"):
        Outbox(None, max_rows=0)


# -- embedded broker -----------------------------------------------------------------

def test_embedded_broker_port_in_use_names_port(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(BrokerError, match=rf"port {port} .*already in use.*broker:.*embedded_broker.port"):
            EmbeddedBroker("127.0.0.1", port, tmp_path).start()


def test_embedded_broker_missing_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(broker_mod, "SEARCH_DIRS", ())
    with pytest.raises(BrokerError, match="apt install mosquitto"):
        EmbeddedBroker("127.0.0.1", free_port(), tmp_path).start()


def test_embedded_broker_start_stop_and_log(tmp_path):
    port = free_port()
    with EmbeddedBroker("127.0.0.1", port, tmp_path / "b") as b:
        assert b.running and port_is_open("127.0.0.1", port)
    assert not port_is_open("127.0.0.1", port)
    assert "mosquitto" in (tmp_path / "b" / "mosquitto.log").read_text()


def test_broker_address_from_site_config():
    a = BrokerAddress.of(BrokerConfig(url="mqtts://mq.local", username="u", password="p", keepalive_s=45))
    assert (a.host, a.port, a.tls, a.username, a.password, a.keepalive) == ("mq.local", 8883, True, "u", "p", 45)


def test_bus_rejects_bad_topics(tmp_path):
    bus = make_bus("callcue/v1/x/f1", "127.0.0.1", free_port())
    try:
        for bad in ("", "/abs", "line/+/state", "line/#"):
            with pytest.raises(ValueError, match="invalid subtopic"):
                bus.publish(contract.Message(bad, "x"))
        with pytest.raises(ValueError, match="invalid topic filter"):
            bus.subscribe("/abs", lambda t, p: None)
    finally:
        bus.stop()


# -- commands ------------------------------------------------------------------------

def test_command_ops_match_contract():
    assert set(OPS) == set(contract.CMD_OPS)


@pytest.mark.parametrize("payload, expected", [
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{op: call_start}", "not JSON"),
    (b"", "not JSON"),
    (b"[1, 2]", "must be a JSON object, got list"),
    (b'"call_start"', "must be a JSON object, got str"),
    (b"{}", "missing field 'op'"),
    (b'{"op": "hang_up"}', "unknown op 'hang_up'"),
    (b'{"op": "ack_alert", "by": "sup1"}', "missing field 'alert_id'"),
    (b'{"op": "ack_alert", "alert_id": 42, "by": "sup1"}', "field 'alert_id'"),
    (b'{"op": "flag", "reason": "angry", "by": "sup1"}', "field 'reason'"),
    (b'{"op": "call_end", "call_id": "c1", "callid": "c1"}', "unknown field 'callid'"),
    (b'{"op": "ivr_context", "intent": "billing", "data": [1]}', "field 'data'"),
    (b'{"op": "call_start", "agent": "' + b"a" * 200 + b'"}', "field 'agent'"),
    (b'{"op": "call_end"}' + b" " * 70000, "more than the"),
])
def test_parse_command_rejects_with_reason(payload, expected):
    with pytest.raises(CommandError) as err:
        parse_command("L3", payload)
    assert expected in str(err.value) and "line 'L3'" in str(err.value)


def test_parse_command_accepts_every_op():
    assert parse_command("L1", b'{"op":"call_start","call_id":"c9","agent":"ann","ivr":{"intent":"x"}}') == \
        CallStart(op="call_start", call_id="c9", agent="ann", ivr={"intent": "x"})
    assert parse_command("L1", b'{"op":"call_end"}').call_id is None
    assert isinstance(parse_command("L1", '{"op":"ivr_context","intent":"退款"}'.encode()), IvrContext)
    assert parse_command("L1", b'{"op":"ack_alert","alert_id":"a1","by":"sup"}') == \
        AckAlert(op="ack_alert", alert_id="a1", by="sup")
    f = parse_command("L1", b'{"op":"flag","reason":"takeover","by":"sup","note":"now"}')
    assert isinstance(f, Flag) and f.reason == "takeover"
