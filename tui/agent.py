"""`callcue agent --line N`: the agent's desk client.

Subscribes to one line's topics only, shows its alerts and pushed suggestions newest
first (the selected one in full: suggestion body and article text, alert evidence),
and acknowledges alerts with `ack_alert`. Suggestions have no acknowledgement in
contract v1, so acknowledging one marks it seen on this desk only. After a call, `e`
opens the ticket the box filled (from the call's summary) and corrects a field with
`ticket_update` (ticket.py).
"""
from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from . import views
from .app import LiveApp, LiveFloor
from .i18n import describe, t
from .model import Alert, LineKey
from .mqtt import FeedClient, line_filters
from .widgets import Column, ListTable

CUE_COLUMNS = [Column("time", 8), Column("what", 14), Column("title", None, min_width=10), Column("state", 6)]


class AgentApp(LiveApp):
    TITLE = "callcue desk"
    CSS = """
    #top { height: 1; background: $panel; }
    #status { height: auto; max-height: 3; }
    #cues { height: 1fr; min-height: 4; }
    #detail-box { height: 1fr; border-top: solid $panel-lighten-2; }
    #keys { height: 1; background: $panel; color: $text-muted; }
    """

    BINDINGS = [
        Binding("ctrl+c", "quit", show=False, priority=True),
        Binding("q", "quit", show=False),      # not a priority: a correction may be typed with a q in it
        Binding("a", "ack", show=False),
        Binding("e", "ticket", show=False),
        Binding("L", "toggle_lang", show=False),
    ]

    def __init__(self, broker, site: str, floor: str, line: str, *, lang: str = "en",
                 user: str | None = None, live: LiveFloor | None = None, min_interval: float = 0.05) -> None:
        live = live or LiveFloor()
        client = FeedClient(broker, line_filters(site, floor, line), live.on_message, lambda c, d: self._wake(),
                            client_prefix="callcue-agent", cmd_role="agent") if broker is not None else None
        super().__init__(client, live, lang=lang, user=user, min_interval=min_interval)
        self.key: LineKey = (site, floor, line)
        self.seen: set[str] = set()
        self.corrected: dict[str, dict[str, tuple]] = {}     # call id -> field -> (value, due) sent from here
        self._bell_for: set[str] = set()
        self._started = False

    def compose(self) -> ComposeResult:
        yield Static(id="top")
        yield Static(id="status")
        self.cues = ListTable(CUE_COLUMNS, self._cells, id="cues", follow_top=True, show_header=False)
        yield self.cues
        with VerticalScroll(id="detail-box"):
            yield Static(id="detail")
        yield Static(id="keys")

    def on_mount(self) -> None:
        self.cues.focus()
        super().on_mount()

    # ---------------------------------------------------------------- data
    def _items(self) -> list[tuple[str, Any]]:
        line = self.live.model.line(self.key)
        call = line.current if line else None
        items: list[tuple[float, str, Any]] = []
        if call is not None:
            items += [(a.received, f"a:{a.id}", a) for a in call.alerts]
            items += [(float(s.get("_received") or 0.0), f"s:{s.get('id') or id(s)}", dict(s))
                      for s in call.suggestions]
        if line is not None and line.down_alert is not None and (call is None or line.down_alert not in call.alerts):
            a = line.down_alert
            items.append((a.received, f"a:{a.id}", a))
        items.sort(key=lambda x: -x[0])
        return [(k, v) for _, k, v in items]

    def _cells(self, item) -> list:
        if isinstance(item, Alert):
            done = item.acked_by is not None
            return [views.clock(item.received),
                    Text("⚠ " + t(item.kind, self.lang), style="dim" if done else views.SEV_FG.get(item.severity, "")),
                    Text(describe(item.kind, item.message, item.speaker, item.evidence, self.lang),
                         style="dim" if done else ""),
                    Text("✓" if done else "●", style="green" if done else views.SEV_FG.get(item.severity, ""))]
        sid = str(item.get("id") or "")
        seen = sid in self.seen
        return [views.clock(item.get("_received")), Text("★ " + str(item.get("kind") or t("suggestions", self.lang)),
                                                         style="dim" if seen else "bold cyan"),
                Text(str(item.get("title") or ""), style="dim" if seen else "bold"),
                Text(t("seen", self.lang) if seen else "", style="dim")]

    def redraw(self, now: float) -> None:
        conn, detail, changed = self.connection(now)
        self.query_one("#top", Static).update(views.header(
            self.lang, t("agent_title", self.lang), f"{self.key[0]}/{self.key[1]} {t('col_line', self.lang)} {self.key[2]}",
            conn, detail, changed, now, self.user))
        model = self.live.model
        line = model.line(self.key)
        status = Text()
        if line is not None:
            row = model.row(line, now)
            status = Text(" ")
            status.append(line.agent or "-", style="bold")
            status.append(" · ")
            status.append_text(views.status_text(row.status, self.lang))
            if row.duration is not None:
                status.append(" " + views.fmt_dur(row.duration))
            call = line.current
            flow = views.flow_text(call.flow if call else None, self.lang)
            if flow is not None:
                status.append("\n")
                status.append_text(flow)
            done = self._ticket_call(line)
            if done is not None:
                tk = done.summary["ticket"]
                status.append("\n")
                status.append(f"✎ {t('ticket', self.lang)}: {tk.get('title') or tk.get('template')}", style="bold cyan")
                missing = tk.get("missing_required") or []
                if missing:
                    status.append(f"  ({len(missing)} missing)", style="yellow")
                status.append("  e", style="bold")
        self.query_one("#status", Static).update(status)
        items = self._items()
        if self._started:
            fresh = [v for k, v in items if isinstance(v, Alert) and v.id not in self._bell_for
                     and v.acked_by is None and v.severity in ("warning", "critical")]
            if fresh:
                self.bell()     # the agent is looking at the customer's file, not at this window
        self._bell_for = {v.id for _, v in items if isinstance(v, Alert)}
        self._started = True
        self.cues.empty_text = t("agent_waiting", self.lang, line=self.key[2])
        self.cues.set_items(items)
        self._show_detail()
        self.query_one("#keys", Static).update(Text(" " + t("keys_agent", self.lang)))

    def _show_detail(self) -> None:
        item = self.cues.cursor_item
        if item is None:
            text = Text("")
        elif isinstance(item, Alert):
            text = Text(describe(item.kind, item.message, item.speaker, item.evidence, self.lang) + "\n",
                        style="bold " + views.SEV_FG.get(item.severity, ""))
            text.append(f"{views.fmt_dur(item.t_start)} - {views.fmt_dur(item.t_end)}  ", style="dim")
            text.append(json.dumps(item.evidence, ensure_ascii=False), style="dim")
            if item.acked_by:
                text.append("\n" + t("acked_by", self.lang, by=item.acked_by.split("@")[0]), style="green")
        else:
            text = views.suggestion_text(item, self.lang, seen=str(item.get("id") or "") in self.seen)
        self.query_one("#detail", Static).update(text)

    def on_list_table_highlighted(self, event: ListTable.Highlighted) -> None:
        with self.live.lock:
            self._show_detail()

    def on_list_table_selected(self, event: ListTable.Selected) -> None:
        self.action_ack()

    # ---------------------------------------------------------------- actions
    def action_ack(self) -> None:
        item = self.cues.cursor_item
        if item is None:
            self.notify(t("nothing_to_ack", self.lang), severity="warning")
        elif isinstance(item, Alert):
            if item.acked_by is None:
                if self.send_cmd(item.key, {"op": "ack_alert", "alert_id": item.id, "by": self.user},
                                 self.mark_acked(item)):
                    self.notify(t("ack_sent", self.lang, n=1, line=self.key[2]))
            else:
                self.notify(t("nothing_to_ack", self.lang), severity="warning")
        else:
            self.seen.add(str(item.get("id") or ""))
            self.refresh_now()

    @staticmethod
    def _ticket_call(line):
        """The newest call of the line whose summary carries a ticket (not one in progress)."""
        if line is None:
            return None
        live = line.in_call()
        for call in reversed(list(line.calls.values())):
            if call is not live and isinstance(call.summary, dict) and isinstance(call.summary.get("ticket"), dict):
                return call
        return None

    def action_ticket(self) -> None:
        from .ticket import TicketScreen
        with self.live.lock:
            call = self._ticket_call(self.live.model.line(self.key))
            ticket = dict(call.summary["ticket"]) if call is not None else None
            call_id = call.call_id if call is not None else None
        if ticket is None:
            self.notify(t("ticket_none", self.lang), severity="warning")
            return

        def send(field: str, value, due) -> bool:
            body = {"op": "ticket_update", "call_id": call_id, "field": field, "value": value, "by": self.user}
            if due is not None:
                body["due"] = due
            return self.send_cmd(self.key, body)

        self.push_screen(TicketScreen(call_id, ticket, send, self.corrected.setdefault(call_id, {})))

    def action_toggle_lang(self) -> None:
        self.lang = "zh" if self.lang == "en" else "en"
        self.cues.invalidate()
        self.refresh_now()
