"""Look back at past calls from the supervisor TUI: the calls of the last day of a line
or of an agent, and any one call's whole timeline (IVR context, turns, alerts,
suggestions, flow steps, ticket, scorecard), drawn as `callcue calls show` prints it.

Still only MQTT: the TUI asks the box that serves the line (known from its retained
health) on `box/{box}/query` with an MQTT 5 response topic and correlation data, and the
box answers from its call store (contract: "Look back at a call"). For an agent, every
box of the floor is asked (an agent may have worked several lines).
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from callcue.daemon.timeline import render

from .i18n import t
from .model import LineKey
from .views import fmt_dur
from .widgets import Column, ListTable

DAY_S = 24 * 3600
PAST_COLUMNS = [Column("time", 11), Column("line", 8), Column("agent", 14), Column("dur", 6, justify="right"),
                Column("type", 14), Column("score", 6, justify="right"), Column("alerts", 6, justify="right"),
                Column("call", None, min_width=8)]


class Answer(Message):
    """A box's answer (or None: no answer in time), posted from paho's thread."""

    def __init__(self, box: str, answer: dict[str, Any] | None, what: str) -> None:
        super().__init__()
        self.box = box
        self.answer = answer
        self.what = what


def boxes_for(model, key: LineKey, agent_mode: bool) -> list[str]:
    """The box serving the line, or (agent mode) every box of its floor."""
    site, floor, lid = key
    if agent_mode:
        return sorted(b for (s, f, b), info in model.boxes.items() if (s, f) == (site, floor)
                      and info.get("status") != "offline")
    line = model.line(key)
    if line is not None and line.box:
        return [line.box]
    return sorted(b for (s, f, b), info in model.boxes.items() if (s, f) == (site, floor) and lid in info["lines"])


def _row_cells(row: dict[str, Any]) -> list:
    try:
        started = datetime.fromisoformat(row["started"]).astimezone().strftime("%d %H:%M:%S")
    except (TypeError, ValueError, KeyError):
        started = "?"
    score = row.get("score")
    return [started, str(row.get("line") or ""), str(row.get("agent") or "-"), fmt_dur(row.get("duration_s")),
            str(row.get("call_type") or "-"),
            Text("-" if score is None else f"{score:g}", style="" if row.get("passed") is not False else "yellow"),
            str(row.get("alerts") or 0), str(row.get("call_id"))]


class PastCallsScreen(Screen):
    """The calls of the last day on one line, or of the line's agent (g switches)."""

    DEFAULT_CSS = """
    PastCallsScreen #top { height: 1; background: $panel; }
    PastCallsScreen #what { height: 1; }
    PastCallsScreen #calls { height: 1fr; }
    PastCallsScreen #keys { height: 1; background: $panel; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape,backspace", "back", show=False),
        Binding("g", "toggle_agent", show=False),
        Binding("r", "ask", show=False),
    ]

    def __init__(self, key: LineKey, agent: str | None) -> None:
        super().__init__()
        self.key = key
        self.agent = agent
        self.agent_mode = False
        self.rows: dict[str, dict[str, Any]] = {}
        self.waiting: set[str] = set()
        self.errors: list[str] = []
        self.asked_at = 0.0

    def compose(self) -> ComposeResult:
        yield Static(id="top")
        yield Static(id="what")
        self.table = ListTable(PAST_COLUMNS, _row_cells, id="calls",
                               titles=lambda: [t(k, self.app.lang) for k in
                                               ("col_time", "col_line", "col_agent", "col_dur", "col_type",
                                                "score", "col_alerts", "col_call")])
        yield self.table
        yield Static(Text(" " + t("keys_past", self.app.lang)), id="keys")

    def on_mount(self) -> None:
        self.table.focus()
        self.query_one("#top", Static).update(self.app.header_text(time.time()))
        self.action_ask()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_toggle_agent(self) -> None:
        if not self.agent:
            self.app.notify(t("no_agent", self.app.lang), severity="warning")
            return
        self.agent_mode = not self.agent_mode
        self.action_ask()

    def action_ask(self) -> None:
        app = self.app
        with app.live.lock:
            boxes = boxes_for(app.live.model, self.key, self.agent_mode)
        site, floor, lid = self.key
        since = (datetime.now(timezone.utc) - timedelta(seconds=DAY_S)).isoformat(timespec="seconds")
        body = {"op": "calls", "since": since, "limit": 500}
        body.update({"agent": self.agent} if self.agent_mode else {"line": lid})
        self.rows.clear()
        self.errors.clear()
        self.waiting = set()
        self.table.set_items([])
        if not boxes:
            self.errors.append(t("no_box", app.lang, line=lid))
        for box in boxes:
            if app.client is not None and app.client.request(
                    site, floor, box, body, lambda ans, b=box: self.post_message(Answer(b, ans, "calls"))):
                self.waiting.add(box)
            else:
                self.errors.append(t("not_connected", app.lang))
                break
        self.asked_at = time.monotonic()
        self._show()

    def _show(self) -> None:
        lang = self.app.lang
        who = t("past_agent", lang, agent=self.agent) if self.agent_mode else t("past_line", lang, line=self.key[2])
        text = Text(" " + who, style="bold")
        if self.waiting:
            text.append("  " + t("asking", lang, boxes=", ".join(sorted(self.waiting))), style="yellow")
        else:
            text.append("  " + t("past_n", lang, n=len(self.rows)), style="dim")
        for e in self.errors:
            text.append("  " + e, style="red")
        self.query_one("#what", Static).update(text)
        rows = sorted(self.rows.values(), key=lambda r: str(r.get("started") or ""), reverse=True)
        self.table.empty_text = "" if self.waiting else t("past_none", lang)
        self.table.set_items([(r["call_id"], r) for r in rows])

    def on_answer(self, msg: Answer) -> None:
        if msg.what == "calls":
            self.waiting.discard(msg.box)
            if msg.answer is None:
                self.errors.append(t("no_answer", self.app.lang, box=msg.box))
            elif not msg.answer.get("ok"):
                self.errors.append(f"{msg.box}: {msg.answer.get('error')}")
            else:
                for r in msg.answer.get("calls") or []:
                    if isinstance(r, dict) and r.get("call_id"):
                        self.rows[str(r["call_id"])] = {**r, "_box": msg.box}
            self._show()
        elif msg.what == "call":
            if msg.answer is None or not msg.answer.get("ok"):
                why = t("no_answer", self.app.lang, box=msg.box) if msg.answer is None else msg.answer.get("error")
                self.app.notify(str(why), severity="error")
            else:
                self.app.push_screen(TimelineScreen(msg.answer["timeline"]))

    def on_list_table_selected(self, event: ListTable.Selected) -> None:
        event.stop()            # the board's own handler must not see it
        row = self.rows.get(str(event.key))
        if row is None:
            return
        site, floor, _ = self.key
        box = row["_box"]
        client = self.app.client
        if client is None or not client.request(site, floor, box, {"op": "call", "call_id": row["call_id"]},
                                                lambda ans: self.post_message(Answer(box, ans, "call"))):
            self.app.notify(t("not_connected", self.app.lang), severity="error")


class TimelineScreen(Screen):
    """One past call's whole timeline, as `callcue calls show` prints it."""

    DEFAULT_CSS = """
    TimelineScreen #top { height: 1; background: $panel; }
    TimelineScreen #tl-box { height: 1fr; }
    TimelineScreen #keys { height: 1; background: $panel; color: $text-muted; }
    """
    BINDINGS = [Binding("escape,backspace", "back", show=False)]

    def __init__(self, tl: dict[str, Any]) -> None:
        super().__init__()
        self.tl = tl

    def compose(self) -> ComposeResult:
        yield Static(id="top")
        with VerticalScroll(id="tl-box"):
            yield Static(Group(*render(self.tl, self.app.lang)), id="timeline-text")
        yield Static(Text(" " + t("keys_timeline", self.app.lang)), id="keys")

    def on_mount(self) -> None:
        self.query_one("#top", Static).update(self.app.header_text(time.time()))
        self.query_one("#tl-box").focus()

    def action_back(self) -> None:
        self.app.pop_screen()
