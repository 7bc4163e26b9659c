"""The whole box, as deployed: `callcue run` in its own process reads an espeak-ng call
through real PyAudio from an ALSA `file` PCM device, and its alerts are read back from
a real Mosquitto broker."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import numpy as np

from callcue.daemon.eval.synth.render import render_call
from callcue.daemon.eval.synth.script import CallScript
from conftest import collect

RATE = 8000

SCRIPT = {
    "language": "en",
    "turns": [
        {"speaker": "agent", "text": "Good morning, Summit Shield Insurance, this is Alice, how can I help you today?"},
        {"speaker": "customer", "gap": 0.6,
         "text": "Hi, I am calling about my car insurance claim, I sent all the photos two weeks ago."},
        # the agent cuts in 1.8 s before the customer has finished
        {"speaker": "agent", "gap": -1.8,
         "text": "Let me stop you there, could I have your claim reference number please?"},
        # dead air while the customer looks for it
        {"speaker": "customer", "gap": 7.0, "text": "Yes, it is four four seven one."},
    ],
}


def test_run_hears_an_alsa_device_and_alerts_reach_the_broker(tmp_path, mqtt_broker):
    host, port = mqtt_broker
    rendered = render_call(CallScript.model_validate(SCRIPT), RATE, seed=3)
    truth = {e.kind: e for e in rendered.events}
    assert {"talk_over", "long_silence"} <= set(truth)
    audio = np.concatenate([rendered.audio, np.zeros((2 * RATE, 2), np.int16)])  # end on silence
    raw = tmp_path / "line1.raw"
    audio.astype("<i2").tofile(raw)

    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(
        f'pcm.e2etap {{\n type file\n slave.pcm "null"\n file "/dev/null"\n infile "{raw}"\n'
        f' format "raw"\n hint {{ show on description "e2e tap" }}\n}}\n')
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "e2e-tap.yaml").write_text("name: e2e-tap\ndescription: test tap\nmatch: e2etap\n"
                                          "channels: 2\nclocked: false\n")
    site = f"t{uuid.uuid4().hex[:8]}"
    cfg = tmp_path / "site.yaml"
    cfg.write_text(f"""\
site: {site}
floor: f1
box: nuc1
broker: {{url: "mqtt://{host}:{port}"}}
data_dir: data
hardware_dirs: [profiles]
lines:
  - id: "1"
    agent: Alice
    sample_rate: {RATE}
    source: {{device: e2e-tap, agent: 0, customer: 1}}
  - id: "2"
    agent: Bob
    sample_rate: {RATE}
    source: {{device: no-such-interface, agent: 0, customer: 1}}
""")
    col = collect(host, port, f"callcue/v1/{site}/f1/#")
    env = dict(os.environ, HOME=str(home))
    proc = subprocess.Popen([sys.executable, "-m", "callcue.daemon.cli", "run", "--config", str(cfg)],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        msgs = col.wait_for(lambda ms: sum(m.topic.endswith("line/1/alert") for m in ms) >= 2
                            and any(m.topic.endswith("line/2/alert") for m in ms),
                            timeout=rendered.duration + 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
            col.close()
    out = proc.stdout.read()
    assert proc.returncode == 0, out

    alerts = {}
    for m in msgs:
        if m.topic.endswith("line/1/alert"):
            a = json.loads(m.payload)
            alerts[a["kind"]] = a
    assert set(alerts) == {"talk_over", "long_silence"}, (alerts, out)
    tov, sil = alerts["talk_over"], alerts["long_silence"]
    assert tov["speaker"] == "agent"
    overlap = truth["talk_over"].t_end - truth["talk_over"].t_start
    assert abs(tov["evidence"]["overlap_s"] - overlap) < 0.5
    # alert times are call times; the call started on the first words, so compare spacing
    spacing = truth["long_silence"].t_start - truth["talk_over"].t_start
    assert abs((sil["t_start"] - tov["t_start"]) - spacing) < 1.0

    down = [json.loads(m.payload) for m in msgs if m.topic.endswith("line/2/alert")]
    assert down[0]["kind"] == "line_down" and "no-such-interface" in down[0]["message"], down
    # the line with the missing device did not disturb the other line
    assert not any(m.topic.endswith("line/1/state") and b'"down"' in m.payload for m in msgs)
