"""`callcue run` as systemd runs it: a real process, sd_notify over a real socket,
SIGTERM, and the box status on a real broker."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np

from conftest import collect
from helpers import call, speech, write_wav

CALLCUE = [sys.executable, "-m", "callcue.daemon.cli"]


def site_file(tmp: Path, host: str, port: int, site: str, wav: Path) -> Path:
    cfg = tmp / "site.yaml"
    cfg.write_text(f"""\
site: {site}
floor: f1
box: nuc1
broker: {{url: "mqtt://{host}:{port}"}}
data_dir: data
lines:
  - id: "201"
    agent: Alice
    source: {{wav: {wav.name}, pace: realtime, loop: true}}
""")
    return cfg


def test_run_notifies_systemd_and_stops_cleanly(tmp_path, mqtt_broker):
    host, port = mqtt_broker
    site = f"t{uuid.uuid4().hex[:8]}"
    wav = write_wav(tmp_path / "call.wav", call([("agent", 0.5, speech(3.0))], 5.0))
    cfg = site_file(tmp_path, host, port, site, wav)
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(60)
    env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="2000000")
    proc = subprocess.Popen(CALLCUE + ["run", "--config", str(cfg)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        got: list[str] = []
        while not any("WATCHDOG=1" in g for g in got):
            got.append(sock.recv(4096).decode())
        # ready before the first watchdog ping (the loop above stops at that ping)
        assert any(g.startswith("READY=1") for g in got[:-1]), got
        status = collect(host, port, f"callcue/v1/{site}/f1/box/nuc1/status")
        status.wait_for(lambda ms: any(m.payload == b"online" for m in ms), 10)
        status.close()
        proc.send_signal(signal.SIGTERM)
        while not any("STOPPING=1" in g for g in got):
            got.append(sock.recv(4096).decode())
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.stdout.read()
        sock.close()
    late = collect(host, port, f"callcue/v1/{site}/f1/#")
    try:
        late.wait_for(lambda ms: any(m.topic.endswith("box/nuc1/status") and m.payload == b"offline"
                                     and m.retain for m in ms), 10)
    finally:
        late.close()
    assert "Traceback" not in out, out


def test_broken_config_names_file_line_and_field(tmp_path):
    bad = tmp_path / "site.yaml"
    bad.write_text("site: hq\nfloor: f1\nbox: b1\nlines:\n  - id: '1'\n    sample_rate: 11025\n    source: {wav: x.wav}\n")
    for cmd in (["check-config", str(bad)], ["run", "--config", str(bad)]):
        r = subprocess.run(CALLCUE + cmd, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2
        assert f"{bad}:6: lines.0.sample_rate" in r.stderr, r.stderr
    bad.write_text("site: hq\nfloor: [unclosed\n")
    r = subprocess.run(CALLCUE + ["check-config", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"{bad}:" in r.stderr and "YAML syntax error" in r.stderr


def test_capture_mapping_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "site.yaml"
    bad.write_text("site: hq\nfloor: f1\nbox: b1\nlines:\n  - id: '1'\n"
                   "    source: {device: behringer-umc404hd, agent: 0, customer: 5}\n")
    r = subprocess.run(CALLCUE + ["check-config", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert f"{bad}:6: lines.0.source: maps customer to channel 5" in r.stderr, r.stderr
