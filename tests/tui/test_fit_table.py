"""FitTable keeps its column widths in step with its cells as they change."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult

from tests.tui.test_shell import wait_for
from tui.widgets.fit_table import Col, FitTable

COLUMNS = (Col("name", "name"), Col("image", "image", priority=1, min_width=6))


class TableApp(App[None]):
    def __init__(self, narrow_after: float = 0.0) -> None:
        super().__init__()
        self.narrow_after = narrow_after

    def compose(self) -> ComposeResult:
        yield FitTable(COLUMNS, id="table", narrow_after=self.narrow_after)


def _width(table: FitTable, column: str) -> int:
    return next(c.width for c in table.ordered_columns if c.key.value == column)


async def test_columns_widen_and_narrow_with_updates() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(FitTable)
        for index in range(50):
            table.add_row(Text(f"m{index:02d}"), Text("img:1"), key=f"m{index:02d}")
        await pilot.pause()
        assert _width(table, "image") == len("image")
        table.update_cell("m40", "image", Text("registry/model:long-tag"))
        await pilot.pause()
        assert _width(table, "image") == len("registry/model:long-tag")
        table.update_cell("m40", "image", Text("img:2"))
        await pilot.pause()
        assert _width(table, "image") == len("image")  # the one wide cell is gone
        assert table.get_cell("m40", "image").plain == "img:2"


async def test_replacing_a_row_forgets_its_old_cells() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(FitTable)
        table.add_row(Text("a-very-long-model-name"), Text("img"), key="a")
        table.clear()
        table.add_row(Text("b"), Text("img"), key="b")
        await pilot.pause()
        assert _width(table, "name") == len("name")


async def test_update_of_a_visible_row_reaches_the_screen() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(FitTable)
        for index in range(50):
            table.add_row(Text(f"m{index:02d}"), Text("img:1"), key=f"m{index:02d}")
        await pilot.pause()
        table.update_cell("m03", "image", Text("img:9"))
        await pilot.pause()
        lines = [strip.text for strip in (table.render_line(y) for y in range(8))]
        assert any("m03" in line and "img:9" in line for line in lines), lines


async def test_a_column_changing_width_keeps_the_view_where_it_was_scrolled() -> None:
    # The state of one row widens its column, then narrows it again (a rollout
    # starting and ending): the table must not jump back to the cursor's row.
    app = TableApp()
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(FitTable)
        for index in range(500):
            table.add_row(Text(f"m{index:03d}"), Text("img:1"), key=f"m{index:03d}")
        await pilot.pause()
        table.scroll_to(y=300, animate=False)  # the mouse wheel: the cursor stays on m000
        await pilot.pause()
        table.update_cell("m310", "image", Text("registry/model:progressing"))
        await pilot.pause()
        assert _width(table, "image") == len("registry/model:progressing")
        assert table.scroll_y == 300
        table.update_cell("m310", "image", Text("img:2"))
        await pilot.pause()
        assert _width(table, "image") == len("image")
        assert table.scroll_y == 300
        assert table.cursor_row == 0
        lines = [strip.text for strip in (table.render_line(y) for y in range(18))]
        assert any("m310" in line and "img:2" in line for line in lines), lines


async def test_cells_cut_to_fit_are_cut_again_when_their_column_narrows_or_widens() -> None:
    app = TableApp()
    async with app.run_test(size=(30, 10)) as pilot:
        table = app.query_one(FitTable)
        table.add_row(Text("a"), Text("registry/model:long-tag"), key="a")
        table.add_row(Text("b"), Text("img:1"), key="b")
        await pilot.pause()
        available = _width(table, "image")
        assert table.get_cell("a", "image").plain.endswith("…")
        assert len(table.get_cell("a", "image").plain) == available
        table.update_cell("b", "name", Text("model-b"))  # the kept column takes room
        await pilot.pause()
        narrower = _width(table, "image")
        assert narrower == available - len("model-b") + len("name")
        assert table.get_cell("a", "image").plain == "registry/model:long-tag"[: narrower - 1] + "…"
        assert table.get_cell("b", "image").plain == "img:1"
        table.update_cell("b", "name", Text("b"))
        await pilot.pause()
        assert _width(table, "image") == available
        assert len(table.get_cell("a", "image").plain) == available
        lines = [strip.text for strip in (table.render_line(y) for y in range(4))]
        assert any(table.get_cell("a", "image").plain in line for line in lines), lines


async def test_a_column_that_widens_again_soon_is_not_narrowed_meanwhile() -> None:
    app = TableApp(narrow_after=3600.0)
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(FitTable)
        for index in range(50):
            table.add_row(Text(f"m{index:02d}"), Text("img:1"), key=f"m{index:02d}")
        table.update_cell("m01", "image", Text("progressing"))
        await pilot.pause()
        assert _width(table, "image") == len("progressing")
        table.update_cell("m01", "image", Text("img:2"))  # done: narrower, later
        await pilot.pause()
        assert _width(table, "image") == len("progressing")
        assert table.get_cell("m01", "image").plain == "img:2"
        table.update_cell("m02", "image", Text("progressing"))  # the next one starts
        table.update_cell("m03", "image", Text("registry/model:wider"))  # wider: at once
        await pilot.pause()
        assert _width(table, "image") == len("registry/model:wider")
        lines = [strip.text for strip in (table.render_line(y) for y in range(6))]
        assert any("m01" in line and "img:2" in line for line in lines), lines


async def test_a_column_narrows_after_the_delay() -> None:
    app = TableApp(narrow_after=0.05)
    async with app.run_test(size=(80, 20)) as pilot:
        table = app.query_one(FitTable)
        for index in range(5):
            table.add_row(Text(f"m{index:02d}"), Text("img:1"), key=f"m{index:02d}")
        table.update_cell("m01", "image", Text("progressing"))
        await pilot.pause()
        table.update_cell("m01", "image", Text("img:2"))
        await wait_for(pilot, lambda: _width(table, "image") == len("image"))
        lines = [strip.text for strip in (table.render_line(y) for y in range(6))]
        assert any("m01" in line and "img:2" in line for line in lines), lines
