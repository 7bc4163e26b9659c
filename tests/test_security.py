"""The broker boundary (README, "Security model"), on real Mosquitto brokers started here
with the files `callcue acl` writes: users and ACLs, per-role command topics, client
certificates and the log lines of TLS failures, the embedded broker with users, the
floor -> central bridge through a cut, and `callcue status`.

Every broker runs on a free loopback port with its files in the test's temp dir; as root
Mosquitto would switch to user 'mosquitto', so the test configurations say `user root`.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from callcue.daemon import contract
from callcue.daemon.bus import acl as acl_mod
from callcue.daemon.bus.acl import Central, Listener, write_acl_dir
from callcue.daemon.bus.broker import BrokerError, EmbeddedBroker, find_mosquitto, free_port, port_is_open
from callcue.daemon.bus.client import BrokerAddress, Bus
from callcue.daemon.bus.commands import (CommandError, RoleError, legacy_cmd_accepted, parse_command,
                                         split_cmd_topic)
from callcue.daemon.bus.tls import explain
from callcue.daemon.config import BrokerConfig, EmbeddedBrokerConfig, LineConfig, SourceConfig, default_config
from callcue.tui.model import FloorModel
from callcue.tui.mqtt import FeedClient
from conftest import needs_demo_calls, wait_until
from helpers import DEMO_CALLS, REPO, call, speech, write_wav

CALLCUE = [sys.executable, "-m", "callcue.daemon.cli"]
SITE, FLOOR, BOX = "s1", "f1", "nuc1"
ROOT = contract.root(SITE, FLOOR)


# ====================================================================== helpers

def site_cfg(tmp_path: Path, lines=("1", "2"), **kw):
    wav = write_wav(tmp_path / "quiet.wav", call([("agent", 0.5, speech(1.0))], 2.0))
    return default_config(site=SITE, floor=FLOOR, box=BOX, data_dir=tmp_path / "data",
                          lines=[LineConfig(id=lid, source=SourceConfig(wav=wav)) for lid in lines], **kw)


class Mosquitto:
    """A Mosquitto process of this test on a config file; kill/restart for outages."""

    def __init__(self, conf_text: str, workdir: Path, port: int):
        self.workdir = workdir
        self.port = port
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "mosquitto.log"
        self.conf = workdir / "test.conf"
        self.conf.write_text(conf_text + "\n".join([
            "", "# test additions",
            "user root",                          # as root mosquitto would become user 'mosquitto'
            f"log_dest file {self.log}", "log_type all", "connection_messages true", ""]))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Mosquitto":
        self.proc = subprocess.Popen([find_mosquitto(), "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: port_is_open("127.0.0.1", self.port, 0.2) or self.proc.poll() is not None, 10,
                   "mosquitto listening", detail=self.log_text)
        assert self.proc.poll() is None, f"mosquitto exited: {self.log_text()}"
        return self

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


def acl_broker(tmp_path: Path, cfg, name: str = "floor", listener: Listener | None = None,
               extra: str = "", central: Central | None = None) -> tuple[Mosquitto, dict[str, str], Path]:
    """Write `callcue acl`'s folder for cfg, start Mosquitto on its mosquitto.conf (plus bridge.conf)."""
    port = free_port()
    out = tmp_path / f"{name}-acl"
    listener = listener or Listener(port=port, bind="127.0.0.1")
    listener = Listener(port=port, bind="127.0.0.1", certfile=listener.certfile, keyfile=listener.keyfile,
                        cafile=listener.cafile, require_certificate=listener.require_certificate)
    write_acl_dir(cfg, out, listener=listener, central=central)
    conf = (out / "mosquitto.conf").read_text()
    if central is not None:
        conf += "\n" + (out / "bridge.conf").read_text()
    creds = yaml.safe_load((out / "credentials.yaml").read_text())
    return Mosquitto(conf + extra, tmp_path / name, port).start(), creds, out


class Peer:
    """A paho client logged in as one user (MQTT 5 by default: refused publishes come back
    as PUBACK 'Not authorized'), recording what it receives."""

    def __init__(self, port: int, user: str | None, password: str | None, *, proto=mqtt.MQTTv5,
                 client_id: str | None = None, tls: dict | None = None, persistent: bool = False):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"peer-{uuid.uuid4().hex[:8]}",
                             protocol=proto, **({"clean_session": not persistent} if proto != mqtt.MQTTv5 else {}))
        if user is not None:
            self.c.username_pw_set(user, password)
        if tls:
            self.c.tls_set(**tls)
        self.port = port
        self.proto = proto
        self.persistent = persistent
        self.cond = threading.Condition()
        self.connack: str | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.acks: dict[int, str] = {}
        self.subacks: dict[int, list[str]] = {}
        self.filters: list[str] = []
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self._add("messages", (m.topic, bytes(m.payload)))
        # 'No matching subscribers' is a success too (MQTT 5 says so when nobody listens)
        self.c.on_publish = lambda c, u, mid, rc, p: self._put(self.acks, mid, str(rc) if rc.is_failure else "Success")
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self._put(self.subacks, mid, [str(r) for r in rcs])

    def _on_connect(self, client, userdata, flags, rc, props):
        with self.cond:
            self.connack = str(rc)
            self.cond.notify_all()
        if not rc.is_failure:
            for f in self.filters:            # again after a reconnect
                client.subscribe(f, qos=1)

    def _add(self, attr, item):
        with self.cond:
            getattr(self, attr).append(item)
            self.cond.notify_all()

    def _put(self, d, k, v):
        with self.cond:
            d[k] = v
            self.cond.notify_all()

    def connect(self, timeout: float = 10) -> str:
        kw = {}
        if self.proto == mqtt.MQTTv5 and self.persistent:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 600
            kw = {"clean_start": False, "properties": props}
        self.c.reconnect_delay_set(1, 1)
        self.c.connect_async("127.0.0.1", self.port, keepalive=10, **kw)
        self.c.loop_start()
        with self.cond:
            assert self.cond.wait_for(lambda: self.connack is not None, timeout), "no CONNACK"
            return self.connack

    def subscribe(self, topic_filter: str) -> list[str]:
        self.filters.append(topic_filter)
        rc, mid = self.c.subscribe(topic_filter, qos=1)
        with self.cond:
            assert self.cond.wait_for(lambda: mid in self.subacks, 5), "no SUBACK"
            return self.subacks[mid]

    def publish(self, topic: str, payload, retain: bool = False) -> str:
        """Publish at QoS 1 and return the broker's PUBACK reason ('Success', 'Not authorized')."""
        info = self.c.publish(topic, payload if isinstance(payload, (bytes, str)) else json.dumps(payload),
                              qos=1, retain=retain)
        with self.cond:
            assert self.cond.wait_for(lambda: info.mid in self.acks, 5), f"no PUBACK for {topic}"
            return self.acks[info.mid]

    def wait_for(self, pred, timeout: float = 10, what: str = "messages"):
        with self.cond:
            if self.cond.wait_for(lambda: pred(self.messages), timeout):
                return list(self.messages)
            got = [(t, p[:60]) for t, p in self.messages]
        raise AssertionError(f"{what}: not within {timeout} s; got {got[-15:]}")

    def topics(self) -> list[str]:
        with self.cond:
            return [t for t, _ in self.messages]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def peers():
    made: list[Peer] = []

    def make(*a, **kw) -> Peer:
        p = Peer(*a, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def alert_msg(line: str, note: str) -> contract.Message:
    return contract.alert(line, f"c-{line}", "talk_over", "warning", "agent", 1.0, 2.0, note, {})


# ====================================================================== no broker needed

def test_role_topics_and_ops():
    assert split_cmd_topic("line/7/cmd/cti") == ("7", "cti")
    assert split_cmd_topic("line/7/cmd") == ("7", None)
    assert split_cmd_topic("line/7/state")[0] == "?"
    assert parse_command("7", b'{"op":"call_start","call_id":"c1"}', "cti").call_id == "c1"
    assert parse_command("7", b'{"op":"ack_alert","alert_id":"a","by":"x"}', "agent").alert_id == "a"
    assert parse_command("7", b'{"op":"flag","reason":"coaching","by":"x"}', "supervisor").reason == "coaching"
    for role, body in (("agent", b'{"op":"flag","reason":"coaching","by":"x"}'),
                       ("agent", b'{"op":"call_end"}'),
                       ("supervisor", b'{"op":"call_start"}'),
                       ("cti", b'{"op":"ack_alert","alert_id":"a","by":"x"}'),
                       ("admin", b'{"op":"call_end"}')):
        with pytest.raises(RoleError) as err:
            parse_command("7", body, role)
        assert "7" in str(err.value) and role in str(err.value)
    # malformed stays a plain rejection, with its own reason
    with pytest.raises(CommandError) as err:
        parse_command("7", b'{"op":"ivr_context"}', "cti")
    assert not isinstance(err.value, RoleError) and "intent" in str(err.value)
    # the role-less topic: every op where it is accepted, nothing where it is not
    assert parse_command("7", b'{"op":"flag","reason":"coaching","by":"x"}', None).op == "flag"
    with pytest.raises(RoleError, match=r"line/7/cmd/\{cti"):
        parse_command("7", b'{"op":"call_end"}', None, legacy_ok=False)


def test_legacy_topic_only_on_the_loopback_demo_broker_or_when_configured(tmp_path):
    assert legacy_cmd_accepted(default_config())                                  # embedded, loopback, no users
    assert not legacy_cmd_accepted(default_config(embedded_broker=EmbeddedBrokerConfig(acl_dir=tmp_path)))
    assert not legacy_cmd_accepted(default_config(broker=BrokerConfig(url="mqtt://h:1883")))
    assert legacy_cmd_accepted(default_config(broker=BrokerConfig(url="mqtt://h:1883", legacy_cmd_topic=True)))


def test_config_refuses_anonymous_embedded_broker_beyond_loopback_and_tls_files_without_tls(tmp_path):
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="acl_dir"):
        EmbeddedBrokerConfig(bind="0.0.0.0")
    with pytest.raises(ValidationError, match="acl_dir"):
        EmbeddedBrokerConfig(bind="192.168.1.20")
    assert EmbeddedBrokerConfig(bind="0.0.0.0", acl_dir=tmp_path).acl_dir == tmp_path
    assert EmbeddedBrokerConfig(bind="::1").loopback
    with pytest.raises(ValidationError, match="mqtts"):
        BrokerConfig(url="mqtt://h:1883", certfile=tmp_path / "c.pem")
    with pytest.raises(ValidationError, match="without certfile"):
        BrokerConfig(url="mqtts://h:8883", keyfile=tmp_path / "k.pem")
    # and the embedded broker itself will not start that way either
    with pytest.raises(BrokerError, match="anonymous"):
        EmbeddedBroker("0.0.0.0", free_port(), tmp_path / "b").start()


def test_passwd_hashes_are_mosquitto_passwd_format_and_reruns_keep_passwords(tmp_path):
    # our check agrees with Mosquitto's own tool
    ref = tmp_path / "ref"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(ref), "alice", "s3cret"], check=True)
    hashed = ref.read_text().strip().split(":", 1)[1]
    assert hashed.startswith("$7$101$")
    assert acl_mod.verify_password("s3cret", hashed) and not acl_mod.verify_password("s3creT", hashed)
    ours = acl_mod.hash_password("s3cret")
    parts = ours.split("$")
    assert parts[1:3] == ["7", "101"] and len(__import__("base64").b64decode(parts[3])) == 12
    assert acl_mod.verify_password("s3cret", ours)

    cfg = site_cfg(tmp_path)
    out = tmp_path / "acl"
    res = write_acl_dir(cfg, out)
    assert set(res.created) == {"box-nuc1", "agent-1", "agent-2", "supervisor-s1-f1", "cti-s1", "collector"}
    for name in ("passwd", "acl", "credentials.yaml"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    creds = yaml.safe_load((out / "credentials.yaml").read_text())
    passwd = acl_mod.read_passwd(out / "passwd")
    assert all(acl_mod.verify_password(creds[u], passwd[u]) for u in creds)
    first = (out / "passwd").read_text()
    res = write_acl_dir(cfg, out)                       # again: nothing changes
    assert res.created == [] and res.rotated == [] and (out / "passwd").read_text() == first
    assert yaml.safe_load((out / "credentials.yaml").read_text()) == creds
    res = write_acl_dir(cfg, out, rotate={"cti-s1"})    # one user rotated
    again = yaml.safe_load((out / "credentials.yaml").read_text())
    assert res.rotated == ["cti-s1"] and again["cti-s1"] != creds["cti-s1"]
    assert {k: v for k, v in again.items() if k != "cti-s1"} == {k: v for k, v in creds.items() if k != "cti-s1"}
    res = write_acl_dir(site_cfg(tmp_path, lines=("1",)), out, rotate=True)     # line 2 gone, all rotated
    assert res.dropped == ["agent-2"] and "agent-2" not in (out / "acl").read_text()
    assert all(v != creds[k] for k, v in yaml.safe_load((out / "credentials.yaml").read_text()).items())


def test_tls_failures_are_explained():
    import ssl
    err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err.verify_message = "unable to get local issuer certificate"
    assert "not trusted" in explain(err, host="h", port=8883, tls=True)
    alert = "failed to receive on socket: [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required"
    assert "requires a client certificate" in explain(alert, host="h", port=8883, tls=True)
    assert "rejected our client certificate" in explain("[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca",
                                                        host="h", port=8883, tls=True, certfile="c.pem")
    assert "connection refused" in explain(ConnectionRefusedError(111, "Connection refused"), host="h", port=1,
                                           tls=False)


def test_supervisor_model_counts_only_the_ops_a_role_may_send():
    m = FloorModel()
    a = alert_msg("1", "x")
    m.apply(f"{ROOT}/line/1/alert", a.encode(), 0.0)
    ack = json.dumps({"op": "ack_alert", "alert_id": a.payload["id"], "by": "intruder"}).encode()
    m.apply(f"{ROOT}/line/1/cmd/cti", ack, 1.0)              # the phone system cannot acknowledge
    m.apply(f"{ROOT}/line/1/cmd/root", ack, 1.0)             # no such role
    assert m.feed()[0].acked_by is None
    m.apply(f"{ROOT}/line/1/cmd/agent", json.dumps(
        {"op": "ack_alert", "alert_id": a.payload["id"], "by": "ann"}).encode(), 2.0)
    assert m.feed()[0].acked_by == "ann"


# ====================================================================== ACL on a real broker

def test_acl_users_on_real_mosquitto(tmp_path, peers):
    cfg = site_cfg(tmp_path)
    broker, creds, out = acl_broker(tmp_path, cfg)
    try:
        port = broker.port
        # anonymous and wrong passwords are refused
        assert peers(port, None, None).connect() == "Not authorized"
        assert peers(port, "agent-1", creds["agent-1"] + "x").connect() == "Not authorized"
        assert peers(port, "nobody", "x", proto=mqtt.MQTTv311).connect() == "Not authorized"

        box = peers(port, "box-nuc1", creds["box-nuc1"])
        sup = peers(port, "supervisor-s1-f1", creds["supervisor-s1-f1"])
        ag1 = peers(port, "agent-1", creds["agent-1"])
        cti = peers(port, "cti-s1", creds["cti-s1"])
        col = peers(port, "collector", creds["collector"])
        for p in (box, sup, ag1, cti, col):
            assert p.connect() == "Success"
        box.subscribe(f"{ROOT}/line/+/cmd/+")
        sup.subscribe(f"{ROOT}/#")
        ag1.subscribe(f"{ROOT}/#")            # asks for everything: gets its own line only
        cti.subscribe(f"{ROOT}/#")
        col.subscribe("callcue/v1/+/+/#")

        # the box publishes every contract output of its lines (and nothing else)
        msgs = [contract.box_status(BOX, True), contract.box_health(BOX, {"lines": {}})]
        for lid in ("2", "1"):              # line 2 first: an agent of line 1 seeing line 1 has seen line 2 too
            msgs += [contract.line_state(lid, "A", f"c-{lid}", "in_call", contract.now_iso()),
                     alert_msg(lid, f"alert {lid}"),
                     contract.transcript(lid, f"c-{lid}", "customer", "hello", True, 0.0, 1.0, 1),
                     contract.record(lid, f"c-{lid}", "customer", "hello", 0.0, 1.0, 0, "whisper-tiny.en"),
                     contract.suggestion(lid, f"c-{lid}", "knowledge", "t", "b", 0.9, 1.0, {"article": "a"}),
                     contract.flow_state(lid, f"c-{lid}", "claim", [], 0.0, None, {}),
                     contract.summary(lid, f"c-{lid}", "summary", None, {}, None)]
        assert {m.subtopic.rsplit("/", 1)[1] for m in msgs} == set(contract.BOX_OUTPUTS + contract.LINE_OUTPUTS)
        for m in msgs:
            assert box.publish(f"{ROOT}/{m.subtopic}", m.encode(), m.retain) == "Success", m.subtopic
        want = {f"{ROOT}/{m.subtopic}" for m in msgs}
        sup.wait_for(lambda ms: want <= {t for t, _ in ms}, what="supervisor reads the whole floor")
        # the box may not forge commands, another box, or another floor
        for topic in (f"{ROOT}/line/1/cmd/cti", f"{ROOT}/line/1/cmd/supervisor", f"{ROOT}/box/other/status",
                      f"{contract.root(SITE, 'f2')}/line/1/alert", f"{ROOT}/line/9/alert"):
            assert box.publish(topic, b"{}") == "Not authorized", topic

        # agent of line 1: its own line only, its own acknowledgements only
        ag1.wait_for(lambda ms: any(t.endswith("line/1/summary") for t, _ in ms), what="agent 1 reads line 1")
        assert not [t for t in ag1.topics() if "/line/1/" not in t], ag1.topics()
        ack = {"op": "ack_alert", "alert_id": "a1", "by": "ann"}
        assert ag1.publish(f"{ROOT}/line/2/cmd/agent", ack) == "Not authorized"
        assert ag1.publish(f"{ROOT}/line/1/cmd/supervisor", {"op": "flag", "reason": "coaching", "by": "ann"}) \
            == "Not authorized"
        assert ag1.publish(f"{ROOT}/line/1/cmd/cti", {"op": "call_end"}) == "Not authorized"
        assert ag1.publish(f"{ROOT}/line/1/cmd", {"op": "call_end"}) == "Not authorized"
        assert ag1.publish(f"{ROOT}/line/1/alert", b"{}") == "Not authorized"
        assert ag1.publish(f"{ROOT}/line/1/cmd/agent", ack) == "Success"
        # supervisor: acknowledges and flags on the floor, nothing else
        assert sup.publish(f"{ROOT}/line/2/cmd/supervisor", {"op": "flag", "reason": "coaching", "by": "s"}) \
            == "Success"
        assert sup.publish(f"{ROOT}/line/2/cmd/cti", {"op": "call_end"}) == "Not authorized"
        assert sup.publish(f"{ROOT}/box/{BOX}/status", "offline", retain=True) == "Not authorized"
        # the phone system: call boundaries on any line of the floor, reads nothing
        assert cti.publish(f"{ROOT}/line/2/cmd/cti", {"op": "call_start", "call_id": "pbx-1"}) == "Success"
        assert cti.publish(f"{ROOT}/line/2/cmd/supervisor", {"op": "flag"}) == "Not authorized"
        # the box hears exactly the permitted commands, in order
        box.wait_for(lambda ms: any(t.endswith("line/2/cmd/cti") for t, _ in ms), what="box reads commands")
        assert sorted(box.topics()) == [f"{ROOT}/line/1/cmd/agent", f"{ROOT}/line/2/cmd/cti",
                                        f"{ROOT}/line/2/cmd/supervisor"]
        assert cti.topics() == []
        # the collector reads summaries only
        col.wait_for(lambda ms: len(ms) >= 2, what="collector reads summaries")
        assert sorted(col.topics()) == [f"{ROOT}/line/1/summary", f"{ROOT}/line/2/summary"]
    finally:
        broker.kill(signal.SIGTERM)


def test_embedded_broker_takes_the_acl_files_and_refuses_anonymous(tmp_path, peers):
    cfg = site_cfg(tmp_path)
    out = tmp_path / "acl"
    write_acl_dir(cfg, out)
    emb = EmbeddedBroker.from_config(EmbeddedBrokerConfig(bind="127.0.0.1", acl_dir=out), free_port(),
                                     tmp_path / "broker")
    with emb:
        assert peers(emb.port, None, None).connect() == "Not authorized"
        address = emb.client_address(BOX)
        assert address.username == "box-nuc1"
        box = peers(emb.port, address.username, address.password)
        assert box.connect() == "Success"
        assert box.publish(f"{ROOT}/line/1/alert", b"{}") == "Success"
        assert box.publish(f"{ROOT}/line/1/cmd/cti", b"{}") == "Not authorized"
    # its folder must hold what `callcue acl` writes
    (out / "acl").unlink()
    with pytest.raises(BrokerError, match="callcue acl"):
        EmbeddedBroker("0.0.0.0", free_port(), tmp_path / "b2", acl_dir=out).start()


# ====================================================================== the real daemon behind the ACL

@pytest.mark.needs_models("whisper-tiny.en", "silero-vad")
def test_callcue_run_behind_the_acl_publishes_everything_and_takes_role_commands(tmp_path, peers):
    """`callcue run` as box-nuc1 (password from credentials.yaml): every output topic gets
    through, the phone system, an agent and a supervisor drive a call by their topics, and
    an op from the wrong role is refused and counted in the retained health."""
    needs_demo_calls()
    probe = site_cfg(tmp_path, lines=("1", "2"))
    broker, creds, out = acl_broker(tmp_path, probe)
    port = broker.port
    quiet = write_wav(tmp_path / "line2.wav", call([("customer", 0.5, speech(2.0, f0=210)),
                                                    ("agent", 1.0, speech(3.0))], 6.0))
    site = tmp_path / "site.yaml"
    site.write_text(f"""\
site: {SITE}
floor: {FLOOR}
box: {BOX}
broker: {{url: "mqtt://127.0.0.1:{port}", username: box-{BOX}, credentials_file: {out.name}/credentials.yaml}}
data_dir: data
asr: {{model: whisper-tiny.en, queue_chunks: 100000, sensitive_words: {REPO}/flows/demo/sensitive_words.txt}}
lines:
  - id: "1"
    agent: Alice
    sample_rate: 16000
    source: {{wav: {DEMO_CALLS}/en_claim_status.wav, pace: fast}}
  - id: "2"
    agent: Bob
    source: {{wav: {quiet.name}, pace: realtime, loop: true}}
""")
    sup = peers(port, "supervisor-s1-f1", creds["supervisor-s1-f1"])
    assert sup.connect() == "Success"
    sup.subscribe(f"{ROOT}/#")
    proc = subprocess.Popen(CALLCUE + ["run", "--config", str(site)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        sup.wait_for(lambda ms: (f"{ROOT}/box/{BOX}/status", b"online") in ms, 120, "box online")
        cti = peers(port, "cti-s1", creds["cti-s1"])
        ag2 = peers(port, "agent-2", creds["agent-2"])
        assert cti.connect() == "Success" and ag2.connect() == "Success"
        assert cti.publish(f"{ROOT}/line/2/cmd/cti", {"op": "call_start", "call_id": "pbx-77", "agent": "Bob B"}) \
            == "Success"

        def state2(ms):
            return [json.loads(p) for t, p in ms if t == f"{ROOT}/line/2/state" and p]
        sup.wait_for(lambda ms: any(s["call_id"] == "pbx-77" and s["status"] == "in_call" for s in state2(ms)),
                     30, "the phone system's call on line 2")
        # wrong roles: refused by the box (an agent may not end a call; the ACL keeps it off cmd/cti)
        assert ag2.publish(f"{ROOT}/line/2/cmd/agent", {"op": "call_end"}) == "Success"
        assert cti.publish(f"{ROOT}/line/2/cmd/cti", {"op": "ivr_context", "intent": "claim"}) == "Success"
        assert sup.publish(f"{ROOT}/line/2/cmd/supervisor", {"op": "flag", "reason": "coaching", "by": "sue"}) \
            == "Success"

        def health(ms):
            hs = [json.loads(p) for t, p in ms if t == f"{ROOT}/box/{BOX}/health"]
            return hs[-1] if hs else None
        sup.wait_for(lambda ms: (health(ms) or {}).get("refused_commands") == 1, 30, "refused op in health")
        assert any(s["status"] == "in_call" for s in state2(sup.messages)[-1:])    # call_end was refused
        assert cti.publish(f"{ROOT}/line/2/cmd/cti", {"op": "call_end", "call_id": "pbx-77"}) == "Success"
        # line 1 (the demo call, recognised): every kind of output reaches the supervisor
        kinds = ("state", "alert", "transcript", "suggestion", "flow", "summary")
        sup.wait_for(lambda ms: all(any(t == f"{ROOT}/line/1/{k}" for t, _ in ms) for k in kinds), 240,
                     "every line output of line 1")
        sup.wait_for(lambda ms: any(t == f"{ROOT}/line/2/summary" for t, _ in ms), 60, "line 2's summary")
        h = health(sup.messages)
        assert h["rejected_commands"] == 0 and h["errors"] == 0 and h["bus"]["connected"]
        # `callcue status` reads that health back, as the supervisor
        env = dict(os.environ, CALLCUE_MQTT_PASSWORD=creds["supervisor-s1-f1"], COLUMNS="120")
        st = subprocess.run(CALLCUE + ["status", "--broker", f"mqtt://127.0.0.1:{port}",
                                       "--username", "supervisor-s1-f1", "--site", SITE, "--floor", FLOOR,
                                       "--box", BOX], env=env, capture_output=True, text=True, timeout=60)
        assert st.returncode == 0, st.stdout + st.stderr
        for word in ("box nuc1", "online", "lines (", "queue frames", "dropped", "outbox", "ASR final latency",
                     "1 refused (role)", "0 reused call ids", "0 dropped (line queue full)", "RSS ", "ASR channels",
                     "errors"):
            assert word in st.stdout, (word, st.stdout)
        # and on the box, from the site file (as box-nuc1, which may read its own box topics)
        st = subprocess.run(CALLCUE + ["status", "--config", str(site), "--json"], capture_output=True, text=True,
                            timeout=60)
        assert st.returncode == 0, st.stderr
        assert json.loads(st.stdout)[f"{SITE}/{FLOOR}/{BOX}"]["status"] == "online"
        # the agent of line 2 may not read the box's health: status says what is wrong
        env["CALLCUE_MQTT_PASSWORD"] = creds["agent-2"]
        st = subprocess.run(CALLCUE + ["status", "--broker", f"mqtt://127.0.0.1:{port}", "--username", "agent-2",
                                       "--site", SITE, "--floor", FLOOR, "--box", BOX, "--timeout", "2"],
                            env=env, capture_output=True, text=True, timeout=60)
        assert st.returncode == 1 and "may agent-2 read it" in st.stderr, st.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output = proc.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
        broker.kill(signal.SIGTERM)
    assert "Traceback" not in output, output[-3000:]
    assert "command refused" in output and "'call_end' may not be sent by this role" in output, output[-3000:]


# ====================================================================== TLS

@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, a client certificate it signed, and a
    second CA with a client certificate of its own (the rogue one)."""
    d = tmp_path_factory.mktemp("pki")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    def ca(name):
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=callcue test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def leaf(name, signer, ext):
        (d / f"{name}.ext").write_text(ext)
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{signer}.pem", "-CAkey", f"{signer}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")

    ca("ca")
    ca("rogue-ca")
    leaf("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    leaf("client", "ca", "extendedKeyUsage=clientAuth\n")
    leaf("rogue", "rogue-ca", "extendedKeyUsage=clientAuth\n")
    return {n: d / n for n in ("ca.pem", "rogue-ca.pem", "server.pem", "server.key", "client.pem", "client.key",
                               "rogue.pem", "rogue.key")}


def _bus(tmp_path, port, creds, name, **tls) -> Bus:
    address = BrokerAddress(host="127.0.0.1", port=port, username="box-nuc1", password=creds["box-nuc1"], tls=True,
                            keepalive=10, **tls)
    return Bus(ROOT, BOX, address, tmp_path / f"{name}.sqlite3", client_id=f"tls-{name}")


def test_client_certificates_and_clear_tls_failures(tmp_path, pki, peers, caplog):
    caplog.set_level(logging.INFO, logger="callcue.daemon.bus.client")
    cfg = site_cfg(tmp_path)
    broker, creds, out = acl_broker(tmp_path, cfg, listener=Listener(
        certfile=pki["server.pem"], keyfile=pki["server.key"], cafile=pki["ca.pem"], require_certificate=True))
    conf = (out / "mosquitto.conf").read_text()
    assert "require_certificate true" in conf and f"cafile {pki['ca.pem']}" in conf
    port = broker.port
    buses = []
    try:
        # a supervisor's view over TLS with a certificate of its own
        sup = peers(port, "supervisor-s1-f1", creds["supervisor-s1-f1"],
                    tls={"ca_certs": str(pki["ca.pem"]), "certfile": str(pki["client.pem"]),
                         "keyfile": str(pki["client.key"])})
        assert sup.connect() == "Success"
        sup.subscribe(f"{ROOT}/#")
        # the box's bus with its client certificate: connects and publishes
        good = _bus(tmp_path, port, creds, "good", ca_file=pki["ca.pem"], certfile=pki["client.pem"],
                    keyfile=pki["client.key"])
        buses.append(good)
        good.start()
        good.publish(alert_msg("1", "over TLS"))
        sup.wait_for(lambda ms: any(b"over TLS" in p for _, p in ms), 15, "alert over TLS with a client certificate")
        sup.wait_for(lambda ms: (f"{ROOT}/box/{BOX}/status", b"online") in ms, 5, "status over TLS")

        def logged(needle):
            return wait_until(lambda: [r.getMessage() for r in caplog.records if needle in r.getMessage()], 15,
                              f"log line with {needle!r}", detail=lambda: [r.getMessage() for r in caplog.records])

        # no client certificate: said at once, not after a keep-alive
        started = time.monotonic()
        none = _bus(tmp_path, port, creds, "none", ca_file=pki["ca.pem"])
        buses.append(none)
        none.start()
        line = logged("requires a client certificate")[0]
        assert time.monotonic() - started < 10 and f"127.0.0.1:{port}" in line and "broker.certfile" in line
        assert all(r.levelno == logging.ERROR for r in caplog.records if "client certificate" in r.getMessage())
        # a certificate from a CA the broker does not trust
        rogue = _bus(tmp_path, port, creds, "rogue", ca_file=pki["ca.pem"], certfile=pki["rogue.pem"],
                     keyfile=pki["rogue.key"])
        buses.append(rogue)
        rogue.start()
        line = logged("rejected our client certificate")[0]
        assert str(pki["rogue.pem"]) in line
        # a server certificate we do not trust (wrong CA file): not "cannot reach"
        untrusted = _bus(tmp_path, port, creds, "untrusted", ca_file=pki["rogue-ca.pem"],
                         certfile=pki["client.pem"], keyfile=pki["client.key"])
        buses.append(untrusted)
        untrusted.start()
        line = logged("certificate is not trusted")[0]
        assert "broker.ca_file" in line and "cannot reach" not in line
        assert not none.connected and not rogue.connected and not untrusted.connected
        # each reason is logged once, not on every retry
        wait_until(lambda: rogue.stats()["connect_failures"] >= 3, 20, "three refused attempts",
                   detail=rogue.stats)
        assert len([r for r in caplog.records if "rejected our client certificate" in r.getMessage()]) == 1

        # the supervisor TUI's client says the same on its status line
        tui = FeedClient(BrokerConfig(url=f"mqtts://127.0.0.1:{port}", username="supervisor-s1-f1",
                                      password=creds["supervisor-s1-f1"], ca_file=pki["ca.pem"]),
                         [f"{ROOT}/#"], lambda t, p: None)
        tui.start()
        try:
            wait_until(lambda: "requires a client certificate" in tui.status_detail, 15, "TUI status line",
                       detail=lambda: tui.status_detail)
        finally:
            tui.stop()
        tui = FeedClient(BrokerConfig(url=f"mqtts://127.0.0.1:{port}", username="supervisor-s1-f1",
                                      password=creds["supervisor-s1-f1"], ca_file=pki["ca.pem"],
                                      certfile=pki["client.pem"], keyfile=pki["client.key"]),
                         [f"{ROOT}/#"], lambda t, p: None, cmd_role="supervisor")
        tui.start()
        try:
            wait_until(lambda: tui.connected, 15, "TUI connected with its certificate", detail=lambda: tui.status_detail)
        finally:
            tui.stop()
    finally:
        for b in buses:
            b.stop(timeout=1)
        broker.kill(signal.SIGTERM)


def test_wrong_password_is_logged_as_a_refusal(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="callcue.daemon.bus.client")
    cfg = site_cfg(tmp_path)
    broker, creds, out = acl_broker(tmp_path, cfg)
    bus = Bus(ROOT, BOX, BrokerAddress(host="127.0.0.1", port=broker.port, username="box-nuc1", password="nope"),
              tmp_path / "o.sqlite3", client_id="badpw")
    try:
        bus.start()
        msgs = wait_until(lambda: [r.getMessage() for r in caplog.records if "refused user 'box-nuc1'" in r.getMessage()],
                          15, "refusal logged")
        assert "Not authorized" in msgs[0] and "credentials.yaml" in msgs[0]
    finally:
        bus.stop(timeout=1)
        broker.kill(signal.SIGTERM)


# ====================================================================== floor -> central bridge

def test_bridge_carries_a_floors_alerts_to_central_through_a_cut(tmp_path, peers):
    cfg = site_cfg(tmp_path)
    fport, cport = free_port(), free_port()
    out = tmp_path / "acl"
    # the floor's files and its bridge, as `callcue acl --central` writes them
    write_acl_dir(cfg, out, listener=Listener(port=fport, bind="127.0.0.1"),
                  central=Central(f"mqtt://127.0.0.1:{cport}"))
    assert (out / "bridge.conf").stat().st_mode & 0o077 == 0
    creds = yaml.safe_load((out / "credentials.yaml").read_text())
    # the central broker: this floor's users from central/, persistence (its sessions survive the restart)
    central_dir = tmp_path / "central"
    central = Mosquitto("\n".join([
        "per_listener_settings false", "allow_anonymous false",
        f"password_file {out / 'central' / 'passwd'}", f"acl_file {out / 'central' / 'acl'}",
        f"listener {cport} 127.0.0.1",
        "persistence true", f"persistence_location {central_dir}/", "persistence_file central.db", ""]),
        central_dir, cport).start()
    floor = Mosquitto((out / "mosquitto.conf").read_text() + "\n" + (out / "bridge.conf").read_text(),
                      tmp_path / "floor", fport).start()
    bus = None
    try:
        wait_until(lambda: "as callcue-s1-f1" in central.log_text(), 30, "bridge connected", detail=floor.log_text)
        # a supervisor watching this floor from the central broker, with a session that outlives it
        watch = peers(cport, "supervisor-s1-f1", creds["supervisor-s1-f1"], client_id="hq-watch", persistent=True)
        assert watch.connect() == "Success"
        watch.subscribe(f"{ROOT}/#")
        coll = peers(cport, "collector", creds["collector"])
        assert coll.connect() == "Success"
        coll.subscribe("callcue/v1/#")
        # the box publishes on its floor broker, as the daemon does
        bus = Bus(ROOT, BOX, BrokerAddress(host="127.0.0.1", port=fport, username="box-nuc1",
                                           password=creds["box-nuc1"]), tmp_path / "outbox.sqlite3", client_id="box")
        bus.start()

        def notes(ms):
            return [json.loads(p)["message"] for t, p in ms if t.endswith("/alert")]
        bus.publish(alert_msg("1", "before"))
        bus.publish(contract.summary("1", "c-1", "done", None, {}, None))
        watch.wait_for(lambda ms: "before" in notes(ms), 15, "alert over the bridge")
        coll.wait_for(lambda ms: any(t.endswith("line/1/summary") for t, _ in ms), 10, "summary to the collector")

        # cut: the central broker saves its sessions (SIGUSR1) and is killed
        db = central_dir / "central.db"
        central.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: db.exists() and db.stat().st_size > 0, 10, "central persistence saved")
        central.kill(signal.SIGKILL)
        for i in range(3):
            bus.publish(alert_msg("2", f"during cut {i}"))
        assert bus.flush(10), "the floor broker took the alerts"
        # restore
        central.start()
        watch.wait_for(lambda ms: {f"during cut {i}" for i in range(3)} <= set(notes(ms)), 60,
                       "alerts of the cut at central")
        # and it carries on after the restore; what is not bridged (transcripts) stays on the floor
        bus.publish(contract.transcript("1", "c-1", "customer", "my card number", True, 0.0, 1.0, 1))
        bus.publish(alert_msg("1", "after"))
        watch.wait_for(lambda ms: "after" in notes(ms), 15, "alert after the restore")
        assert list(dict.fromkeys(notes(watch.messages))) == ["before", "during cut 0", "during cut 1",
                                                              "during cut 2", "after"]
        assert not [t for t in watch.topics() if t.endswith("/transcript")]
        assert {t.rsplit("/", 1)[1] for t in watch.topics()} <= {"alert", "summary", "state", "status", "health"}
        assert not [t for t in coll.topics() if not t.endswith("/summary")]
    finally:
        if bus is not None:
            bus.stop(timeout=1)
        floor.kill(signal.SIGTERM)
        central.kill(signal.SIGTERM)


# ====================================================================== callcue status

HEALTH = {
    "load": [0.5, 0.4, 0.3], "uptime_s": 3725.0, "lines_up": 1,
    "lines": {"1": {"status": "in_call", "up": True, "queue_frames": 3, "dropped_frames": 0, "results_dropped": 0,
                    "commands_dropped": 0, "aftercall_ms_max": 11.5, "aftercall_errors": 0, "analysis_rtf": 0.02},
              "2": {"status": "down", "up": False, "queue_frames": 0, "dropped_frames": 17, "results_dropped": 0,
                    "commands_dropped": 6, "aftercall_ms_max": None, "aftercall_errors": 1, "analysis_rtf": None}},
    "frames_dropped": 17, "asr_rtf": 0.15,
    "asr": {"channels": 2, "open_channels": 2, "refused_channels": 3, "dropped_utterances": 0, "record_decodes": 9,
            "queue_chunks": 4, "pending_utterances": 1, "rtf": 0.15, "dropped_s": 0.0, "errors": 0},
    "rss_mb": 1432.5, "reused_call_ids": 1, "commands_dropped": 6,
    "records": {"corrections": 2, "rejected": 1, "queries": 5, "dropped": 0, "connected": True, "answered": 5,
                "refused": 1},
    "final_latency_s": {"p50": 0.61, "p95": 1.4, "n": 88},
    "bus": {"connected": True, "outbox_depth": 2, "inflight": 1, "published": 4000, "dropped_qos0": 0,
            "outbox_dropped": 0, "reconnects": 1, "connect_failures": 3, "handler_errors": 0},
    "rejected_commands": 4, "refused_commands": 2, "errors": 1,
    "assist": {"reloads": 0, "pack_error": None},
}


def test_status_prints_the_retained_health_as_tables(tmp_path, peers):
    cfg = site_cfg(tmp_path)
    broker, creds, out = acl_broker(tmp_path, cfg)
    port = broker.port
    box = peers(port, "box-nuc1", creds["box-nuc1"])
    assert box.connect() == "Success"

    def status(*extra, user="supervisor-s1-f1"):
        args = ["status", "--broker", f"mqtt://127.0.0.1:{port}", "--username", user, "--credentials",
                str(out / "credentials.yaml"), "--timeout", "5", *extra]
        return subprocess.run(CALLCUE + args, capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, COLUMNS="160"))
    try:
        assert box.publish(f"{ROOT}/box/{BOX}/status", "online", retain=True) == "Success"
        health = contract.box_health(BOX, HEALTH)
        assert box.publish(f"{ROOT}/{health.subtopic}", health.encode(), retain=True) == "Success"
        r = status("--site", SITE, "--floor", FLOOR, "--box", BOX)
        assert r.returncode == 0, r.stdout + r.stderr
        out_text = r.stdout
        for needle in ("box nuc1", "s1/f1", "online", "up 1h 02m", "lines (1 of 2 up)", "in_call", "down",
                       "17", "2 waiting, 1 in flight, 0 dropped (full)", "reconnects 1", "rtf 0.15",
                       "p50 0.61 s, p95 1.4 s (n 88)", "4 rejected (malformed), 2 refused (role)",
                       "1 reused call ids, 6 dropped (line queue full)", "RSS 1432.5 MB", "11.5 ms", "1 failed",
                       "3 refused (cap)", "9 record turns decoded",
                       "2 ticket corrections, 1 rejected, 5 look-backs (1 refused), 0 dropped"):
            assert needle in out_text, (needle, out_text)
        # every box the user may read, without naming one; JSON for scripts
        r = status("--json")
        assert r.returncode == 0 and json.loads(r.stdout)["s1/f1/nuc1"]["health"]["frames_dropped"] == 17
        # offline, or health that stopped coming: exit 3, and said
        assert box.publish(f"{ROOT}/box/{BOX}/status", "offline", retain=True) == "Success"
        old = contract.Message(health.subtopic, {**health.payload, "ts": "2026-01-01T00:00:00.000+00:00"},
                               qos=0, retain=True)
        assert box.publish(f"{ROOT}/{old.subtopic}", old.encode(), retain=True) == "Success"
        r = status("--site", SITE, "--floor", FLOOR, "--box", BOX)
        assert r.returncode == 3 and "offline" in r.stdout and "stale" in r.stdout, r.stdout
        # a user who may not read it, a wrong password, nothing there
        r = status("--site", SITE, "--floor", FLOOR, "--box", BOX, "--timeout", "1", user="cti-s1")
        assert r.returncode == 1 and "may cti-s1 read it" in r.stderr, r.stderr
        r = subprocess.run(CALLCUE + ["status", "--broker", f"mqtt://127.0.0.1:{port}", "--username", "collector"],
                           capture_output=True, text=True, timeout=60, env=dict(os.environ, CALLCUE_MQTT_PASSWORD="x"))
        assert r.returncode == 1 and "refused user 'collector'" in r.stderr, r.stderr
        r = subprocess.run(CALLCUE + ["status", "--broker", f"mqtt://127.0.0.1:{free_port()}"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "connection refused" in r.stderr, r.stderr
    finally:
        broker.kill(signal.SIGTERM)
