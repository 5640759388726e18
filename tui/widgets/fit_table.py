"""A DataTable whose columns fit its width: the least important give way first.

Each column says how narrow it may get (``min_width``; a column of numbers
or short words never shrinks below its content) and how important it is
(``priority``: 0 is never dropped, higher numbers are dropped first). When
the content does not fit, :func:`fit_widths` first shortens the least
important shrinkable column (its text ends with ``…``), then drops it, then
moves on to the next least important one. Headers are never cut.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Region
from textual.timer import Timer
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

#: What a cell holds: rich Text (cut with an ellipsis when too wide) or a plain value.
Cell = Any


@dataclass(frozen=True)
class Col:
    """One column: its key and header, how narrow it may get, how soon it is dropped.

    ``min_width`` 0 means "never narrower than its widest cell" (numbers,
    states); a positive value lets a text column shrink to that many cells.
    ``max_width`` caps a column that would grow without bound (None: no cap).
    """

    key: str
    label: str
    priority: int = 0
    min_width: int = 0
    max_width: int | None = None


def fit_widths(
    columns: Sequence[Col], content: Mapping[str, int], available: int, padding: int = 1
) -> dict[str, int]:
    """Return ``{key: width}`` of the columns to show, in the order of ``columns``.

    ``content`` is each column's widest cell, ``available`` the table's width
    in cells and ``padding`` the cells on each side of a cell. A column is
    never narrower than its header. Columns of priority 0 are always kept,
    even when they do not fit.
    """
    widths: dict[str, int] = {}
    floors: dict[str, int] = {}
    for col in columns:
        want = max(cell_len(col.label), content.get(col.key, 0))
        if col.max_width is not None:
            want = max(cell_len(col.label), min(want, col.max_width))
        widths[col.key] = want
        floor = col.min_width if col.min_width else want
        floors[col.key] = min(want, max(cell_len(col.label), floor))

    def total() -> int:
        return sum(w + 2 * padding for w in widths.values())

    for col in sorted(columns, key=lambda c: -c.priority):
        excess = total() - available
        if excess <= 0:
            break
        shrink = min(excess, widths[col.key] - floors[col.key])
        widths[col.key] -= shrink
        if total() > available and col.priority > 0:
            del widths[col.key]
    return widths


def _width(cell: Cell) -> int:
    """Return how many cells ``cell`` takes on screen."""
    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


class FitTable(DataTable[Any]):
    """A DataTable that keeps every cell it was given and fits its columns to its width.

    Use :meth:`add_row`, :meth:`update_cell` and :meth:`clear` as on a
    DataTable; the columns are declared once with :class:`Col`. Dropped
    columns come back when the table is wide enough again.

    ``narrow_after`` (seconds, default 0: at once) delays narrowing a column
    whose widest cell got narrower: a column that widens again meanwhile (the
    state of one row after another rolling out) is not redrawn twice for
    each. Widening, and anything that brings a dropped column back, is
    immediate.
    """

    #: True inside :meth:`update_cell`: DataTable's whole-table refresh is skipped.
    _cell_only = False

    def __init__(self, columns: Sequence[Col], *, narrow_after: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.narrow_after = narrow_after
        self._narrowing: Timer | None = None
        self.specs = list(columns)
        self._cells: dict[str, dict[str, Cell]] = {}
        #: Per column, how many cells have each width: the widest is known
        #: without reading every cell again on each update.
        self._sizes: dict[str, Counter[int]] = {col.key: Counter() for col in self.specs}
        self._widths: dict[str, int] = {}
        self._fitting = False

    @property
    def shown_columns(self) -> list[str]:
        """Keys of the columns shown now, left to right."""
        return list(self._widths)

    def keys_near_view(self) -> list[str]:
        """Return the keys of the rows on screen and of a screenful either side, in table order.

        Rows are one line tall here, so the first row on screen is the one at
        the vertical scroll offset. Empty before the table has a size.
        """
        height = self.scrollable_content_region.height
        if height <= 0:
            return []
        top = int(self.scroll_y)
        first, last = max(0, top - height), min(self.row_count, top + 2 * height)
        # Only the rows asked for: DataTable.ordered_rows walks every row again
        # after each cell update.
        keys = (self._row_locations.get_key(index) for index in range(first, last))
        return [str(key.value) for key in keys if key is not None]

    def on_mount(self) -> None:
        self._refit(force=True)

    def on_resize(self) -> None:
        self._refit()

    def _available(self) -> int:
        width = self.size.width
        if self.show_vertical_scrollbar:
            width -= self.styles.scrollbar_size_vertical
        return width

    def _content(self) -> dict[str, int]:
        """Return each column's widest cell (columns with no cell are left out)."""
        return {key: max(sizes) for key, sizes in self._sizes.items() if sizes}

    def _count(self, key: str, cell: Cell, step: int) -> None:
        """Add (``step`` 1) or remove (-1) one cell of column ``key`` in the width counts."""
        sizes = self._sizes.setdefault(key, Counter())
        size = _width(cell)
        sizes[size] += step
        if sizes[size] <= 0:
            del sizes[size]

    def _fit(self, key: str, cell: Cell) -> Cell:
        width = self._widths.get(key)
        if width is None or not isinstance(cell, Text) or cell.cell_len <= width:
            return cell
        cut = cell.copy()
        cut.truncate(width, overflow="ellipsis")
        return cut

    def _refit(self, *, force: bool = False) -> bool:
        """Recompute the widths and apply them; return True when the rows were added again.

        When the same columns stay, only their widths change in place (see
        :meth:`_resize`); when a column is dropped or comes back (or
        ``force``), the columns and rows are rebuilt.
        """
        if self._fitting or not self.is_mounted:
            return False
        widths = fit_widths(
            self.specs, self._content(), max(1, self._available()), self.cell_padding
        )
        if widths == self._widths and not force:
            return False
        if not force and self.columns and list(widths) == list(self._widths):
            self._resize(widths)
            return False
        self._fitting = True
        try:
            order = [row.key.value for row in self.ordered_rows]
            cursor = self.cursor_row
            self._widths = widths
            super().clear(columns=True)
            for col in self.specs:
                if col.key in widths:
                    super().add_column(col.label, key=col.key, width=widths[col.key])
            for key in order:
                if key is not None and key in self._cells:
                    self._add(key)
            if order:
                self.move_cursor(row=min(cursor, len(order) - 1), animate=False)
        finally:
            self._fitting = False
        return True

    def _resize(self, widths: dict[str, int]) -> None:
        """Give the shown columns ``widths`` (same keys, same order) without adding rows again.

        A column whose width changed gets its cells again only where one was
        cut, or has to be: with 1,000 rows, a state column that widens and
        narrows as one row rolls out would otherwise re-add every row each time.
        """
        before, self._widths = self._widths, widths
        for key, width in widths.items():
            if width == before[key]:
                continue
            self.columns[ColumnKey(key)].width = width
            limit = min(width, before[key])
            if max(self._sizes.get(key) or [0]) <= limit:
                continue  # no cell was cut, none has to be
            column = ColumnKey(key)
            for row, cells in self._cells.items():
                cell = cells.get(key, "")
                if _width(cell) > limit and row in self.rows:
                    self._data[RowKey(row)][column] = self._fit(key, cell)
        self._update_count += 1
        self._clear_caches()
        self._require_update_dimensions = True  # the virtual width, on idle
        self.refresh()

    def _add(self, key: str) -> RowKey:
        cells = self._cells[key]
        values = [self._fit(k, cells.get(k, "")) for k in self._widths]
        return super().add_row(*values, key=key)

    def add_row(  # type: ignore[override]
        self, *cells: Cell, key: str | None = None, **kwargs: Any
    ) -> RowKey:
        """Add a row (``key`` defaults to its position); return its RowKey."""
        key = key if key is not None else str(len(self._cells))
        for column, cell in self._cells.get(key, {}).items():
            self._count(column, cell, -1)
        self._cells[key] = {col.key: cell for col, cell in zip(self.specs, cells, strict=False)}
        for column, cell in self._cells[key].items():
            self._count(column, cell, 1)
        if not self._widths or self._content_grew(key):
            self._refit(force=not self._widths)
            if key in self.rows:
                return RowKey(key)
        return self._add(key)

    def _fit_now(self) -> bool:
        """Refit now, or later when it only narrows columns; return True when rows were re-added."""
        if self.narrow_after > 0 and self._widths:
            fitted = fit_widths(
                self.specs, self._content(), max(1, self._available()), self.cell_padding
            )
            if list(fitted) == list(self._widths) and all(
                fitted[key] <= width for key, width in self._widths.items()
            ):
                if self._narrowing is None:
                    self._narrowing = self.set_timer(self.narrow_after, self._narrow)
                return False
        return self._refit()

    def _narrow(self) -> None:
        self._narrowing = None
        self._refit()

    def _content_grew(self, key: str) -> bool:
        """True when row ``key`` needs a wider column than the current fit gives."""
        fitted = fit_widths(
            self.specs, self._content(), max(1, self._available()), self.cell_padding
        )
        return fitted != self._widths

    def update_cell(  # type: ignore[override]
        self,
        row_key: RowKey | str,
        column_key: ColumnKey | str,
        value: Cell,
        *,
        update_width: bool = False,
    ) -> None:
        """Replace one cell; refit the columns when it changes what fits."""
        row = row_key.value if isinstance(row_key, RowKey) else row_key
        column = column_key.value if isinstance(column_key, ColumnKey) else column_key
        if row is None or column is None or row not in self._cells:
            return
        before = self._cells[row].get(column, "")
        if column in self._cells[row]:
            self._count(column, before, -1)
        self._cells[row][column] = value
        self._count(column, value, 1)
        # Same width: same fit. A rebuild adds every row again, this cell with it.
        if _width(before) != _width(value) and self._content_grew(row) and self._fit_now():
            return
        if column in self._widths:
            # DataTable.update_cell repaints the whole table; the columns keep their
            # widths here, so only this cell's line is repainted.
            self._cell_only = True
            try:
                super().update_cell(row, column, self._fit(column, value))
            finally:
                self._cell_only = False
            self._refresh_line(self.get_row_index(RowKey(row)), column)

    def _refresh_line(self, index: int, column: str | None = None) -> None:
        """Repaint row ``index`` if it is on screen, up to the end of ``column``'s cell
        (a terminal update writes the line from the table's left edge to there).

        Every row is one line high (rows are added without a height), so its
        place is known without summing the heights of the rows above it, as
        DataTable.refresh_coordinate does after each update.
        """
        y = index + (self.header_height if self.show_header else 0)
        width = max(self.virtual_size.width, self.size.width)
        if column is not None and not self._labelled_row_exists:
            shown = self.ordered_columns[: self.get_column_index(column) + 1]
            width = sum(one.get_render_width(self) for one in shown)
        region = Region(0, y, width, 1)
        if self.window_region.overlaps(region):
            self.refresh(region.translate(-self.scroll_offset))

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> Self:
        """Refresh as a DataTable does, except the whole-table repaint of a one-cell update."""
        if self._cell_only and not regions and not layout and not recompose:
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def clear(self, columns: bool = False) -> FitTable:  # type: ignore[override]
        """Remove every row (the declared columns stay)."""
        self._cells.clear()
        for sizes in self._sizes.values():
            sizes.clear()
        super().clear()
        return self
