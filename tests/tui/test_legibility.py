"""Legible at 80x24 and 120x40, in 256 and 16 colours: whole headers and numbers,
marker labels that never overlap, a drift chart tall enough for its alert line,
and a cursor row whose text stands out from its background."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

import pytest
from rich._palettes import EIGHT_BIT_PALETTE, STANDARD_PALETTE
from rich.color import Color, ColorSystem
from rich.text import Text

from core.domain import Marker, RunStatus, TestRun
from tests.tui.conftest import FIXED_NOW
from tests.tui.test_drift_screen import RELEASE_AT, fixed_view
from tests.tui.test_shell import screen_text, wait_for
from tui import data
from tui.widgets.vtable import VirtualTable

SIZES = [(80, 24), (120, 40)]


def _line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


@pytest.mark.parametrize("size", SIZES)
async def test_tests_table_shows_every_metric_whole(console, size) -> None:
    c = console()
    start = FIXED_NOW - timedelta(hours=1)
    c.workspace.journal.record_test_run(
        TestRun(
            id=None,
            model="churn",
            commit=c.repo_shas[-1],
            status=RunStatus.PASSED,
            started_at=start,
            finished_at=start + timedelta(seconds=42),
            passed=12,
            metrics={"accuracy": 0.812, "auc": 0.874},
        )
    )
    app = c.make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: "accuracy" in screen_text(app))
        row = _line_with(screen_text(app), c.repo_shas[-1][:8])
        assert "accuracy=0.812 auc=0.874" in row
        assert "passed" in row
        header = _line_with(screen_text(app), "commit")
        assert "metrics" in header and "status" in header


@pytest.mark.parametrize("size", SIZES)
async def test_rollouts_table_keeps_commit_readiness_and_state_whole(console, size) -> None:
    c = console()
    app = c.make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: "complete" in screen_text(app))
        text = screen_text(app)
        header = _line_with(text, " model ")
        for name in ("model", "target", "commit", "ready", "state"):
            assert f" {name} " in f"{header} "
        row = _line_with(text, " churn  prod-eu ")
        for cell in (c.repo_shas[-1][:8], "3/3", "complete"):
            assert cell in row
        assert row.rstrip().endswith(("complete", "h", "m", "s", "d"))


def _drift(monkeypatch, markers=None):  # type: ignore[no-untyped-def]
    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        good = fixed_view(workspace, model, span, now)
        return good if markers is None else replace(good, markers=markers)

    monkeypatch.setattr(data, "drift_view", view)


@pytest.mark.parametrize("size", SIZES)
async def test_drift_features_show_whole_scores_and_bands(console, monkeypatch, size) -> None:
    _drift(monkeypatch)
    app = console().make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: "income" in screen_text(app))
        text = screen_text(app)
        header = _line_with(text, " feature ")
        assert "score" in header and "band" in header
        income = _line_with(text, "income")
        assert "0.410" in income and "alert" in income.split("0.410", 1)[1]
        assert "0.020" in _line_with(text, " age ")


def _hline_rows(chart) -> int:  # type: ignore[no-untyped-def]
    """Rows of the chart's picture that a horizontal (threshold) line crosses."""
    rows = Text.from_ansi(chart._last_built).plain.splitlines()
    return sum(1 for row in rows if "├─" in row and "└" not in row and "┌" not in row)


@pytest.mark.parametrize("size", SIZES)
async def test_drift_chart_is_tall_enough_for_its_warn_and_alert_lines(
    console, monkeypatch, size
) -> None:
    _drift(monkeypatch)
    app = console().make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: "drift now" in screen_text(app))
        await pilot.pause(0.2)
        chart = app.screen.query_one("#chart-drift")
        assert chart.display and chart.size.height >= 12
        assert _hline_rows(chart) >= 2  # warn 0.1 and alert 0.25 on their own rows
        if size == (80, 24):
            # The other charts are one key away, each as tall.
            await pilot.press("c")
            await pilot.pause(0.2)
            prediction = app.screen.query_one("#chart-prediction")
            assert prediction.display and prediction.size.height >= 12
            assert not chart.display


@pytest.mark.parametrize("size", SIZES)
async def test_release_marker_labels_never_overlap(console, monkeypatch, size) -> None:
    markers = (
        Marker(RELEASE_AT - timedelta(seconds=20), "rollout → 1", "rollout", "prod-eu"),
        Marker(RELEASE_AT, "rollout → 2", "rollout", "prod-eu"),
        Marker(RELEASE_AT + timedelta(seconds=30), "rollback → 1", "rollback", "prod-eu"),
        Marker(RELEASE_AT + timedelta(seconds=50), "rollout → 3 (failed)", "rollout", "prod-eu"),
    )
    _drift(monkeypatch, markers)
    app = console().make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: "drift now" in screen_text(app))
        await pilot.pause(0.2)
        chart = app.screen.query_one("#chart-drift")
        placed = chart.placed_labels
        assert placed, "at least one marker label is drawn"
        spans = sorted((p.row, p.column, p.column + len(p.text)) for p in placed)
        for (row_a, _, end_a), (row_b, start_b, _) in itertools.pairwise(spans):
            assert row_a != row_b or end_a < start_b, spans
        text = screen_text(app)
        for label in placed:
            assert label.text in text
        assert "rollorollout" not in text and "rollouback" not in text


def _contrast(fg: tuple[int, int, int], bg: tuple[int, int, int]) -> float:
    def luminance(rgb: tuple[int, int, int]) -> float:
        def channel(v: int) -> float:
            x = v / 255
            return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4

        r, g, b = rgb
        return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)

    high, low = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


async def test_selected_commit_row_is_readable_in_256_and_16_colours(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(VirtualTable)
        await wait_for(pilot, lambda: len(table.rows) > 0)
        await pilot.pause(0.2)
        y = table.region.y + 1  # the first row under the header holds the cursor
        strip = app.screen._compositor.render_strips()[y]
        for line_filter in app._filters:
            strip = strip.apply_filter(line_filter, app.screen.styles.background)
        checked = 0
        for segment in strip:
            style = segment.style
            if not segment.text.strip() or style is None or style.color is None:
                continue
            assert style.bgcolor is not None
            fg, bg = Color.parse(style.color.name), Color.parse(style.bgcolor.name)
            fg256, bg256 = fg.downgrade(ColorSystem.EIGHT_BIT), bg.downgrade(ColorSystem.EIGHT_BIT)
            assert fg256.number is not None and bg256.number is not None
            ratio = _contrast(EIGHT_BIT_PALETTE[fg256.number], EIGHT_BIT_PALETTE[bg256.number])
            assert ratio >= 2.5, (segment.text, fg256, bg256, ratio)
            fg16, bg16 = fg.downgrade(ColorSystem.STANDARD), bg.downgrade(ColorSystem.STANDARD)
            assert fg16.number != bg16.number, (segment.text, fg16, bg16)
            assert STANDARD_PALETTE[fg16.number] != STANDARD_PALETTE[bg16.number]
            checked += 1
        assert checked >= 2  # the sha and the text of the subject at least


async def test_commit_rows_take_the_tables_new_background(console) -> None:
    """The rows are drawn in the table's style as of each repaint: once the table's
    background changes, a row below the cursor's is painted on the new one."""
    app = console().make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(VirtualTable)
        await wait_for(pilot, lambda: len(table.rows) > 2)
        await pilot.pause(0.2)

        def row_background() -> str:
            strip = app.screen._compositor.render_strips()[table.region.y + 2]
            return next(s.style.bgcolor.name for s in strip if s.text.strip() and s.style)

        assert row_background() != "#800000"
        table.styles.background = "#800000"
        await wait_for(pilot, lambda: row_background() == "#800000")
