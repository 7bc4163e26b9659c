"""The supervisor TUI and the desk client driven with Textual's pilot against a real
Mosquitto, fed by `callcue replay` and by the live daemon; commands are read back from
the broker (and the daemon's call store)."""
from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from textual import events

from callcue.daemon import contract
from callcue.daemon.app import Daemon
from callcue.daemon.config import BrokerConfig, LineConfig, SourceConfig, default_config
from callcue.daemon.store.calls import CallStore
from callcue.tui.agent import AgentApp
from callcue.tui.app import CallScreen, ConfirmScreen, HelpScreen, SupervisorApp
from callcue.tui.mqtt import floor_filters
from conftest import clear_retained
from helpers import call, speech, write_wav


def screen_text(app) -> str:
    """What the terminal shows right now (the compositor's lines as plain text)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def notices(app) -> list[str]:
    """The notifications (toasts) the app has raised: Textual keeps them in App._notifications;
    they are not in the composited screen under run_test."""
    return [n.message for n in app._notifications]


def row_of(app, line: str) -> str:
    for text in screen_text(app).splitlines():
        if text.split()[:1] == [line]:
            return text
    return ""


async def until(pilot, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout} s; screen:\n{screen_text(pilot.app)}")
        await pilot.pause(0.05)


@pytest.fixture
def talk_over_call(tmp_path) -> Path:
    # customer 0.5-5.5 s, the agent cuts in at 3.5 s (2 s overlap), then they take turns
    audio = call([("customer", 0.5, speech(5.0, f0=210)), ("agent", 3.5, speech(4.0)),
                  ("customer", 8.0, speech(3.0, f0=210, seed=2))], 12.0)
    return write_wav(tmp_path / "talk_over.wav", audio)


@pytest.fixture
def site(mqtt_broker):
    site = f"t{uuid.uuid4().hex[:8]}"
    yield site
    clear_retained(*mqtt_broker, f"callcue/v1/{site}/#")


def broker_cfg(host: str, port: int) -> BrokerConfig:
    return BrokerConfig(url=f"mqtt://{host}:{port}", keepalive_s=10)


def test_board_and_feed_follow_a_replayed_call_and_ack_reaches_the_broker(
        tmp_path, mqtt_broker, collector, talk_over_call, site):
    host, port = mqtt_broker
    cfg = tmp_path / "site.yaml"
    cfg.write_text(f"site: {site}\nfloor: f1\nbox: b1\n")
    cmds = collector(host, port, f"callcue/v1/{site}/f1/line/+/cmd/+")
    alerts = collector(host, port, f"callcue/v1/{site}/f1/line/+/alert")

    async def scenario():
        app = SupervisorApp(broker_cfg(host, port), floor_filters(site, "f1", False), user="sup-pilot",
                            scope=f"{site}/f1")
        async with app.run_test(size=(100, 30)) as pilot:
            # the header names the connection state from the first frame (on a fast box the
            # connection may already be up by then: either state is right, none is not)
            first = screen_text(app).splitlines()[0]
            assert "connecting" in first or "● connected" in first, first
            await until(pilot, lambda: "● connected" in screen_text(app).splitlines()[0], 10, "connected")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "callcue.daemon.cli", "replay", str(talk_over_call), "--config", str(cfg),
                "--broker", f"mqtt://{host}:{port}", "--no-asr", "--call-id", "c-pilot",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await proc.communicate()
            assert proc.returncode == 0, out.decode()
            # the row: agent, idle after the recording ended, the talk-over still open on it
            await until(pilot, lambda: "talk over" in row_of(app, "replay"), 10, "talk_over on the row")
            row = row_of(app, "replay").split()
            assert row[1:2] == ["idle"] and "1" in row, row
            text = screen_text(app)
            feed_line = next(x for x in text.splitlines() if "talk over" in x and "Agent talked over" in x)
            assert "warn" in feed_line and "replay" in feed_line
            assert "talk over 1" in text       # floor stats: alerts by kind in the last hour

            talk = [json.loads(m.payload) for m in alerts.snapshot() if b"talk_over" in m.payload]
            assert len(talk) == 1
            # acknowledge from the feed: Tab to it, the newest alert is selected
            await pilot.press("tab")
            assert app.focused is app.feed
            assert app.feed.cursor_item.kind == "talk_over"
            await pilot.press("a")
            got = cmds.wait_for(lambda ms: any(b"ack_alert" in m.payload for m in ms), 5)
            ack = json.loads(next(m for m in got if b"ack_alert" in m.payload).payload)
            assert ack == {"op": "ack_alert", "alert_id": talk[0]["id"], "by": "sup-pilot"}
            assert got[0].topic == f"callcue/v1/{site}/f1/line/replay/cmd/supervisor"
            await until(pilot, lambda: "✓ sup-pilot" in screen_text(app), 5, "ack mark in the feed")
            await until(pilot, lambda: "talk over" not in row_of(app, "replay"), 5, "row cleared")
            # the call has ended: a take-over flag is refused with a notice, nothing is sent
            await pilot.press("t")
            await until(pilot, lambda: any("has no call to flag" in n for n in notices(app)), 5, "take-over refused")
            # coaching is for after the call, too; the commands go out in order, so the
            # coaching flag being the only flag proves the take-over sent nothing
            await pilot.press("c")
            got = cmds.wait_for(lambda ms: any(b'"flag"' in m.payload for m in ms), 5)
            flags = [json.loads(m.payload) for m in got if b'"flag"' in m.payload]
            assert flags == [{"op": "flag", "reason": "coaching", "by": "sup-pilot", "call_id": "c-pilot"}]

    asyncio.run(scenario())


def test_live_daemon_call_updates_the_row_and_ack_and_flags_reach_the_daemon(
        tmp_path, mqtt_broker, collector, talk_over_call, site):
    host, port = mqtt_broker
    lines = [LineConfig(id="L1", agent="Alice Wong", source=SourceConfig(wav=talk_over_call, pace="realtime",
                                                                          loop=True))]
    cfg = default_config(site=site, lines=lines, data_dir=tmp_path / "data",
                         broker=BrokerConfig(url=f"mqtt://{host}:{port}"))
    daemon = Daemon(cfg)
    cmds = collector(host, port, f"{cfg.topic_root}/line/+/cmd/supervisor")

    async def scenario():
        app = SupervisorApp(broker_cfg(host, port), floor_filters(site, "f1", False), user="sup-live")
        async with app.run_test(size=(80, 24)) as pilot:
            daemon.start()
            try:
                await until(pilot, lambda: "in call" in row_of(app, "L1"), 10, "call in progress")
                first = row_of(app, "L1")
                assert "Alice Wong" in first
                await until(pilot, lambda: "talk over" in row_of(app, "L1"), 15, "talk_over on the live row")
                row = row_of(app, "L1")
                assert row != first and "in call" in row

                def seconds() -> int:      # the row's duration column (m:ss), -1 when it shows none
                    dur = [w for w in row_of(app, "L1").split() if ":" in w]
                    return int(dur[0].split(":")[0]) * 60 + int(dur[0].split(":")[1]) if dur else -1

                # the duration is counting (a busy box may be showing an early moment of the call)
                await until(pilot, lambda: seconds() >= 3, 10, "the call's duration counting up")
                # the call view: timeline with the talk-over mark
                await pilot.press("enter")
                assert isinstance(app.screen, CallScreen)
                await until(pilot, lambda: "Line L1" in screen_text(app), 5, "call view")
                marks = next(x for x in screen_text(app).splitlines() if x.strip().startswith("alerts"))
                assert "T" in marks.split("│")[1]
                # acknowledge every open alert of the line from the call view
                await pilot.press("a")
                got = cmds.wait_for(lambda ms: any(b"ack_alert" in m.payload for m in ms), 5)
                ack = json.loads(next(m for m in got if b"ack_alert" in m.payload).payload)
                with app.live.lock:
                    line = app.live.model.line((site, "f1", "L1"))
                    call_id = line.call_id
                    talk = [a for a in line.current.alerts if a.kind == "talk_over"]
                assert ack["alert_id"] == talk[0].id and ack["by"] == "sup-live"
                # take-over asks first; 'n' sends nothing, 'y' sends the flag (commands go out in
                # order, so the take-over being the only flag proves 'n' sent nothing)
                await pilot.press("t")
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "take-over question")
                await pilot.press("n")
                await until(pilot, lambda: isinstance(app.screen, CallScreen), 5, "question answered")
                await pilot.press("t")
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "take-over question")
                await pilot.press("y")
                got = cmds.wait_for(lambda ms: any(b'"flag"' in m.payload for m in ms), 5)
                flags = [json.loads(m.payload) for m in got if b'"flag"' in m.payload]
                assert flags == [{"op": "flag", "reason": "takeover", "by": "sup-live", "call_id": call_id}]
                await pilot.press("escape")
                await until(pilot, lambda: "⚑T" in row_of(app, "L1"), 5, "take-over mark on the row")
                assert screen_text(app).splitlines()[2].startswith("L1")    # flagged: top of the board
            finally:
                daemon.stop()
        return call_id, talk[0].id

    call_id, alert_id = asyncio.run(scenario())
    assert daemon.errors == 0      # the daemon knew the alert and the call
    store = CallStore(tmp_path / "data" / "calls")
    try:
        rec = store.get_call(call_id)
        events = rec["events"]
        assert any(e["kind"] == "ack" and e["payload"] == {"alert_id": alert_id, "by": "sup-live"} for e in events)
        assert [f["reason"] for f in rec["flags"]] == ["takeover"]
    finally:
        store.close()


def test_reconnects_by_itself_shows_the_outage_and_resubscribes(private_broker):
    host, port = private_broker.host, private_broker.port
    root = contract.root("rc", "f1")
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    pub.reconnect_delay_set(1, 1)
    pub.connect(host, port)
    pub.loop_start()

    def publish(msg: contract.Message) -> None:
        pub.publish(f"{root}/{msg.subtopic}", msg.encode(), qos=1, retain=msg.retain).wait_for_publish(5)

    async def scenario():
        app = SupervisorApp(broker_cfg(host, port), floor_filters("rc", "f1", False))
        async with app.run_test(size=(80, 24)) as pilot:
            publish(contract.line_state("5", "Eve", "c5", "in_call", contract.now_iso()))
            await until(pilot, lambda: "in call" in row_of(app, "5"), 10, "row")
            private_broker.stop()
            await until(pilot, lambda: "DISCONNECTED" in screen_text(app).splitlines()[0], 10, "outage shown")
            assert app.client.connected is False
            private_broker.start()
            await until(pilot, lambda: "● connected" in screen_text(app).splitlines()[0], 20, "reconnected")
            assert app.client.connects >= 2
            await until(pilot, lambda: pub.is_connected(), 10, "publisher back")
            publish(contract.alert("5", "c5", "long_silence", "warning", None, 3.0, 8.0, "Dead air: 5.0 s",
                                   {"silence_s": 5.0}))
            await until(pilot, lambda: "silence" in row_of(app, "5"), 10, "alert after the reconnect")

    try:
        asyncio.run(scenario())
    finally:
        pub.loop_stop()
        pub.disconnect()


def test_all_floors_chinese_80x24_help_and_language_switch(private_broker):
    host, port = private_broker.host, private_broker.port
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    pub.connect(host, port)
    pub.loop_start()
    for floor, agent in (("f1", "王芳"), ("f2", "Bob Li")):
        msg = contract.line_state("1", agent, f"c-{floor}", "in_call", contract.now_iso())
        pub.publish(f"{contract.root('hq', floor)}/{msg.subtopic}", msg.encode(), qos=1, retain=True).wait_for_publish(5)
    alert = contract.alert("1", "c-f2", "agitation", "critical", "customer", 4.0, 9.0, "Customer agitated",
                           {"pitch_up_st": 6.4, "loudness_up_db": 5.7})
    pub.publish(f"{contract.root('hq', 'f2')}/{alert.subtopic}", alert.encode(), qos=1)

    async def scenario():
        app = SupervisorApp(broker_cfg(host, port), floor_filters(None, None, True), lang="zh")
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "f1/1" in screen_text(app) and "f2/1" in screen_text(app), 10, "two floors")
            pub.publish(f"{contract.root('hq', 'f2')}/{alert.subtopic}", alert.encode(), qos=1)
            await until(pilot, lambda: "情绪激动" in row_of(app, "f2/1"), 10, "alert in Chinese")
            lines = screen_text(app).splitlines()
            assert len(lines) == 24 and all(len(x) <= 80 for x in lines)
            assert "全部楼层" in lines[0] and "通话中" in row_of(app, "f1/1")
            assert lines[2].startswith("f2/1")          # the agitated customer's line is on top
            assert "▮▮▮▮" in row_of(app, "f2/1")          # mood meter near full
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            assert "快捷键" in screen_text(app)
            await pilot.press("x")
            assert not isinstance(app.screen, HelpScreen)
            # two keys typed while the help is still up (a busy box): one closes it, the other must
            # not pop the board too (this crashed the TUI with ScreenStackError in the tmux test)
            await pilot.press("question_mark")
            help_screen = app.screen
            assert isinstance(help_screen, HelpScreen)
            help_screen.on_key(events.Key("x", "x"))
            help_screen.on_key(events.Key("y", "y"))     # arrives before the first close took effect
            await pilot.pause()
            assert not isinstance(app.screen, HelpScreen) and len(app.screen_stack) == 1
            await pilot.press("L")
            await until(pilot, lambda: "in call" in row_of(app, "f1/1"), 5, "English")
            assert "agitation" in row_of(app, "f2/1")

    try:
        asyncio.run(scenario())
    finally:
        pub.loop_stop()
        pub.disconnect()


def test_agent_desk_shows_cues_with_article_text_and_acknowledges(mqtt_broker, collector, site):
    host, port = mqtt_broker
    root = contract.root(site, "f1")
    cmds = collector(host, port, f"{root}/line/+/cmd/agent")
    other = contract.alert("8", "c8", "talk_over", "warning", "agent", 1.0, 2.0, "other line", {})

    async def scenario():
        app = AgentApp(broker_cfg(host, port), site, "f1", "7", user="alice")
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.client.connected, 10, "connected")
            assert "Waiting for cues on line 7" in screen_text(app)
            pub = cmds.client

            def publish(msg):
                pub.publish(f"{root}/{msg.subtopic}", msg.encode(), qos=1, retain=msg.retain).wait_for_publish(5)
            publish(contract.line_state("7", "Alice Wong", "c7", "in_call", contract.now_iso()))
            talk = contract.alert("7", "c7", "talk_over", "warning", "agent", 11.5, 12.9,
                                  "Agent talked over the customer for 1.4 s", {"overlap_s": 1.42})
            publish(talk)
            publish(other)
            await until(pilot, lambda: "talk over" in screen_text(app), 10, "alert cue")
            sug = contract.Message("line/7/suggestion", {
                "id": "s-1", "call_id": "c7", "kind": "knowledge", "title": "Claim status timeline",
                "body": "Tell the customer claims settle within 5 working days.", "score": 0.87,
                "article": "Claims with complete photos are assessed in 2 days and paid within 5 working days."})
            publish(sug)
            await until(pilot, lambda: "Claim status timeline" in screen_text(app), 10, "suggestion cue")
            text = screen_text(app)
            assert "other line" not in text                 # only this line's topics
            assert "assessed in 2 days" in text             # newest (the suggestion) selected: article shown
            await pilot.press("a")                          # a suggestion: marked seen on this desk only
            await until(pilot, lambda: "seen" in screen_text(app), 5, "suggestion seen")
            await pilot.press("down")
            await until(pilot, lambda: "overlap_s" in screen_text(app), 5, "alert detail")
            await pilot.press("enter")
            got = cmds.wait_for(lambda ms: any(b"ack_alert" in m.payload for m in ms), 5)
            acks = [json.loads(m.payload) for m in got if b"ack_alert" in m.payload]
            assert acks == [{"op": "ack_alert", "alert_id": talk.payload["id"], "by": "alice"}]
            await until(pilot, lambda: "✓" in screen_text(app), 5, "ack mark")

    asyncio.run(scenario())
