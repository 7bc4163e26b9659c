"""`callcue bench tui` runs end to end (a short smoke run; the figures are the command's job)."""
from __future__ import annotations

import re
import subprocess
import sys


def test_bench_tui_smoke(mqtt_broker):
    host, port = mqtt_broker
    out = subprocess.run([sys.executable, "-m", "callcue.daemon.cli", "bench", "tui", "--broker",
                          f"mqtt://{host}:{port}", "--lines", "10", "--rate", "50", "--duration", "2", "--size", "80x24"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    drawn = re.search(r"on screen (\d+)/(\d+)", out.stdout)
    assert drawn and drawn.group(1) == drawn.group(2) and int(drawn.group(2)) >= 90, out.stdout
    assert re.search(r"publish -> screen\s+\d+\s+[\d.]+\s+[\d.]+", out.stdout), out.stdout
    assert "board rows 10" in out.stdout and "(expected" not in out.stdout
