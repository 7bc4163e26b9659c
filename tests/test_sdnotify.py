"""sd_notify against a real unix datagram socket, as systemd would listen."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from callcue.daemon import sdnotify


@pytest.fixture
def listener(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


@pytest.fixture
def abstract_listener(monkeypatch):
    name = f"callcue-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    yield sock
    sock.close()


def test_each_message_is_one_exact_datagram(listener):
    assert sdnotify.ready() is True
    assert listener.recv(4096) == b"READY=1"
    assert sdnotify.status("2 line(s)\nbroker   up") is True
    assert listener.recv(4096) == b"STATUS=2 line(s) broker up"  # one line, as the protocol needs
    assert sdnotify.watchdog() is True
    assert listener.recv(4096) == b"WATCHDOG=1"
    assert sdnotify.stopping() is True
    assert listener.recv(4096) == b"STOPPING=1"
    assert sdnotify.ready("loaded 3 models")
    assert listener.recv(4096) == b"READY=1\nSTATUS=loaded 3 models"
    assert sdnotify.extend_timeout(45)
    assert listener.recv(4096) == b"EXTEND_TIMEOUT_USEC=45000000"
    assert sdnotify.status("通话 3 路")
    assert listener.recv(4096) == "STATUS=通话 3 路".encode()


def test_abstract_namespace_socket(abstract_listener):
    assert sdnotify.ready() is True
    assert abstract_listener.recv(4096) == b"READY=1"
    assert sdnotify.watchdog() is True
    assert abstract_listener.recv(4096) == b"WATCHDOG=1"


def test_no_socket_means_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    assert sdnotify.watchdog() is False
    assert sdnotify.status("x") is False
    assert sdnotify.stopping() is False


def test_missing_socket_raises_naming_it(tmp_path, monkeypatch):
    path = tmp_path / "gone.sock"
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    with pytest.raises(sdnotify.NotifyError, match=f"NOTIFY_SOCKET='{path}' failed"):
        sdnotify.watchdog()
    monkeypatch.setenv("NOTIFY_SOCKET", "relative.sock")
    with pytest.raises(sdnotify.NotifyError, match="absolute path or '@name'"):
        sdnotify.ready()


def test_bad_assignment_is_refused(listener):
    with pytest.raises(ValueError, match="VAR=value"):
        sdnotify.notify("READY=1\nWATCHDOG=1")
    with pytest.raises(ValueError, match="VAR=value"):
        sdnotify.notify("READY")


def test_watchdog_interval(monkeypatch):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert sdnotify.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval() == 30.0
    # inherited by a child process: not ours to ping
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "thirty")
    with pytest.raises(sdnotify.NotifyError, match="WATCHDOG_USEC='thirty'"):
        sdnotify.watchdog_interval()


UNIT = Path(__file__).resolve().parent.parent / "systemd" / "callcue.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_file_verifies(tmp_path):
    # verify checks that ExecStart exists; the venv is not installed in /opt here
    text = UNIT.read_text()
    assert "\nExecStart=/opt/callcue/.venv/bin/callcue run --config /etc/callcue/site.yaml\n" in text
    unit = tmp_path / "callcue.service"
    unit.write_text(text.replace("ExecStart=/opt/callcue/.venv/bin/callcue", "ExecStart=/bin/true"))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # unknown or misspelt directives are only warnings: any output is a failure
    assert out.returncode == 0 and out.stdout == "" and out.stderr == "", out.stdout + out.stderr
    settings = {line.partition("=")[0]: line.partition("=")[2] for line in text.splitlines()
                if "=" in line and not line.startswith("#")}
    assert settings["Type"] == "notify" and settings["NotifyAccess"] == "main"
    assert settings["WatchdogSec"] == "30" and settings["Restart"] == "always"
