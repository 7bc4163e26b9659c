"""Render the README screenshots: `python -m callcue.daemon.bench.screenshots [--out tui/screenshots]`.

A private Mosquitto, and a floor of 12 lines built from the bundled demo calls: each
line's call is replayed through the real detectors (`run_replay`) and the messages up
to a point in the call are published, as if the call were that far along. Until the
speech recognition and assist engine publish them, the transcript (the demo call's
script text at its rendered times), one flow state and one knowledge suggestion are
published in the contract's shape so the call view shows those panes too.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import paho.mqtt.client as mqtt

from callcue.daemon import contract
from callcue.daemon.bus.broker import EmbeddedBroker, free_port
from callcue.daemon.commands.demo import DEMO_CALLS
from callcue.daemon.config import BrokerConfig, LineConfig, SourceConfig, default_config
from callcue.daemon.replay import run_replay
from callcue.tui.app import SupervisorApp
from callcue.tui.mqtt import floor_filters

OUT = Path(__file__).resolve().parents[2] / "tui" / "screenshots"
# (line, agent, demo call, seconds into the call; None: idle, "down": line down)
FLOOR = [
    ("301", "Maria Lopez", "en_billing_angry", 76.0), ("302", "Bob Li", "en_claim_status", 64.0),
    ("303", "陈静", "zh_claim_complaint", 70.0), ("304", "Dana Smith", "zh_policy_question", 58.0),
    ("305", "Eli Zhang", "en_claim_status", 28.0), ("306", "Fang Wu", "en_billing_angry", 41.0),
    ("307", "Gus Novak", "zh_policy_question", 12.0), ("308", "Hana Ito", None, None),
    ("309", "Ivan Petrov", "zh_claim_complaint", 40.0), ("310", "Jia Min", None, "down"),
    ("311", "Kim Lee", "en_claim_status", 81.0), ("312", "Lars Berg", None, None),
]
CALL_VIEW = "301"


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds")


def floor_messages(site: str, floor: str) -> tuple[list[contract.Message], list[contract.Message]]:
    """(the floor's history in the order it happened, the partial transcripts being spoken now)."""
    now = datetime.now(timezone.utc)
    cfg = default_config(site=site, floor=floor)
    states: list[contract.Message] = []
    timed: list[tuple[float, contract.Message]] = []      # (seconds before now, message)
    speaking: list[contract.Message] = []
    for line_id, agent, name, at in FLOOR:
        if at is None:
            states.append(contract.line_state(line_id, agent, None, "idle", iso(now - timedelta(seconds=95))))
            continue
        if at == "down":
            states.append(contract.line_state(line_id, agent, None, "down", iso(now - timedelta(seconds=40))))
            timed.append((40.0, contract.alert(line_id, None, "line_down", "critical", None, 0, 0,
                                               f"Line {line_id} is down: device 'USB Audio #2' disappeared",
                                               {"reason": "device 'USB Audio #2' disappeared", "agent": agent})))
            continue
        call_id = f"{line_id}-{contract.new_id()[:6]}"
        wav = DEMO_CALLS / f"{name}.wav"
        msgs: list[contract.Message] = []
        run_replay(wav, cfg, LineConfig(id=line_id, agent=agent, source=SourceConfig(wav=wav)), msgs.append, call_id)
        states.append(contract.line_state(line_id, agent, call_id, "in_call", iso(now - timedelta(seconds=at))))
        for m in msgs:
            if m.subtopic.endswith("/alert") and m.payload["t_end"] <= at - 0.5:
                ago = at - m.payload["t_end"]
                timed.append((ago, contract.Message(m.subtopic, {**m.payload, "ts": iso(now - timedelta(seconds=ago))})))
        labels = json.loads((DEMO_CALLS / f"{name}.labels.json").read_text(encoding="utf-8"))
        seq = 0
        for turn in labels["turns"]:
            if turn["t_start"] > at:
                break
            seq += 1
            if turn["t_end"] <= at:
                timed.append((at - turn["t_end"], contract.transcript(
                    line_id, call_id, turn["speaker"], turn["text"], True, turn["t_start"], turn["t_end"], seq)))
            else:
                words = turn["text"].split()
                speaking.append(contract.transcript(line_id, call_id, turn["speaker"],
                                                    " ".join(words[: max(2, len(words) // 2)]), False,
                                                    turn["t_start"], at, seq))
        if line_id == CALL_VIEW:
            timed.append((20.0, contract.Message(f"line/{line_id}/flow", {
                "call_id": call_id, "flow": "billing_dispute",
                "steps": [{"id": "greet", "title": "Greet", "done": True},
                          {"id": "verify", "title": "Verify identity", "done": True},
                          {"id": "find", "title": "Find payments", "done": True},
                          {"id": "refund", "title": "Refund terms", "done": True},
                          {"id": "close", "title": "Close", "done": False}],
                "completion": 0.8, "next_step": {"id": "close", "title": "Offer the landlord letter, close"}},
                retain=True)))
            timed.append((15.0, contract.Message(f"line/{line_id}/suggestion", {
                "id": contract.new_id(), "call_id": call_id, "kind": "knowledge", "title": "Duplicate premium refunds",
                "body": "Bank-side duplicates: the urgent refund flag cuts 10 working days to 3.",
                "article": "Duplicate collections caused by the bank are refunded as urgent when the customer "
                           "reports a bounced payment; offer the confirmation letter for third parties.",
                "score": 0.91})))
    timed.sort(key=lambda x: -x[0])
    return states + [m for _, m in timed], speaking


async def shoot(host: str, port: int, out_dir: Path) -> list[Path]:
    site, floor = "hq", "f3"
    app = SupervisorApp(BrokerConfig(url=f"mqtt://{host}:{port}"), floor_filters(site, floor, False),
                        user="sup.wang", scope=f"{site}/{floor}")
    async with app.run_test(size=(100, 30)) as pilot:
        while not app.client.connected:
            await pilot.pause(0.05)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"shots-{contract.new_id()[:6]}")
        pub.connect(host, port)
        pub.loop_start()
        root = contract.root(site, floor)
        history, speaking = floor_messages(site, floor)
        for m in history:
            pub.publish(f"{root}/{m.subtopic}", m.encode(), qos=1, retain=m.retain).wait_for_publish(5)
        # one alert already handled by another supervisor
        with app.live.lock:
            done = next(a for a in app.live.model.feed() if a.kind == "fast_speech")
        pub.publish(f"{root}/{contract.cmd_topic(done.line, 'supervisor')}",
                    json.dumps({"op": "ack_alert", "alert_id": done.id, "by": "sup.li"}), qos=1).wait_for_publish(5)
        await pilot.pause(2.5)     # the history is not "speaking now"; what is being said is
        for m in speaking:
            pub.publish(f"{root}/{m.subtopic}", m.encode(), qos=m.qos).wait_for_publish(5)
        await pilot.pause(0.5)
        paths = [Path(app.save_screenshot("board.svg", path=str(out_dir)))]
        app.board.move_to((site, floor, CALL_VIEW))
        for m in speaking:          # still talking when the supervisor opens the call
            pub.publish(f"{root}/{m.subtopic}", m.encode(), qos=m.qos).wait_for_publish(5)
        await pilot.press("enter")
        await pilot.pause(0.5)
        paths.append(Path(app.save_screenshot("call_view.svg", path=str(out_dir))))
        pub.loop_stop()
        pub.disconnect()
    return paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="callcue-shots-") as tmp, \
            EmbeddedBroker("127.0.0.1", port, Path(tmp)) as broker:
        t = time.perf_counter()
        paths = asyncio.run(shoot(broker.host, broker.port, args.out))
    for p in paths:
        print(f"wrote {p} ({time.perf_counter() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
