"""The assist engine inside the live daemon: an espeak call, Whisper, the sample pack,
a real broker and the call store. What crosses the wire is read back from the broker."""
from __future__ import annotations

import json
import re
import uuid

import pytest

from callcue.daemon.app import Daemon
from callcue.daemon.config import AsrConfig, BrokerConfig, LineConfig, SourceConfig, default_config
from callcue.daemon.store.calls import CallStore
from callcue.daemon.eval.synth.render import render_call, write_call
from callcue.daemon.eval.synth.script import CallScript
from conftest import clear_retained

pytestmark = pytest.mark.needs_models("whisper-tiny.en", "silero-vad")

PHONE = "4155552671"
SCRIPT = {
    "language": "en", "sample_rate": 16000,
    "turns": [
        {"speaker": "agent", "text": "Thank you for calling Harbor Mutual, my name is Ann. How can I help you today?"},
        {"speaker": "customer", "gap": 0.8, "text": "Hi. My car broke down on the highway and I need to file a claim."},
        {"speaker": "agent", "gap": 0.8, "text": "I am sorry to hear that. What is the best phone number to reach you?"},
        {"speaker": "customer", "gap": 0.8, "text": "My phone number is four one five, five five five, two six seven one."},
        {"speaker": "customer", "gap": 1.2, "text": "How much will I have to pay myself towards the repair?"},
        {"speaker": "agent", "gap": 1.0, "text": "Let me check your deductible for you."},
    ],
}


def test_daemon_pushes_knowledge_tracks_the_flow_and_masks_numbers(tmp_path, mqtt_broker, collector):
    host, port = mqtt_broker
    site = f"t{uuid.uuid4().hex[:8]}"
    wav = tmp_path / "call.wav"
    write_call(render_call(CallScript(**SCRIPT), rate=16000), wav)
    cfg = default_config(site=site, data_dir=tmp_path / "data", broker=BrokerConfig(url=f"mqtt://{host}:{port}"),
                         lines=[LineConfig(id="7", sample_rate=16000, source=SourceConfig(wav=wav, pace="fast"))],
                         asr=AsrConfig())
    col = collector(host, port, f"{cfg.topic_root}/#")
    d = Daemon(cfg)
    d.start()
    try:
        col.wait_for(lambda ms: any(m.topic.endswith("line/7/summary") for m in ms), 120)
    finally:
        d.stop()
    got = [(m.topic.rsplit("/", 1)[1], json.loads(m.payload)) for m in col.snapshot()
           if m.topic.startswith(f"{cfg.topic_root}/line/7/") and m.payload]
    texts = [p["text"] for k, p in got if k == "transcript"]
    assert texts, "no transcripts"
    # redaction: no run of 6+ digits of the phone number on the wire (Whisper writes digits)
    wire = json.dumps([p for _, p in got], ensure_ascii=False)
    digits = re.sub(r"\D", " ", wire).split()
    assert not any(PHONE[i:i + 6] in run for run in digits for i in range(len(PHONE) - 5)), texts
    pushes = [p for k, p in got if k == "suggestion" and p["kind"] == "knowledge"]
    assert "deductible" in [p["kb_topic"] for p in pushes], (texts, pushes)
    push = next(p for p in pushes if p["kb_topic"] == "deductible")
    assert push["score"] >= 0.3 and push["body"] and "pay myself" in push["question"]
    flows = [p for k, p in got if k == "flow"]
    assert flows[-1]["flow"] == "inbound-service-en"
    assert {s["id"] for s in flows[-1]["steps"] if s["done"]} >= {"greet"}
    summary = next(p for k, p in got if k == "summary")
    assert "deductible" in summary["scorecard"]["knowledge_pushed"]
    assert "roadside-en" in summary["scorecard"]["offers"]["suggested"]   # "broke down" fits the roadside offer
    health = d.health()["assist"]
    assert health["pack"] == "insurance-sample" and health["suggestions"]["knowledge"] >= 1
    store = CallStore(tmp_path / "data" / "calls")
    try:
        rec = store.get_call(summary["call_id"])
        kinds = {e["kind"] for e in rec["events"]}
        assert {"transcript", "suggestion", "summary"} <= kinds
        stored = json.dumps(rec, ensure_ascii=False)
        assert not any(PHONE[i:i + 6] in run for run in re.sub(r"\D", " ", stored).split()
                       for i in range(len(PHONE) - 5))
    finally:
        store.close()
        clear_retained(host, port, f"{cfg.topic_root}/#")
