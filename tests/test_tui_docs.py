"""The README's one-page desk client works against a real broker as printed."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from callcue.daemon import contract
from conftest import clear_retained

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def example() -> str:
    start = README.index("<!-- desk-client-example")
    start = README.index("```python\n", start) + len("```python\n")
    return README[start:README.index("```", start)]


def read_until(proc, needle: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} not printed within {timeout} s; got {seen}")


def test_readme_desk_client_prints_cues_and_acknowledges(tmp_path, mqtt_broker, collector):
    code = example()
    assert 25 <= len(code.strip().splitlines()) <= 40        # "a page of code"
    script = tmp_path / "desk.py"
    script.write_text(code)
    host, port = mqtt_broker
    site = f"t{uuid.uuid4().hex[:8]}"
    root = contract.root(site, "f1")
    cmds = collector(host, port, f"{root}/line/+/cmd/agent")
    pub = cmds.client
    state = contract.line_state("42", "Alice Wong", "c-1", "in_call", contract.now_iso())
    pub.publish(f"{root}/{state.subtopic}", state.encode(), qos=1, retain=True).wait_for_publish(5)
    proc = subprocess.Popen([sys.executable, "-u", str(script), host, str(port), site, "f1", "42", "alice"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "[in_call] Alice Wong call c-1" in read_until(proc, "[in_call]")     # retained state on subscribe
        alert = contract.alert("42", "c-1", "talk_over", "warning", "agent", 11.5, 12.9,
                               "Agent talked over the customer for 1.4 s", {"overlap_s": 1.42})
        for _ in range(2):                                   # a QoS 1 redelivery is shown once
            pub.publish(f"{root}/{alert.subtopic}", alert.encode(), qos=1).wait_for_publish(5)
        tip = {"id": "s1", "call_id": "c-1", "kind": "knowledge", "title": "Claims", "body": "5 working days",
               "article": "Claims are paid within five working days.", "score": 0.9}
        pub.publish(f"{root}/line/42/suggestion", json.dumps(tip), qos=1).wait_for_publish(5)
        assert "talk_over: Agent talked over" in read_until(proc, "ALERT")
        assert "TIP Claims: 5 working days" in read_until(proc, "TIP")
        assert "five working days" in read_until(proc, "five")
        proc.stdin.write("\n")
        proc.stdin.flush()
        read_until(proc, "acknowledged")
        got = cmds.wait_for(lambda ms: any(b"ack_alert" in m.payload for m in ms), 5)
        acks = [json.loads(m.payload) for m in got if b"ack_alert" in m.payload]
        assert acks == [{"op": "ack_alert", "alert_id": alert.payload["id"], "by": "alice"}]
        proc.stdin.write("\n")                               # nothing left open: nothing sent
        proc.stdin.flush()
        # the client reads stdin in order and publishes in order: acknowledging one more
        # alert after that Enter shows whether the Enter sent anything
        second = contract.alert("42", "c-1", "long_silence", "warning", None, 20.0, 26.0, "Dead air: 6.0 s",
                                {"silence_s": 6.0})
        pub.publish(f"{root}/{second.subtopic}", second.encode(), qos=1).wait_for_publish(5)
        assert "long_silence: Dead air" in read_until(proc, "ALERT")
        proc.stdin.write("\n")
        proc.stdin.flush()
        read_until(proc, "acknowledged")
        got = cmds.wait_for(lambda ms: sum(b"ack_alert" in m.payload for m in ms) >= 2, 5)
        acks = [json.loads(m.payload) for m in got if b"ack_alert" in m.payload]
        assert acks == [{"op": "ack_alert", "alert_id": alert.payload["id"], "by": "alice"},
                        {"op": "ack_alert", "alert_id": second.payload["id"], "by": "alice"}]
    finally:
        proc.kill()
        proc.wait(5)
        clear_retained(host, port, f"{root}/#")
