"""`callcue demo` as a user runs it: embedded broker, demo lines, readable log."""
import re
import subprocess
import sys

from conftest import needs_demo_calls


def test_demo_runs_on_embedded_defaults_and_stops_cleanly(tmp_path):
    needs_demo_calls()
    r = subprocess.run([sys.executable, "-m", "callcue.daemon.cli", "demo", "--duration", "6", "--lines", "3",
                        "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(r"embedded broker on 127\.0\.0\.1:\d+", out)
    for line in ("demo1", "demo2", "demo3"):
        assert re.search(rf"line {line}\s+in_call\s+agent='[^']+' call={line}-0001", out), out
    assert "box box1 is online" in out
    assert "frames dropped 0, errors 0" in out
    assert "Traceback" not in r.stderr
