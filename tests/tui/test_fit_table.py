"""FitTable keeps its column widths in step with its cells as they change."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult

from tui.widgets.fit_table import Col, FitTable

COLUMNS = (Col("name", "name"), Col("image", "image", priority=1, min_width=6))


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield FitTable(COLUMNS, id="table")


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
