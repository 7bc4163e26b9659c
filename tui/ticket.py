"""The desk's ticket after the call: every field the box filled, with its evidence, and
a keyboard flow to correct one (`ticket_update`, contract: agent role).

    e               the last call's ticket
    ↑↓ Enter        pick a field, correct it
    enum fields     ↑↓ through the options ("not stated" clears the field), Enter sends
    other fields    type the value (empty: the call does not state it), Enter sends;
                    a promise also takes its due date (Tab to it)
    Esc             back

The screen builds itself from the published ticket alone (its `fields` and `form`); a
value is checked here first (aftercall/corrections.py: type, option, date) and again by
the box against the template before it is stored.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from callcue.daemon.aftercall.corrections import CorrectionError, check_form_value

from .i18n import t
from .widgets import Column, ListTable

FIELD_COLUMNS = [Column("field", 22), Column("value", None, min_width=12), Column("state", 12)]
NOT_STATED = "\0none"


def shown(v: Any) -> str:
    return "-" if v is None else str(v)


class TicketScreen(Screen):
    """One call's ticket, field by field."""

    DEFAULT_CSS = """
    TicketScreen #top { height: 1; background: $panel; }
    TicketScreen #fields { height: 1fr; min-height: 4; }
    TicketScreen #evidence { height: auto; max-height: 6; border-top: solid $panel-lighten-2; }
    TicketScreen #keys { height: 1; background: $panel; color: $text-muted; }
    """
    BINDINGS = [Binding("escape,backspace", "back", show=False)]

    def __init__(self, call_id: str, ticket: dict[str, Any],
                 send: Callable[[str, Any, str | None], bool], corrected: dict[str, Any]) -> None:
        super().__init__()
        self.call_id = call_id
        self.ticket = ticket
        self.send = send                 # (field, value, due) -> sent
        self.corrected = corrected       # field -> (value, due), this desk's corrections of this call

    def compose(self) -> ComposeResult:
        lang = self.app.lang
        yield Static(Text(f" {t('ticket', lang)}: {self.ticket.get('title') or self.ticket.get('template')}"
                          f"  ·  {self.call_id}", style="bold"), id="top")
        self.table = ListTable(FIELD_COLUMNS, self._cells, id="fields", show_header=False)
        yield self.table
        yield Static(id="evidence")
        yield Static(Text(" " + t("keys_ticket", lang)), id="keys")

    def on_mount(self) -> None:
        self.table.focus()
        self._fill()

    def _form(self, name: str) -> dict[str, Any]:
        return (self.ticket.get("form") or {}).get(name) or {"title": name, "type": "text"}

    def _fill(self) -> None:
        names = list((self.ticket.get("fields") or {}).keys())
        self.table.set_items([(n, n) for n in names])
        self._evidence()

    def _cells(self, name: str) -> list:
        lang = self.app.lang
        info = self._form(name)
        f = (self.ticket.get("fields") or {}).get(name) or {}
        value, due = f.get("value"), f.get("due")
        state = Text("")
        if name in self.corrected:
            value, due = self.corrected[name]
            state = Text("✎ " + t("corrected", lang), style="yellow")
        elif name in (self.ticket.get("missing_required") or []):
            state = Text("required", style="red")
        text = Text(shown(value) if value is not None else t("empty_value", lang),
                    style="" if value is not None else "dim")
        if due:
            text.append(f"  ({due})", style="dim")
        title = Text(str(info.get("title") or name) + (" *" if info.get("required") else ""), style="bold")
        return [title, text, state]

    def _evidence(self) -> None:
        name = self.table.cursor_item
        f = (self.ticket.get("fields") or {}).get(name) or {} if name else {}
        ev = Text()
        if f.get("evidence"):
            ev.append(str(f["evidence"]), style="dim")
            if f.get("confidence") is not None:
                ev.append(f"  ({f['confidence']:.2f})", style="dim")
        self.query_one("#evidence", Static).update(ev)

    def on_list_table_highlighted(self, event: ListTable.Highlighted) -> None:
        event.stop()
        self._evidence()

    def on_list_table_selected(self, event: ListTable.Selected) -> None:
        event.stop()
        name = str(event.key)
        info = self._form(name)
        f = (self.ticket.get("fields") or {}).get(name) or {}
        value, due = self.corrected.get(name, (f.get("value"), f.get("due")))

        def done(result: tuple[Any, str | None] | None) -> None:
            if result is None:
                return
            v, d = result
            if self.send(name, v, d):
                self.corrected[name] = (v, d)
                self.table.invalidate()
                self.app.notify(t("correction_sent", self.app.lang, field=info.get("title") or name))

        self.app.push_screen(EditScreen(name, info, value, due), done)

    def action_back(self) -> None:
        self.app.pop_screen()


class EditScreen(ModalScreen):
    """One field's new value: an option list for enums, a text box otherwise."""

    DEFAULT_CSS = """
    EditScreen { align: center middle; }
    EditScreen > Vertical { width: 70; height: auto; max-height: 90%; border: round $accent; padding: 0 1;
                            background: $surface; }
    EditScreen OptionList { height: auto; max-height: 14; }
    EditScreen #error { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", show=False)]

    def __init__(self, name: str, info: dict[str, Any], value: Any, due: str | None) -> None:
        super().__init__()
        self.field = name
        self.info = info
        self.value = value
        self.due = due

    def compose(self) -> ComposeResult:
        lang = self.app.lang
        with Vertical():
            yield Static(Text(f"{self.info.get('title') or self.field} ({self.info.get('type')})", style="bold"))
            if self.info.get("type") == "enum":
                opts = [Option(Text(f"{o.get('title') or o.get('value')}  ({o.get('value')})"), id=str(o.get("value")))
                        for o in self.info.get("options") or []]
                opts.append(Option(t("empty_value", lang), id=NOT_STATED))
                yield OptionList(*opts, id="options")
                yield Static(Text(t("keys_pick", lang), style="dim"))
            else:
                yield Input(value="" if self.value is None else str(self.value), id="value")
                if self.info.get("promise"):
                    yield Input(value=self.due or "", placeholder=t("due", lang), id="due")
                yield Static(Text(t("keys_edit", lang), style="dim"))
            yield Static(id="error")

    def on_mount(self) -> None:
        if self.info.get("type") == "enum":
            ol = self.query_one("#options", OptionList)
            ids = [str(o.get("value")) for o in self.info.get("options") or []]
            if self.value in ids:
                ol.highlighted = ids.index(self.value)
            ol.focus()
        else:
            self.query_one("#value", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _error(self, why: str) -> None:
        self.query_one("#error", Static).update(Text(why))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        oid = event.option.id
        self.dismiss((None if oid == NOT_STATED else oid, None))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        raw = self.query_one("#value", Input).value.strip()
        try:
            value = check_form_value(self.field, self.info, raw) if raw else None
        except CorrectionError as exc:
            self._error(str(exc))
            return
        due = None
        if self.info.get("promise"):
            due = self.query_one("#due", Input).value.strip() or None
            if due is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", due):
                self._error(t("due", self.app.lang))
                return
        self.dismiss((value, due))
