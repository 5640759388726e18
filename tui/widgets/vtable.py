"""A virtualized, windowed table for very long lists (200k commits).

Only the visible lines are rendered (Line API), rows are plain Python objects
turned into cells by a formatter when drawn, and the table asks for more rows
(:class:`VirtualTable.NearEnd`) when the cursor gets close to the end, so a
caller can page a long history in without ever loading it whole. Rows are held
in a :class:`RowWindow`: only those within :data:`MARGIN` rows of the screen are
kept; rows farther away are dropped and become placeholders again, so memory
stays bounded however much of the list is visited.

When the caller knows the total (:meth:`VirtualTable.set_total`), rows not
loaded yet are ``None`` placeholders, drawn as ``…``; the table asks for them
(:class:`VirtualTable.Wanted`) when the cursor reaches one. ``end`` asks the
caller for the last rows (:class:`VirtualTable.WantLast`) and lands on the
last row once they are there. Moves past the loaded rows while more are being
loaded are kept and applied when they arrive, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, overload

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

#: Rows are held in chunks of this many.
CHUNK = 256
#: Rows within this many of the screen (above and below) are kept; farther ones are dropped.
MARGIN = 2048


class RowWindow(Sequence[Any]):
    """The rows of a long list, held only near where the table looks.

    ``len()`` is the number of rows the list is known to have; ``window[i]``
    is row ``i``, or None when it is not held (never loaded, or dropped by
    :meth:`keep`). Rows are stored in chunks of :data:`CHUNK`, so memory is
    proportional to the rows held, not to the length.
    """

    def __init__(self) -> None:
        self._chunks: dict[int, list[Any]] = {}
        self._length = 0

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        """Return row ``index`` (None when not held); raise IndexError outside the list."""
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(index)
        chunk = self._chunks.get(index // CHUNK)
        return None if chunk is None else chunk[index % CHUNK]

    def __iter__(self) -> Iterator[Any]:
        for i in range(self._length):
            yield self[i]

    def held(self) -> int:
        """Return how many rows are held as objects (not placeholders)."""
        return sum(len(c) - c.count(None) for c in self._chunks.values())

    def clear(self) -> None:
        """Forget every row; the length becomes 0."""
        self._chunks.clear()
        self._length = 0

    def resize(self, length: int) -> None:
        """Make the list ``length`` rows long: new rows are placeholders, cut ones dropped."""
        self._length = max(0, length)
        last = (self._length - 1) // CHUNK if self._length else -1
        for key in [k for k in self._chunks if k > last]:
            del self._chunks[key]
        if self._length % CHUNK and last in self._chunks:
            chunk = self._chunks[last]
            chunk[self._length % CHUNK :] = [None] * (CHUNK - self._length % CHUNK)

    def put(self, start: int, rows: Sequence[Any]) -> None:
        """Place ``rows`` from index ``start``, growing the list when they reach past its end."""
        self._length = max(self._length, start + len(rows))
        index, offset = start, 0
        while offset < len(rows):
            key, at = divmod(index, CHUNK)
            take = min(CHUNK - at, len(rows) - offset)
            chunk = self._chunks.get(key)
            if chunk is None:
                chunk = self._chunks[key] = [None] * CHUNK
            chunk[at : at + take] = rows[offset : offset + take]
            index += take
            offset += take

    def keep(self, first: int, end: int) -> None:
        """Drop the chunks holding no row of ``first`` .. ``end - 1`` (they become placeholders)."""
        low, high = first // CHUNK, (end - 1) // CHUNK
        for key in [k for k in self._chunks if k < low or k > high]:
            del self._chunks[key]


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

    class Wanted(NearEnd):
        """The cursor is on row ``index``, which is not loaded yet."""

        def __init__(self, table: VirtualTable, index: int) -> None:
            super().__init__(table)
            self.index = index

    class WantLast(NearEnd):
        """``end`` was pressed before the total is known: load the last rows."""

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
        self.rows = RowWindow()
        self.frontier = 0  # rows 0 .. frontier-1 have been read (maybe dropped since)
        self.complete = False  # True once the caller says there is nothing more to load
        self._asked_more = False
        self._overshoot = 0  # rows the cursor was asked to move past the loaded end
        self._to_last = False  # `end` was pressed: land on the last row once it is known
        self._row_style: Style | None = None  # the table's own style during a repaint

    # -- data -------------------------------------------------------------

    def set_rows(self, rows: Sequence[Any], *, complete: bool = False) -> None:
        """Replace every row and move the cursor to the top."""
        self.rows.clear()
        self.rows.put(0, rows)
        self.frontier = len(rows)
        self.complete = complete
        self._asked_more = False
        self._overshoot = 0
        self._to_last = False
        self.cursor = 0
        self.scroll_to(y=0, animate=False)
        self._resize()

    def append_rows(self, rows: Sequence[Any], *, complete: bool = False) -> None:
        """Add rows after the loaded ones (next page); moves asked for meanwhile apply now."""
        self.put_rows(self.frontier, rows)
        if not self.complete:
            self.complete = complete
            if complete:
                self.rows.resize(self.frontier)
                self._resize()
        self._asked_more = False
        self._catch_up()

    def set_total(self, total: int) -> None:
        """Declare that there are ``total`` rows: unknown ones become placeholders."""
        if total > len(self.rows):
            self.rows.resize(total)
        self.complete = True
        self._resize()
        self._catch_up()

    def put_rows(self, start: int, rows: Sequence[Any]) -> None:
        """Place ``rows`` at index ``start`` (filling placeholders, growing the list).

        Rows far from the screen are dropped again (see :meth:`RowWindow.keep`).
        """
        self.rows.put(start, rows)
        if start <= self.frontier:
            self.frontier = max(self.frontier, start + len(rows))
        self._resize()
        self._catch_up()
        self._trim()

    def loaded_prefix(self) -> int:
        """The number of rows read from the top without a gap (some may be dropped since)."""
        return self.frontier

    def _trim(self) -> None:
        """Drop the rows farther than :data:`MARGIN` from the screen and the cursor."""
        top = int(self.scroll_y)
        first = min(top, self.cursor) - MARGIN
        end = max(top + self._page(), self.cursor + 1) + MARGIN
        self.rows.keep(max(0, first), end)

    def _catch_up(self) -> None:
        """Apply a pending ``end`` or moves past the old end, now that more rows are here."""
        if self._to_last and self.complete:
            self._to_last = False
            self._overshoot = 0
            self.cursor = len(self.rows) - 1
        elif self._overshoot and len(self.rows) - 1 > self.cursor:
            room = len(self.rows) - 1 - self.cursor
            step = min(room, self._overshoot)
            self._overshoot -= step
            self.cursor += step

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
        self._trim()
        self.refresh()
        self.post_message(self.Highlighted(self, new))
        if self.rows and self.rows[new] is None:
            self.post_message(self.Wanted(self, new))
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

    def move(self, delta: int) -> None:
        """Move the cursor ``delta`` rows; a move past the loaded end waits for more rows."""
        self._to_last = False
        target = self.cursor + self._overshoot + delta
        last = len(self.rows) - 1
        self._overshoot = max(0, target - last) if not self.complete else 0
        self.cursor = max(0, min(target, last))

    def action_cursor(self, delta: int) -> None:
        self.move(delta)

    def action_page(self, direction: int) -> None:
        self.move(direction * self._page())

    def action_first(self) -> None:
        self._overshoot = 0
        self._to_last = False
        self.cursor = 0

    def action_last(self) -> None:
        self._overshoot = 0
        if self.complete:
            self.cursor = len(self.rows) - 1
            return
        self._to_last = True
        self.post_message(self.WantLast(self))

    def action_select(self) -> None:
        if self.current is not None:
            self.post_message(self.Selected(self, self.cursor))

    def on_click(self, event: Any) -> None:
        row = int(self.scroll_y) + event.y - 1
        if 0 <= row < len(self.rows):
            self._overshoot = 0
            self._to_last = False
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

    def render_lines(self, crop: Region) -> list[Strip]:
        # The table's own style is worked out from every ancestor's styles: once for the
        # lines of a repaint, not once per line (it was a fifth of a line's cost).
        self._row_style = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._row_style = None

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            header = [Text(c.header) for c in self.columns]
            return self._line(header, width, self.get_component_rich_style("virtual-table--header"))
        own = self.rich_style if self._row_style is None else self._row_style
        index = int(self.scroll_y) + y - 1
        if index >= len(self.rows):
            return Strip([Segment(" " * width, own)], width)
        row = self.rows[index]
        cells = [Text("…", style="dim")] if row is None else self.formatter(row)
        style = (
            self.get_component_rich_style("virtual-table--cursor") if index == self.cursor else own
        )
        return self._line(cells, width, style)
