"""The real `callcue tui` in a real terminal (tmux) against a running `callcue run`:
keys go in with send-keys, the screen is read back with capture-pane."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from conftest import clear_retained
from helpers import call, speech, write_wav

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (provision.sh installs it)")


class Tmux:
    def __init__(self, socket: str):
        self.socket = socket

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "tui").stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "tui", *keys)

    def wait(self, predicate, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not on screen within {timeout} s; screen:\n{text}")
            time.sleep(0.1)


def row(text: str, line: str) -> str:
    return next((x for x in text.splitlines() if x.split()[:1] == [line]), "")


def test_tui_in_tmux_against_callcue_run(tmp_path, mqtt_broker, collector):
    host, port = mqtt_broker
    site = f"t{uuid.uuid4().hex[:8]}"
    wav = write_wav(tmp_path / "call.wav", call([("customer", 0.5, speech(5.0, f0=210)), ("agent", 3.5, speech(4.0)),
                                                  ("customer", 8.0, speech(3.0, f0=210, seed=2))], 12.0))
    cfg = tmp_path / "site.yaml"
    cfg.write_text(f"""\
site: {site}
floor: f1
box: nuc1
broker: {{url: "mqtt://{host}:{port}"}}
data_dir: data
lines:
  - id: "L1"
    agent: Alice Wong
    source: {{wav: {wav}, pace: realtime, loop: true}}
""")
    alerts = collector(host, port, f"callcue/v1/{site}/f1/line/+/alert")
    cmds = collector(host, port, f"callcue/v1/{site}/f1/line/+/cmd/supervisor")
    daemon = subprocess.Popen([sys.executable, "-m", "callcue.daemon.cli", "run", "--config", str(cfg)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tmux = Tmux(f"callcue-test-{uuid.uuid4().hex[:8]}")
    tui = (f"{sys.executable} -m callcue.daemon.cli tui --broker mqtt://{host}:{port} --site {site} --floor f1 "
           f"--user sup-tmux")
    try:
        # remain-on-exit: if the TUI dies, its last screen (a traceback) stays readable
        tmux.run("new-session", "-d", "-x", "100", "-y", "30", "-s", "tui", tui, ";",
                 "set-option", "-t", "tui", "remain-on-exit", "on")
        text = tmux.wait(lambda s: "in call" in row(s, "L1"), 30, "the live call")
        assert "Alice Wong" in row(text, "L1") and "● connected" in text.splitlines()[0]
        text = tmux.wait(lambda s: "talk over" in row(s, "L1"), 20, "talk_over on the row")
        assert "Agent talked over" in text         # and in the feed
        tmux.keys("?")
        tmux.wait(lambda s: "Keys" in s and "acknowledge" in s, 5, "help screen")
        tmux.keys("x")
        # a key typed while the help is still closing goes to the help screen, not the board
        tmux.wait(lambda s: "acknowledge" not in s and "Enter call" in s, 5, "help closed, the board back")
        tmux.keys("Enter")
        text = tmux.wait(lambda s: "Line L1" in s and "agitation│" in s, 5, "call view")
        marks = next(x for x in text.splitlines() if x.strip().startswith("alerts"))
        assert "T" in marks
        tmux.keys("a")
        got = cmds.wait_for(lambda ms: any(b"ack_alert" in m.payload for m in ms), 5)
        ack = json.loads(next(m for m in got if b"ack_alert" in m.payload).payload)
        ids = {json.loads(m.payload)["id"] for m in alerts.snapshot() if b"talk_over" in m.payload}
        assert ack["alert_id"] in ids and ack["by"] == "sup-tmux"
        tmux.keys("Escape")
        # back on the board before the next key: a key sent while the terminal still parses
        # a lone Escape arrives as Alt+key (this is what made q look ignored under load)
        tmux.wait(lambda s: "Esc back" not in s and "✓ sup-tmux" in s, 5, "acknowledged in the feed")
        tmux.keys("q")
        deadline = time.monotonic() + 10
        while tmux.run("display-message", "-p", "-t", "tui", "#{pane_dead}").stdout.strip() != "1":
            assert time.monotonic() < deadline, "q did not quit the TUI:\n" + tmux.screen()
            time.sleep(0.1)
        assert "Traceback" not in tmux.screen(), tmux.screen()
    finally:
        tmux.run("kill-server", check=False)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        finally:
            if daemon.poll() is None:
                daemon.kill()
        clear_retained(host, port, f"callcue/v1/{site}/#")
    assert daemon.returncode == 0, daemon.stdout.read()
