"""`callcue tui`: the supervisor's floor board, call view and alert feed (Textual).

Threads: paho's network thread applies each message to the FloorModel under a lock
and wakes the UI; the UI redraws at most every `min_interval` seconds (so a burst of
messages is drawn once) and once a second for clocks and fading moods. Nothing queues
between the two: the model is the only shared state, and it is bounded.
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, Hashable

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from . import views
from .i18n import HELP, LANGS, t
from .model import Alert, FloorModel, LineKey
from .mqtt import FeedClient, default_user
from .widgets import Column, ListTable

Probe = Callable[[str, bytes], Hashable | None]
Painted = Callable[[list[Hashable], float], None]


class LiveFloor:
    """The FloorModel plus its lock; `on_message` runs on paho's thread."""

    PENDING_MAX = 100_000    # probe keys waiting for a paint (benchmark only)

    def __init__(self, probe: Probe | None = None) -> None:
        self.model = FloorModel()
        self.lock = threading.Lock()
        self.probe = probe
        self.pending: list[Hashable] = []
        self.applied = 0
        self.listener: Callable[[], None] | None = None

    def on_message(self, topic: str, payload: bytes) -> None:
        with self.lock:
            self.model.apply(topic, payload, time.time())
            self.applied += 1
            if self.probe is not None and len(self.pending) < self.PENDING_MAX:
                key = self.probe(topic, payload)
                if key is not None:
                    self.pending.append(key)
        listener = self.listener
        if listener is not None:
            listener()

    def take_pending(self) -> list[Hashable]:
        with self.lock:
            out, self.pending = self.pending, []
        return out


BOARD_COLUMNS = [
    Column("line", 9), Column("agent", 14), Column("state", 8), Column("dur", 7, justify="right"),
    Column("speaking", 8), Column("mood", 5), Column("alerts", 6), Column("last", None, min_width=6),
]
FEED_COLUMNS = [
    Column("time", 8), Column("line", 9), Column("sev", 4), Column("kind", 12),
    Column("message", None, min_width=10), Column("ack", 12),
]


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; max-width: 100; height: auto; max-height: 100%;
                                  border: round $accent; padding: 0 1; background: $surface; }
    """

    def __init__(self, lang: str) -> None:
        super().__init__()
        self.lang = lang
        self._key_taken = False

    def compose(self) -> ComposeResult:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold cyan", no_wrap=True)
        grid.add_column()
        for key, what in HELP[self.lang]:
            grid.add_row(key, what)
        with VerticalScroll():
            yield Static(Text(t("help_title", self.lang) + "  (↑↓ scroll, any other key closes)", style="bold")
                         if self.lang == "en" else Text(t("help_title", self.lang) + "  (↑↓ 滚动, 其他键关闭)",
                                                        style="bold"))
            yield Static(grid)

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def on_key(self, event) -> None:
        if event.key in ("up", "down", "pageup", "pagedown", "home", "end"):
            return              # the scroll view's own bindings move it
        event.stop()
        if self._key_taken:
            return              # keys typed before the screen is gone must not pop a second screen
        self._key_taken = True
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Static { width: 70; height: auto; border: heavy red; padding: 1 2; background: $surface; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question
        self._key_taken = False

    def compose(self) -> ComposeResult:
        yield Static(Text(self.question, style="bold"))

    def on_key(self, event) -> None:
        event.stop()
        if self._key_taken:
            return              # only the first key answers; later ones must not pop another screen
        self._key_taken = True
        self.dismiss(event.key in ("y", "Y"))


class CallScreen(Screen):
    """The selected line: who, how long, timeline, flow, transcript, alerts, suggestions."""

    DEFAULT_CSS = """
    CallScreen #top { height: 1; background: $panel; }
    CallScreen #info { height: 2; }
    CallScreen #timeline { height: 5; }
    CallScreen #flow { height: auto; max-height: 2; }
    CallScreen #body { height: 1fr; }
    CallScreen #transcript-box { width: 3fr; border-right: solid $panel-lighten-2; scrollbar-size-vertical: 1; }
    CallScreen #side-box { width: 2fr; padding-left: 1; scrollbar-size-vertical: 1; }
    CallScreen #keys { height: 1; background: $panel; color: $text-muted; }
    """

    BINDINGS = [
        Binding("escape,backspace", "back", show=False),
        Binding("left_square_bracket", "step(-1)", show=False),
        Binding("right_square_bracket", "step(1)", show=False),
    ]

    def __init__(self, key: LineKey) -> None:
        super().__init__()
        self.key = key
        self.rev = -1

    def compose(self) -> ComposeResult:
        yield Static(id="top")
        yield Static(id="info")
        yield Static(id="timeline")
        yield Static(id="flow")
        with Horizontal(id="body"):
            with VerticalScroll(id="transcript-box"):
                yield Static(id="transcript")
            with VerticalScroll(id="side-box"):
                yield Static(id="side")
        yield Static(id="keys")

    def on_mount(self) -> None:
        self.query_one("#transcript-box").focus()
        self.app.refresh_now()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_step(self, step: int) -> None:
        keys = [k for k, _ in self.app.board._items]
        if self.key in keys and keys:
            self.key = keys[(keys.index(self.key) + step) % len(keys)]
            self.app.board.move_to(self.key)
            self.rev = -1
            self.app.refresh_now()

    def show(self, app: "SupervisorApp", now: float) -> None:
        """Redraw from the model (called by the app under the model lock)."""
        model = app.live.model
        self.query_one("#top", Static).update(app.header_text(now))
        self.query_one("#keys", Static).update(Text(" " + t("keys_call", app.lang)))
        line = model.line(self.key)
        if line is None:
            self.query_one("#info", Static).update(Text(t("no_call", app.lang)))
            return
        row = model.row(line, now)
        call = line.current
        self.query_one("#info", Static).update(views.call_info(line, row, call, app.lang, now))
        width = self.query_one("#timeline").size.width or app.size.width
        self.query_one("#timeline", Static).update(views.timeline(call, width, app.lang, now))
        flow = views.flow_text(call.flow if call else None, app.lang)
        fw = self.query_one("#flow", Static)
        fw.display = flow is not None
        if flow is not None:
            fw.update(flow)
        rev = (self.key, line.rev, app.lang)
        if rev != self.rev:
            self.rev = rev
            box = self.query_one("#transcript-box", VerticalScroll)
            at_end = box.scroll_y >= box.max_scroll_y - 1
            self.query_one("#transcript", Static).update(views.transcript_text(call, app.lang))
            self.query_one("#side", Static).update(views.side_text(call, app.lang))
            if at_end:
                box.call_after_refresh(box.scroll_end, animate=False)


class LiveApp(App):
    """An app drawn from a LiveFloor fed by a FeedClient: wakes on messages, redraws at most
    every `min_interval` s and once a second. Subclasses implement `redraw(now)`."""

    def __init__(self, client: FeedClient | None, live: LiveFloor, *, lang: str, user: str | None,
                 on_painted: Painted | None = None, min_interval: float = 0.05) -> None:
        super().__init__()
        if lang not in LANGS:
            raise ValueError(f"language {lang!r} is not one of {', '.join(LANGS)}")
        self.lang = lang
        self.user = user or default_user()
        self.live = live
        self.live.listener = self._wake
        self.client = client
        if client is not None:
            client.on_refused = self._cmd_refused
        self.on_painted = on_painted
        self.min_interval = min_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_pending = False
        self._last_refresh = 0.0
        self.refreshes = 0

    def on_mount(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.set_interval(1.0, self.refresh_now)
        if self.client is not None:
            self.client.start()
        self.refresh_now()

    def on_unmount(self) -> None:
        self.live.listener = None
        if self.client is not None:
            self.client.stop()

    def _wake(self) -> None:
        """From any thread: a redraw is due (at most one is scheduled at a time)."""
        if self._wake_pending or self._loop is None:
            return
        self._wake_pending = True
        # post_message is thread-safe and runs the handler in the app's own context
        self.post_message(self.Wake())

    class Wake(Message):
        """New messages were applied to the model."""

    def on_live_app_wake(self, _: "LiveApp.Wake") -> None:
        delay = self._last_refresh + self.min_interval - time.monotonic()
        if delay > 0:
            self.set_timer(delay, self.refresh_now)
        else:
            self.refresh_now()

    def refresh_now(self) -> None:
        self._wake_pending = False
        self._last_refresh = time.monotonic()
        self.refreshes += 1
        keys = self.live.take_pending() if self.on_painted else []
        with self.live.lock:
            self.redraw(time.time())
        if keys and self.on_painted is not None:
            self.call_after_refresh(self._painted, keys)

    def _painted(self, keys: list[Hashable]) -> None:
        if self.on_painted is not None:
            self.on_painted(keys, time.perf_counter())

    def redraw(self, now: float) -> None:
        raise NotImplementedError

    def connection(self, now: float) -> tuple[str, str, float]:
        """(connected | connecting | disconnected, detail, since when)."""
        c = self.client
        if c is None:
            return "connected", "", now
        first_try = c.connects == 0 and c.failures == 0
        state = "connected" if c.connected else "connecting" if first_try or c.status_detail == "subscribing" \
            else "disconnected"
        return state, c.status_detail, c.changed_at

    def send_cmd(self, key: LineKey, body: dict[str, Any], on_acked: Callable[[], None] | None = None) -> bool:
        if self.client is None or not self.client.publish_cmd(key[0], key[1], key[2], body, on_acked):
            self.notify(t("not_connected", self.lang), severity="error")
            return False
        return True

    def _cmd_refused(self, reason: str) -> None:
        """From paho's thread: the broker's ACL refused a command (this user may not send it)."""
        self.notify(t("cmd_refused", self.lang, reason=reason, user=self.client.broker.username or "-"),
                    severity="error")

    def mark_acked(self, alert: Alert) -> Callable[[], None]:
        def done() -> None:
            # our own ack_alert echo on the cmd topic normally does this; the PUBACK covers
            # clients that may publish commands but not read them back
            with self.live.lock:
                if alert.acked_by is None:
                    alert.acked_by = self.user
                    self.live.model.touch(alert.key)
            self._wake()
        return done


class SupervisorApp(LiveApp):
    """The floor board. `broker` None: no MQTT (tests feed `live` directly)."""

    TITLE = "callcue"
    CSS = """
    #top { height: 1; background: $panel; }
    #board { height: 1fr; min-height: 5; }
    #stats { height: auto; max-height: 2; background: $boost; }
    #feed-title { height: 1; color: $text-muted; }
    #feed { height: 8; }
    #keys { height: 1; background: $panel; color: $text-muted; }
    """

    BINDINGS = [
        Binding("q,ctrl+c", "quit", show=False, priority=True),
        Binding("question_mark", "help", show=False),
        Binding("L", "toggle_lang", show=False),
        Binding("a", "ack", show=False),
        Binding("c", "flag('coaching')", show=False),
        Binding("t", "flag('takeover')", show=False),
        Binding("h", "history", show=False),
    ]

    def __init__(self, broker=None, filters: list[str] | None = None, *, lang: str = "en",
                 user: str | None = None, scope: str = "", live: LiveFloor | None = None,
                 on_painted: Painted | None = None, min_interval: float = 0.05) -> None:
        live = live or LiveFloor()
        client = FeedClient(broker, filters or [], live.on_message, lambda c, d: self._wake()) \
            if broker is not None else None
        super().__init__(client, live, lang=lang, user=user, on_painted=on_painted, min_interval=min_interval)
        self.scope = scope
        self._drawn_version = -1
        self._multi = False

    # ---------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield Static(id="top")
        self.board = ListTable(BOARD_COLUMNS, self._board_cells, id="board",
                               titles=lambda: [t(k, self.lang) for k in
                                               ("col_line", "col_agent", "col_state", "col_dur", "col_speaking",
                                                "col_mood", "col_alerts", "col_last")])
        yield self.board
        yield Static(id="stats")
        yield Static(id="feed-title")
        self.feed = ListTable(FEED_COLUMNS, self._feed_cells, id="feed",
                              titles=lambda: [t(k, self.lang) for k in
                                              ("col_time", "col_line", "col_sev", "col_kind", "col_msg", "col_ack")])
        yield self.feed
        yield Static(id="keys")

    def on_mount(self) -> None:
        self.board.focus()
        super().on_mount()

    def header_text(self, now: float) -> Text:
        conn, detail, changed = self.connection(now)
        return views.header(self.lang, t("title", self.lang), self.scope or t("all_floors", self.lang),
                            conn, detail, changed, now, self.user)

    def redraw(self, now: float) -> None:
        """Called with the model lock held."""
        model = self.live.model
        changed = model.version != self._drawn_version
        self._drawn_version = model.version
        rows = model.rows(now)
        stats = model.stats(now, rows)
        self._multi = len(stats.floors) > 1
        self.board.empty_text = t("no_lines", self.lang, topic=", ".join(self.client.filters) if self.client else "-")
        self.board.set_items([(r.key, r) for r in rows])
        if changed:
            self.feed.set_items([(a.id, a) for a in model.feed()])
        else:
            self.feed.invalidate()
        self.query_one("#top", Static).update(self.header_text(now))
        self.query_one("#stats", Static).update(views.stats_text(stats, self.lang, model.rejected))
        self.query_one("#feed-title", Static).update(Text(" " + t("feed", self.lang), style="bold"))
        self.query_one("#keys", Static).update(Text(" " + t("keys_board", self.lang)))
        if isinstance(self.screen, CallScreen):
            self.screen.show(self, now)

    def _board_cells(self, row) -> list:
        return views.board_cells(row, self.lang, self._multi)

    def _feed_cells(self, alert: Alert) -> list:
        return views.feed_cells(alert, self.lang, self._multi)

    # ---------------------------------------------------------------- navigation
    def on_list_table_selected(self, event: ListTable.Selected) -> None:
        key = event.key if event.table is self.board else self.feed.cursor_item.key
        self.push_screen(CallScreen(key))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.lang))

    def action_toggle_lang(self) -> None:
        self.lang = "zh" if self.lang == "en" else "en"
        self.board.invalidate()
        self.feed.invalidate()
        self._drawn_version = -1
        if isinstance(self.screen, CallScreen):
            self.screen.rev = -1
        self.refresh_now()

    def selected_line(self) -> LineKey | None:
        if isinstance(self.screen, CallScreen):
            return self.screen.key
        if self.focused is self.feed and self.feed.cursor_item is not None:
            return self.feed.cursor_item.key
        return self.board.cursor_key

    # ---------------------------------------------------------------- actions
    def action_ack(self) -> None:
        with self.live.lock:
            if not isinstance(self.screen, CallScreen) and self.focused is self.feed:
                a = self.feed.cursor_item
                targets = [a] if a is not None and a.acked_by is None else []
                key = a.key if a is not None else None
            else:
                key = self.selected_line()
                line = self.live.model.line(key) if key else None
                targets = []
                if line is not None:
                    call = line.current
                    targets = call.open_alerts() if call else []
                    if line.down_alert is not None and line.down_alert.acked_by is None \
                            and line.down_alert not in targets:
                        targets.append(line.down_alert)
        if not targets or key is None:
            self.notify(t("nothing_to_ack", self.lang), severity="warning")
            return
        sent = 0
        for a in targets:
            if not self.send_cmd(a.key, {"op": "ack_alert", "alert_id": a.id, "by": self.user}, self.mark_acked(a)):
                break
            sent += 1
        if sent:
            self.notify(t("ack_sent", self.lang, n=sent, line=key[2]))

    def action_history(self) -> None:
        """The calls of the last day on the selected line (history.py)."""
        from .history import PastCallsScreen
        if not isinstance(self.screen, (CallScreen,)) and self.screen is not self.default_screen:
            return
        key = self.selected_line()
        if key is None:
            self.notify(t("no_call", self.lang), severity="warning")
            return
        with self.live.lock:
            line = self.live.model.line(key)
            agent = line.agent if line is not None else None
        self.push_screen(PastCallsScreen(key, agent or None))

    def action_flag(self, reason: str) -> None:
        key = self.selected_line()
        with self.live.lock:
            line = self.live.model.line(key) if key else None
            # take-over only makes sense while the call is on; coaching also after it ended
            call = (line.in_call() if reason == "takeover" else line.in_call() or line.current) if line else None
            call_id = call.call_id if call else None
        if key is None or call_id is None:
            self.notify(t("no_call_to_flag", self.lang, line=key[2] if key else "-"), severity="warning")
            return
        body = {"op": "flag", "reason": reason, "by": self.user, "call_id": call_id}

        def send(ok: bool | None = True) -> None:
            if ok and self.send_cmd(key, body):
                self.notify(t("flag_sent", self.lang, line=key[2], reason=t(reason, self.lang)),
                            severity="warning" if reason == "takeover" else "information")

        if reason == "takeover":
            self.push_screen(ConfirmScreen(t("confirm_takeover", self.lang, line=key[2], call=call_id)), send)
        else:
            send()
