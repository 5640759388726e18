"""A virtualized, append-only table for very long lists (200k commits).

Only the visible lines are rendered (Line API), rows are plain Python objects
turned into cells by a formatter when drawn, and the table asks for more rows
(:class:`VirtualTable.NearEnd`) when the cursor gets close to the end, so a
caller can page a long history in without ever loading it whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass(frozen=True)
class Column:
    """A column: a header, a fixed width (0 = takes the remaining width)."""

    header: str
    width: int = 0


class VirtualTable(ScrollView, can_focus=True):
    """Rows are drawn on demand from ``self.rows``; row 0 of the widget is the header."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("enter", "select", "Open", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "virtual-table--header",
        "virtual-table--cursor",
    }

    DEFAULT_CSS = """
    VirtualTable {
        height: 1fr;
        overflow-x: hidden;
    }
    VirtualTable > .virtual-table--header {
        text-style: bold;
        background: $panel;
    }
    VirtualTable > .virtual-table--cursor {
        background: $accent 40%;
    }
    VirtualTable:focus > .virtual-table--cursor {
        background: $accent;
        color: $text;
    }
    """

    cursor: reactive[int] = reactive(0, always_update=False)

    class NearEnd(Message):
        """The cursor is within a page of the last loaded row: load more if there is more."""

        def __init__(self, table: VirtualTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> VirtualTable:
            return self.table

    class Highlighted(NearEnd):
        """The cursor moved to ``index``."""

        def __init__(self, table: VirtualTable, index: int) -> None:
            super().__init__(table)
            self.index = index

    class Selected(NearEnd):
        """``enter`` was pressed on row ``index``."""

        def __init__(self, table: VirtualTable, index: int) -> None:
            super().__init__(table)
            self.index = index

    def __init__(
        self,
        columns: Sequence[Column],
        formatter: Callable[[Any], list[Text]],
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.columns = list(columns)
        self.formatter = formatter
        self.rows: list[Any] = []
        self.complete = False  # True once the caller says there is nothing more to load
        self._asked_more = False

    # -- data -------------------------------------------------------------

    def set_rows(self, rows: Sequence[Any], *, complete: bool = False) -> None:
        """Replace every row and move the cursor to the top."""
        self.rows = list(rows)
        self.complete = complete
        self._asked_more = False
        self.cursor = 0
        self.scroll_to(y=0, animate=False)
        self._resize()

    def append_rows(self, rows: Sequence[Any], *, complete: bool = False) -> None:
        """Add rows at the end (next page)."""
        self.rows.extend(rows)
        self.complete = complete
        self._asked_more = False
        self._resize()

    def refresh_rows(self) -> None:
        """Redraw after rows changed in place (e.g. new badges)."""
        self.refresh()

    @property
    def current(self) -> Any | None:
        """The row under the cursor, or None when empty."""
        if 0 <= self.cursor < len(self.rows):
            return self.rows[self.cursor]
        return None

    def _resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.rows) + 1)
        self.refresh()

    def on_resize(self) -> None:
        self._resize()

    # -- cursor -----------------------------------------------------------

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.rows) - 1)) if self.rows else 0

    def watch_cursor(self, old: int, new: int) -> None:
        self._scroll_cursor_into_view()
        self.refresh()
        self.post_message(self.Highlighted(self, new))
        near_end = bool(self.rows) and new >= len(self.rows) - self._page()
        if near_end and not self.complete and not self._asked_more:
            self._asked_more = True
            self.post_message(self.NearEnd(self))

    def _page(self) -> int:
        return max(1, self.size.height - 1)

    def _scroll_cursor_into_view(self) -> None:
        top = int(self.scroll_y)
        visible = self._page()
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False)

    def action_cursor(self, delta: int) -> None:
        self.cursor += delta

    def action_page(self, direction: int) -> None:
        self.cursor += direction * self._page()

    def action_first(self) -> None:
        self.cursor = 0

    def action_last(self) -> None:
        self.cursor = len(self.rows) - 1

    def action_select(self) -> None:
        if self.rows:
            self.post_message(self.Selected(self, self.cursor))

    def on_click(self, event: Any) -> None:
        row = int(self.scroll_y) + event.y - 1
        if 0 <= row < len(self.rows):
            self.cursor = row

    # -- rendering --------------------------------------------------------

    def _widths(self, total: int) -> list[int]:
        fixed = sum(c.width + 1 for c in self.columns if c.width)
        flex = [c for c in self.columns if not c.width]
        rest = max(4, total - fixed - len(flex))
        return [c.width or max(4, rest // max(1, len(flex))) for c in self.columns]

    def _line(self, cells: Sequence[Text], width: int, style: Style) -> Strip:
        line = Text(no_wrap=True, end="")
        for cell, cell_width in zip(cells, self._widths(width), strict=False):
            cell = cell.copy()
            cell.truncate(cell_width, overflow="ellipsis", pad=True)
            line.append_text(cell)
            line.append(" ")
        segments = list(line.render(self.app.console))
        strip = Strip(segments).crop_extend(0, width, style)
        return strip.apply_style(style) if style else strip

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            header = [Text(c.header) for c in self.columns]
            return self._line(header, width, self.get_component_rich_style("virtual-table--header"))
        index = int(self.scroll_y) + y - 1
        if index >= len(self.rows):
            return Strip([Segment(" " * width, self.rich_style)], width)
        cells = self.formatter(self.rows[index])
        style = (
            self.get_component_rich_style("virtual-table--cursor")
            if index == self.cursor
            else self.rich_style
        )
        return self._line(cells, width, style)
