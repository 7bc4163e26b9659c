"""What the supervisor's floor board, its call view and the agent's desk client look like:
SVG snapshots (pytest-textual-snapshot) in tests/__snapshots__/test_tui_snapshots/.

Every screen is drawn from fixed contract v1 messages (fixed ids, fixed `ts` and `since`)
applied to the model at fixed receive times, with the apps' wall clock frozen at NOW,
clock times shown in UTC, a fixed user and a fixed terminal size, so each SVG is the
same on every machine and every run. No broker: the apps are built without a client and
read the LiveFloor the test filled.

After an intended change to a screen: `pytest tests/test_tui_snapshots.py --snapshot-update`,
look at the new SVGs (a failed run writes snapshot_report.html showing old and new side
by side), then commit them.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone

import pytest
from textual import constants as textual_constants

from callcue.tui import app as tui_app
from callcue.tui.agent import AgentApp
from callcue.tui.app import CallScreen, LiveFloor, SupervisorApp

NOW = 1_800_000_000.0                  # 2027-01-15 08:00:00 UTC
SITE, FLOOR = "hq", "f3"
ROOT = f"callcue/v1/{SITE}/{FLOOR}"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


class Floor:
    """Contract messages received `ago` seconds before NOW; `live()` applies them to a
    LiveFloor's model in the order they arrived."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str, bytes]] = []

    def send(self, subtopic: str, payload: dict, ago: float) -> None:
        self.sent.append((ago, f"{ROOT}/{subtopic}", json.dumps(payload, ensure_ascii=False).encode()))

    def live(self) -> LiveFloor:
        live = LiveFloor()
        for ago, topic, payload in sorted(self.sent, key=lambda m: -m[0]):    # stable: oldest first
            assert live.model.apply(topic, payload, NOW - ago) is not None, (topic, live.model.last_error)
        assert live.model.rejected == 0, live.model.last_error
        return live

    def state(self, line: str, agent: str, call_id: str | None, status: str, since_ago: float) -> None:
        self.send(f"line/{line}/state", {"line": line, "agent": agent, "call_id": call_id, "status": status,
                                         "since": iso(NOW - since_ago)}, since_ago)

    def alert(self, line: str, call_id: str | None, alert_id: str, kind: str, severity: str,
              speaker: str | None, t_start: float, t_end: float, message: str, evidence: dict,
              ago: float) -> None:
        self.send(f"line/{line}/alert", {"id": alert_id, "call_id": call_id, "kind": kind, "severity": severity,
                                         "speaker": speaker, "t_start": t_start, "t_end": t_end,
                                         "message": message, "evidence": evidence, "ts": iso(NOW - ago)}, ago)

    def said(self, line: str, call_id: str, seq: int, speaker: str, text: str, t_start: float, t_end: float,
             ago: float, final: bool = True) -> None:
        self.send(f"line/{line}/transcript", {"call_id": call_id, "speaker": speaker, "text": text,
                                              "final": final, "t_start": t_start, "t_end": t_end, "seq": seq}, ago)

    def cmd(self, line: str, body: dict, ago: float) -> None:
        self.send(f"line/{line}/cmd", body, ago)


def billing_call(f: Floor) -> None:
    """Line 301: an angry customer 2:05 into a billing call, with a flow, a suggestion and
    a transcript (the call the call view and the desk client show)."""
    f.state("301", "Maria Lopez", "301-c1", "in_call", 125)
    turns = [
        ("agent", "Thank you for calling Harbor Mutual, my name is Maria. How can I help you today?", 1.0, 5.2),
        ("customer", "I was charged twice for my premium this month and nobody called me back.", 6.0, 10.4),
        ("agent", "I am sorry about that. Can I have your date of birth to verify your identity?", 11.0, 15.1),
        ("customer", "It is the fourth of May. This is the third time I am calling about it!", 16.0, 20.8),
        ("agent", "Thank you. Let me check the payments on your policy.", 21.5, 24.0),
    ]
    for seq, (who, text, t0, t1) in enumerate(turns, 1):
        f.said("301", "301-c1", seq, who, text, t0, t1, ago=125 - t1)
    f.alert("301", "301-c1", "a301-talk", "talk_over", "warning", "agent", 18.2, 19.9,
            "Agent talked over the customer for 1.7 s", {"overlap_s": 1.7}, ago=105)
    f.alert("301", "301-c1", "a301-agit", "agitation", "critical", "customer", 16.0, 20.8,
            "Customer agitated: pitch +6.4 st, loudness +5.7 dB", {"pitch_up_st": 6.4, "loudness_up_db": 5.7},
            ago=100)
    f.send("line/301/flow", {"call_id": "301-c1", "flow": "service-en", "branch": "billing", "completion": 0.5,
                             "steps": [{"id": "greet", "title": "Greet", "done": True},
                                       {"id": "verify", "title": "Verify", "done": True},
                                       {"id": "billing_check", "title": "Check payments", "done": False},
                                       {"id": "close", "title": "Close", "done": False}],
                             "next_step": {"id": "billing_check", "title": "Check payments"},
                             "ts": iso(NOW - 101)}, ago=101)
    f.send("line/301/suggestion", {"id": "s301-1", "call_id": "301-c1", "kind": "knowledge",
                                   "title": "Duplicate premium charge", "score": 0.91, "t": 21.0,
                                   "body": "Refund the second charge today; it reaches the card in 3-5 working days.",
                                   "article": "A premium collected twice in one month is refunded by billing "
                                              "the same day, without a claim.",
                                   "ts": iso(NOW - 103)}, ago=103)
    f.said("301", "301-c1", 6, "customer", "So when do I get my money", 25.0, 26.2, ago=1, final=False)


def floor() -> Floor:
    """A floor of six lines in every state the board shows."""
    f = Floor()
    billing_call(f)
    # 302: dead air right now
    f.state("302", "Bob Li", "302-c1", "in_call", 64)
    f.alert("302", "302-c1", "a302-sil", "long_silence", "warning", None, 52.0, 58.0, "Dead air: 6.0 s",
            {"silence_s": 6.0}, ago=6)
    # 303: a long calm call, the agent speaking
    f.state("303", "陈静", "303-c1", "in_call", 431)
    f.said("303", "303-c1", 1, "agent", "您的保单下个月到期，需要帮您续保吗？", 420.0, 424.0, ago=1)
    # 304: idle after a call acknowledged by another supervisor
    f.state("304", "Dana Smith", "304-c1", "in_call", 900)
    f.alert("304", "304-c1", "a304-fast", "fast_speech", "info", "agent", 300.0, 320.0,
            "Agent speaking fast: 6.1 syllables/s", {"syl_per_s": 6.1}, ago=700)
    f.cmd("304", {"op": "ack_alert", "alert_id": "a304-fast", "by": "sup2@desk"}, ago=690)
    f.state("304", "Dana Smith", None, "idle", 420)
    # 305: line down
    f.state("305", "Eli Zhang", None, "down", 40)
    f.alert("305", None, "a305-down", "line_down", "critical", None, 0, 0,
            "Line 305 is down: device 'USB Audio #2' disappeared", {"reason": "device 'USB Audio #2' disappeared"},
            ago=40)
    # 306: flagged for take-over by a supervisor
    f.state("306", "Fang Wu", "306-c1", "in_call", 212)
    f.alert("306", "306-c1", "a306-word", "sensitive_word", "critical", "agent", 150.0, 151.2,
            "Agent said 'guaranteed returns' (mis-selling)", {"phrase": "guaranteed returns"}, ago=62)
    f.cmd("306", {"op": "flag", "reason": "takeover", "by": "sup2@desk", "call_id": "306-c1"}, ago=50)
    return f


@pytest.fixture
def frozen(monkeypatch):
    """The apps' wall clock stands at NOW, clock times are shown in UTC, and the terminal's
    own settings (NO_COLOR, TEXTUAL_COLOR_SYSTEM, TEXTUAL_FILTERS; TEXTUAL_THEME in `pinned`) are
    Textual's defaults whatever the environment says."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(textual_constants, "COLOR_SYSTEM", "auto")
    monkeypatch.setattr(textual_constants, "FILTERS", "")

    class Clock:
        def time(self) -> float:
            return NOW

        def __getattr__(self, name):          # monotonic, perf_counter: the real ones
            return getattr(time, name)

    monkeypatch.setattr(tui_app, "time", Clock())
    tz = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if tz is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = tz
    time.tzset()


def pinned(app):
    """The default theme, whatever TEXTUAL_THEME says."""
    app.theme = "textual-dark"
    return app


def test_floor_board(snap_compare, frozen):
    app = pinned(SupervisorApp(live=floor().live(), user="sup1@desk", scope=f"{SITE}/{FLOOR}"))
    assert snap_compare(app, terminal_size=(110, 30))


def test_floor_board_in_chinese(snap_compare, frozen):
    app = pinned(SupervisorApp(live=floor().live(), user="sup1@desk", scope=f"{SITE}/{FLOOR}", lang="zh"))
    assert snap_compare(app, terminal_size=(110, 30))


def test_call_view(snap_compare, frozen):
    app = pinned(SupervisorApp(live=floor().live(), user="sup1@desk", scope=f"{SITE}/{FLOOR}"))

    async def open_call(pilot) -> None:
        await pilot.app.push_screen(CallScreen((SITE, FLOOR, "301")))

    assert snap_compare(app, terminal_size=(110, 32), run_before=open_call)


def test_agent_desk(snap_compare, frozen):
    """The newest cue selected: the agitation alert with its evidence."""
    app = pinned(AgentApp(None, SITE, FLOOR, "301", user="maria@desk301", live=floor().live()))
    assert snap_compare(app, terminal_size=(80, 24))


def test_agent_desk_suggestion_selected(snap_compare, frozen):
    """One down from the newest cue (the agitation alert and its evidence): the suggestion
    with its article in the detail pane."""
    app = pinned(AgentApp(None, SITE, FLOOR, "301", user="maria@desk301", live=floor().live()))
    assert snap_compare(app, press=["down"], terminal_size=(80, 24))
