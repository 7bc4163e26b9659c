"""A lean list table for the board and the feed.

Textual's DataTable re-measures and re-styles cells on every update; the board changes
several times a second at 100 lines, so this table keeps plain item objects, renders
only the rows on screen (line API) and caches them until the items change. The cursor
follows an item's key, so re-sorting by risk never moves the selection to another line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget


@dataclass(frozen=True)
class Column:
    key: str
    width: int | None       # None: takes the remaining width (at least min_width)
    min_width: int = 6
    justify: str = "left"


CellRenderer = Callable[[Any], Sequence[Text | str]]


class ListTable(Widget, can_focus=True):
    """Header row (optional) + one row per item. `set_items([(key, item), ...])`; `render_cells(item)`
    returns one Text (or str) per column and is called only for rows on screen."""

    BINDINGS = [
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "edge(-1)", show=False),
        Binding("end", "edge(1)", show=False),
        Binding("enter", "select", show=False),
    ]

    DEFAULT_CSS = """
    ListTable { height: 1fr; }
    """

    class Highlighted(Message):
        def __init__(self, table: "ListTable", key: Hashable | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

    class Selected(Message):
        def __init__(self, table: "ListTable", key: Hashable) -> None:
            super().__init__()
            self.table = table
            self.key = key

    def __init__(self, columns: list[Column], render_cells: CellRenderer, *, empty_text: str = "",
                 titles: Callable[[], list[str]] | None = None, follow_top: bool = False,
                 show_header: bool = True, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.follow_top = follow_top      # cursor on the first row stays on the first row (newest)
        self.header = 1 if show_header else 0
        self.columns = columns
        self.render_cells = render_cells
        self.titles = titles or (lambda: [c.key for c in self.columns])
        self.empty_text = empty_text
        self._items: list[tuple[Hashable, Any]] = []
        self._index: dict[Hashable, int] = {}
        self.cursor = 0
        self.top = 0
        self._cache: dict[int, Strip] = {}
        self._widths: list[int] = []
        self._width_for = -1

    # ---------------------------------------------------------------- data
    @property
    def cursor_key(self) -> Hashable | None:
        return self._items[self.cursor][0] if 0 <= self.cursor < len(self._items) else None

    @property
    def cursor_item(self) -> Any:
        return self._items[self.cursor][1] if 0 <= self.cursor < len(self._items) else None

    def __len__(self) -> int:
        return len(self._items)

    def set_items(self, items: list[tuple[Hashable, Any]]) -> None:
        keep = self.cursor_key
        old_cursor = self.cursor
        if self.follow_top and old_cursor == 0:
            keep = items[0][0] if items else None
        self._items = items
        self._index = {k: i for i, (k, _) in enumerate(items)}
        if keep is not None and keep in self._index:
            self.cursor = self._index[keep]
        else:
            self.cursor = min(old_cursor, max(0, len(items) - 1))
        self._clamp_top()
        self._cache.clear()
        self.refresh()
        if self.cursor_key != keep:
            self.post_message(self.Highlighted(self, self.cursor_key))

    def invalidate(self) -> None:
        """Re-render the visible rows (texts depend on the clock or the language)."""
        self._cache.clear()
        self._width_for = -1
        self.refresh()

    def move_to(self, key: Hashable) -> bool:
        i = self._index.get(key)
        if i is None:
            return False
        self._set_cursor(i)
        return True

    # ---------------------------------------------------------------- navigation
    @property
    def _page(self) -> int:
        return max(1, self.size.height - self.header)

    def _clamp_top(self) -> None:
        page = self._page
        if self.cursor < self.top:
            self.top = self.cursor
        elif self.cursor >= self.top + page:
            self.top = self.cursor - page + 1
        self.top = max(0, min(self.top, max(0, len(self._items) - page)))

    def _set_cursor(self, i: int) -> None:
        i = max(0, min(i, len(self._items) - 1)) if self._items else 0
        if i != self.cursor:
            self.cursor = i
            self._clamp_top()
            self._cache.clear()
            self.refresh()
            self.post_message(self.Highlighted(self, self.cursor_key))

    def action_move(self, step: int) -> None:
        self._set_cursor(self.cursor + step)

    def action_page(self, step: int) -> None:
        self._set_cursor(self.cursor + step * self._page)

    def action_edge(self, step: int) -> None:
        self._set_cursor(0 if step < 0 else len(self._items) - 1)

    def action_select(self) -> None:
        if self.cursor_key is not None:
            self.post_message(self.Selected(self, self.cursor_key))

    def on_resize(self) -> None:
        self._clamp_top()
        self.invalidate()

    def on_focus(self) -> None:
        self.invalidate()

    def on_blur(self) -> None:
        self.invalidate()

    # ---------------------------------------------------------------- rendering
    def _column_widths(self, width: int) -> list[int]:
        if width == self._width_for:
            return self._widths
        fixed = sum(c.width or 0 for c in self.columns) + len(self.columns) - 1
        flex = [c for c in self.columns if c.width is None]
        spare = max(0, width - fixed)
        widths = []
        for c in self.columns:
            if c.width is not None:
                widths.append(c.width)
            else:
                w = spare // len(flex)
                widths.append(w if w >= c.min_width else 0)
        self._widths, self._width_for = widths, width
        return widths

    def _line(self, cells: Sequence[Text | str], widths: list[int], style: Style) -> Strip:
        segs: list[Segment] = []
        console = self.app.console
        for n, (cell, w, col) in enumerate(zip(cells, widths, self.columns)):
            if w <= 0:
                continue
            text = cell if isinstance(cell, Text) else Text(str(cell))
            text = text.copy()
            text.no_wrap = True
            text.truncate(w, overflow="ellipsis", pad=True)
            if col.justify == "right":
                text.align("right", w)
            if n:
                segs.append(Segment(" "))
            segs.extend(text.render(console))
        return Strip(segs).apply_style(style)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if width <= 0:
            return Strip.blank(0)
        cached = self._cache.get(y)
        if cached is not None:
            return cached
        widths = self._column_widths(width)
        base = self.rich_style
        if y < self.header:
            head = [Text(t, style="bold") for t in self.titles()]
            strip = self._line(head, widths, base + Style(underline=True))
        else:
            i = self.top + y - self.header
            if i >= len(self._items):
                if i == 0 and self.empty_text:
                    strip = Strip(list(Text(self.empty_text, style="dim italic").render(self.app.console)))
                else:
                    strip = Strip.blank(width, base)
            else:
                style = base
                if i == self.cursor:
                    style = base + Style(bgcolor="#2f4f7f" if self.has_focus else "grey27")
                strip = self._line(self.render_cells(self._items[i][1]), widths, style)
        strip = strip.crop_extend(0, width, base)
        self._cache[y] = strip
        return strip
