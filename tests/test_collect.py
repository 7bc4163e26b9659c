"""`callcue collect` on a central broker that two floor brokers bridge into (the bridges
`callcue acl --central` writes, real Mosquitto on loopback ports): every summary of both
floors reaches the central store, through a kill -9 of the collector and a restart of the
central broker, each call once; the report over the store covers both floors."""
from __future__ import annotations

import csv
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from callcue.daemon import contract
from callcue.daemon.bus.acl import Central, Listener, write_acl_dir
from callcue.daemon.bus.broker import find_mosquitto, free_port, port_is_open
from callcue.daemon.bus.client import BrokerAddress, Bus
from callcue.daemon.config import LineConfig, SourceConfig, default_config
from conftest import wait_until
from helpers import call, speech, write_wav

CALLCUE = [sys.executable, "-m", "callcue.daemon.cli"]


class Mosquitto:
    """A Mosquitto process of this test on its own config file."""

    def __init__(self, conf_text: str, workdir: Path, port: int):
        self.workdir, self.port = workdir, port
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "mosquitto.log"
        self.conf = workdir / "test.conf"
        self.conf.write_text(conf_text + f"\nuser root\nlog_dest file {self.log}\nlog_type all\n"
                                         "connection_messages true\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Mosquitto":
        self.proc = subprocess.Popen([find_mosquitto(), "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: port_is_open("127.0.0.1", self.port, 0.2) or self.proc.poll() is not None, 10,
                   "mosquitto listening", detail=self.log_text)
        assert self.proc.poll() is None, self.log_text()
        return self

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


class CollectProcess:
    def __init__(self, tmp: Path, port: int, store: Path, creds: Path):
        self.args = [*CALLCUE, "collect", "--broker", f"mqtt://127.0.0.1:{port}", "--store", str(store),
                     "--username", "collector", "--credentials", str(creds), "--client-id", "central-collector"]
        self.tmp, self.n, self.proc = tmp, 0, None

    def start(self) -> None:
        self.n += 1
        self.err = self.tmp / f"collect-{self.n}.log"
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.err, "wb"), start_new_session=True)
        wait_until(lambda: "subscribed to" in self.log_text() or self.proc.poll() is not None, 60,
                   "collector subscribed", detail=self.log_text)
        assert self.proc.poll() is None, self.log_text()

    def log_text(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)


def stored(store: Path) -> list[tuple]:
    db = store / "calls.sqlite3"
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT call_id, site, floor, line, agent, box FROM calls").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def summary_msg(line: str, call_id: str, agent: str, box: str) -> contract.Message:
    payload = {"call_id": call_id, "summary": f"call {call_id}", "ticket": None, "call_type": "Billing",
               "scorecard": {"form": "insurance-qa", "score": 85.0, "passed": True, "items": [],
                             "figures": {"duration_s": 90.0, "talk_listen_ratio": 1.2}, "flow": None},
               "ts": contract.now_iso(),
               "call": {"agent": agent, "team": "t1", "box": box, "started": "2026-03-10T10:00:00", "duration_s": 90.0,
                        "alerts": [{"kind": "talk_over", "speaker": "agent", "severity": "warning", "t_start": 3.0,
                                    "t_end": 4.2}]}}
    return contract.Message(f"line/{line}/summary", payload, qos=1, output="summary")


def test_collect_gets_every_floors_summaries_through_restarts(tmp_path):
    cport = free_port()
    wav = write_wav(tmp_path / "quiet.wav", call([("agent", 0.5, speech(1.0))], 2.0))
    floors = []
    for f in ("f1", "f2"):
        cfg = default_config(site="hq", floor=f, box=f"nuc{f[1]}", data_dir=tmp_path / f"data-{f}",
                             lines=[LineConfig(id=i, source=SourceConfig(wav=wav)) for i in ("1", "2")])
        fport, out = free_port(), tmp_path / f"acl-{f}"
        write_acl_dir(cfg, out, listener=Listener(port=fport, bind="127.0.0.1"),
                      central=Central(f"mqtt://127.0.0.1:{cport}"))
        floors.append((cfg, fport, out, yaml.safe_load((out / "credentials.yaml").read_text())))
    # the central broker: both floors' central users merged (the collector once), persistence on
    users, passwd, acl = set(), [], []
    for _, _, out, _ in floors:
        for line in (out / "central" / "passwd").read_text().splitlines():
            if line and line.split(":", 1)[0] not in users:
                users.add(line.split(":", 1)[0])
                passwd.append(line)
        acl.append((out / "central" / "acl").read_text())
    cdir = tmp_path / "central"
    cdir.mkdir()
    (cdir / "passwd").write_text("\n".join(passwd) + "\n")
    (cdir / "acl").write_text("\n".join(acl))
    central = Mosquitto("\n".join([
        "per_listener_settings false", "allow_anonymous false", f"password_file {cdir / 'passwd'}",
        f"acl_file {cdir / 'acl'}", f"listener {cport} 127.0.0.1", "persistence true",
        f"persistence_location {cdir}/", "persistence_file central.db", "max_queued_messages 100000", ""]),
        cdir, cport).start()
    brokers = [Mosquitto((out / "mosquitto.conf").read_text() + "\n" + (out / "bridge.conf").read_text(),
                         tmp_path / f"floor-{cfg.floor}", fport).start() for cfg, fport, out, _ in floors]
    store = tmp_path / "central-store"
    collector = CollectProcess(tmp_path, cport, store, floors[0][2] / "credentials.yaml")
    buses = []
    sent: list[str] = []

    def publish(k: int) -> None:
        for (cfg, _, _, _), bus in zip(floors, buses):
            for i in range(k):
                cid = f"{cfg.floor}-{uuid.uuid4().hex[:8]}"
                bus.publish(summary_msg(str(1 + i % 2), cid, f"agent-{cfg.floor}-{i % 3}", cfg.box))
                sent.append(cid)

    def all_stored():
        return wait_until(lambda: {r[0] for r in stored(store)} >= set(sent), 60, "every summary stored",
                          detail=lambda: f"{len(stored(store))} of {len(sent)}; collector: "
                                         f"{collector.log_text()[-1500:]}")

    try:
        for f in ("f1", "f2"):
            wait_until(lambda: f"callcue-hq-{f}" in central.log_text(), 30, f"bridge of {f} connected",
                       detail=central.log_text)
        collector.start()
        for cfg, fport, out, creds in floors:
            bus = Bus(contract.root(cfg.site, cfg.floor), cfg.box,
                      BrokerAddress(host="127.0.0.1", port=fport, username=f"box-{cfg.box}",
                                    password=creds[f"box-{cfg.box}"]), tmp_path / f"outbox-{cfg.floor}.sqlite3",
                      client_id=f"box-{cfg.floor}")
            bus.start()
            buses.append(bus)
        publish(4)
        all_stored()

        # the collector dies (kill -9) while summaries keep coming: its session holds them
        collector.stop(signal.SIGKILL)
        publish(4)
        for bus in buses:
            assert bus.flush(15), "the floor broker took the summaries"
        collector.start()
        assert "session resumed" in collector.log_text()
        all_stored()

        # the central broker restarts (its sessions saved); the floors queue for their bridges meanwhile
        central.stop(signal.SIGTERM)
        publish(4)
        for bus in buses:
            assert bus.flush(15)
        central.start()
        all_stored()
        publish(2)
        all_stored()
    finally:
        for bus in buses:
            bus.stop(timeout=1)
        collector.stop()
        for b in brokers:
            b.stop()
        central.stop()
    rows = stored(store)
    assert len(rows) == len(sent) == 28                        # each call once
    assert {(r[1], r[2]) for r in rows} == {("hq", "f1"), ("hq", "f2")}
    # each summary filed under the box that sent it (the box id rides in the summary's call block)
    assert {(r[2], r[5]) for r in rows} == {("f1", "nuc1"), ("f2", "nuc2")}
    # the report over the central store covers both floors
    out = tmp_path / "report.html"
    subprocess.run([*CALLCUE, "report", "--store", str(store), "-o", str(out), "--csv", str(tmp_path / "csv")],
                   check=True, capture_output=True)
    with open(tmp_path / "csv" / "headline.csv", newline="") as f:
        head = {r["figure"]: r["value"] for r in csv.DictReader(f)}
    assert int(head["calls"]) == 28 and int(head["floors"]) == 2
    with open(tmp_path / "csv" / "floors.csv", newline="") as f:
        per_box = {(r["floor"], r["box"]): int(r["calls"]) for r in csv.DictReader(f)}
    assert per_box == {("f1", "nuc1"): 14, ("f2", "nuc2"): 14}
    assert "agent-f1-0" in out.read_text() and "agent-f2-0" in out.read_text()
