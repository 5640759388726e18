"""The Drift screen: charts with release markers, stale badge, pause, time ranges."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from rich.style import Style
from rich.text import Text
from textual._compositor import CompositorUpdate
from textual.app import App

from core.domain import Alert, DriftBand, DriftScore, Marker, Series
from core.errors import BackendUnavailable
from core.metrics.model import DriftView
from tests.tui.conftest import FIXED_NOW
from tests.tui.test_shell import screen_text, wait_for
from tui import data
from tui.screens.drift import SCORE_SECONDS, DriftScreen, jump_seconds

RELEASE_AT = FIXED_NOW - timedelta(minutes=6)


def fixed_view(workspace, model, span, now, width=120) -> DriftView:  # type: ignore[no-untyped-def]
    """A drift that is flat before the release 6 minutes ago and high after it."""
    start = now - span
    minutes = int(span.total_seconds() // 60)
    times = [start.timestamp() + 60 * i for i in range(minutes + 1)]
    release = RELEASE_AT.timestamp()
    drift = tuple((t, 0.04 if t < release else 0.38) for t in times)
    p50 = tuple((t, 0.42 if t < release else 0.61) for t in times)
    return DriftView(
        start=start,
        end=now,
        step=60.0,
        method="psi",
        warn=0.1,
        alert=0.25,
        window=300.0,
        drift=Series("psi", drift),
        current=DriftScore("psi", 0.38, DriftBand.ALERT, samples=1800),
        reference="training histogram at 1a2b3c4d",
        quantiles=(
            Series("p10", tuple((t, v - 0.2) for t, v in p50)),
            Series("p50", p50),
            Series("p90", tuple((t, v + 0.2) for t, v in p50)),
        ),
        error_rate=(Series("error rate", tuple((t, 0.01) for t in times)),),
        throughput=(Series("throughput", tuple((t, 20.0) for t in times)),),
        features=(
            ("income", DriftScore("psi", 0.41, DriftBand.ALERT, 1800)),
            ("age", DriftScore("psi", 0.02, DriftBand.OK, 1800)),
        ),
        alerts=(Alert("DriftHigh", "firing", "critical", "psi 0.38 > 0.25"),),
        markers=(Marker(RELEASE_AT, "rollout r4", "rollout", "prod-eu"),),
        fetched_at=now,
    )


@pytest.fixture
def fixed_drift(monkeypatch):  # type: ignore[no-untyped-def]
    calls = []

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        calls.append(span)
        return fixed_view(workspace, model, span, now)

    monkeypatch.setattr(data, "drift_view", view)
    return calls


def test_drift_screen_snapshot(console, snap_compare, fixed_drift) -> None:
    """Drift screen at 120x40, range 15m: the psi chart with warn/alert lines and a
    rollout marker 6 minutes ago where the score jumps from 0.04 to 0.38; the
    prediction p10/p50/p90 chart shifting at the same marker; error rate and
    throughput; "drift now: 0.380 alert"; the DriftHigh alert; income ranked first."""
    c = console()

    async def opened(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("5")
        await wait_for(pilot, lambda: len(fixed_drift) > 0)
        await pilot.pause(0.5)

    assert snap_compare(c.make_app(), terminal_size=(120, 40), run_before=opened)


async def test_release_marker_and_current_score_are_shown(console, fixed_drift) -> None:
    app = console().make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: "drift now: 0.380 alert" in screen_text(app))
        text = screen_text(app)
        assert "rollout r4" in text
        assert "DriftHigh" in text
        assert text.index("income") < text.index("age")


async def test_time_range_keys_change_the_query(console, fixed_drift) -> None:
    app = console().make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: len(fixed_drift) > 0)
        # The query covers the range and one jump of the charts' window.
        await pilot.press("right_square_bracket")
        await wait_for(
            pilot,
            lambda: fixed_drift[-1] == timedelta(hours=1, seconds=jump_seconds(timedelta(hours=1))),
        )
        await pilot.press("left_square_bracket", "left_square_bracket")
        await wait_for(
            pilot,
            lambda: (
                fixed_drift[-1] == timedelta(minutes=5, seconds=jump_seconds(timedelta(minutes=5)))
            ),
        )
        assert "range 5m" in screen_text(app)


async def test_the_view_is_computed_for_the_charts_real_width(console, monkeypatch) -> None:
    """At 100 columns the charts are narrower than 100 cells: the view is asked for
    about one point per chart column, not for a fixed 120."""
    widths: list[int] = []

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        widths.append(width)
        return fixed_view(workspace, model, span, now)

    monkeypatch.setattr(data, "drift_view", view)
    app = console().make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: "drift now" in screen_text(app))
        chart = app.screen.query_one("#chart-drift")
        await wait_for(pilot, lambda: widths[-1] == chart.size.width)
        assert 0 < widths[-1] < 100


async def test_unreachable_source_shows_stale_badge_and_stays_responsive(
    console, monkeypatch
) -> None:
    state = {"up": True}

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        if not state["up"]:
            raise BackendUnavailable("cannot reach http://127.0.0.1:9/metrics: refused")
        return fixed_view(workspace, model, span, now)

    monkeypatch.setattr(data, "drift_view", view)
    app = console().make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: "drift now" in screen_text(app))
        state["up"] = False
        screen = app.screen
        assert isinstance(screen, DriftScreen)
        screen.poll()
        await wait_for(pilot, lambda: "STALE" in screen_text(app))
        assert "refused" in screen_text(app)
        assert "drift now: 0.380" in screen_text(app)  # last good data stays
        await pilot.press("1")
        await pilot.pause()
        assert type(app.screen).__name__ == "CommitsScreen"


async def test_space_pauses_live_updates(console, fixed_drift) -> None:
    app = console().make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: len(fixed_drift) > 0)
        await pilot.press("space")
        await pilot.pause(0.2)
        before = len(fixed_drift)
        await pilot.pause(2.5)  # more than two refresh periods
        assert len(fixed_drift) == before
        assert "PAUSED" in screen_text(app)


async def test_data_shift_key_exists_only_in_the_demo(console, fixed_drift) -> None:
    switched: list[bool] = []
    c = console()
    app = c.make_app()
    app.data_shift = switched.append
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: len(fixed_drift) > 0)
        await pilot.press("S")
        await pilot.pause()
        await pilot.press("S")
        await pilot.pause()
    assert switched == [True, False]
    plain = console().make_app()
    async with plain.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        assert plain.screen.check_action("toggle_shift", ()) is False


async def test_a_failing_panel_query_is_named_and_the_rest_still_draws(
    console, monkeypatch
) -> None:
    from dataclasses import replace

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        good = fixed_view(workspace, model, span, now)
        return replace(good, panel_errors={"latency_p95": "parse error: unexpected [bold]"})

    monkeypatch.setattr(data, "drift_view", view)
    app = console().make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: "latency_p95: parse error" in screen_text(app))
        assert "unexpected [bold]" in screen_text(app)
        assert "drift now: 0.380 alert" in screen_text(app)


def _line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


async def test_features_reordered_by_a_refresh_show_the_new_ranking(console, monkeypatch) -> None:
    """The rows are ranks updated in place: when age overtakes income, the table
    shows age first with its new score and band, income second, and no stale cell."""
    swapped = {"now": False}
    overtaken = (
        ("age", DriftScore("psi", 0.52, DriftBand.ALERT, 1800)),
        ("income", DriftScore("psi", 0.07, DriftBand.OK, 1800)),
    )

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        good = fixed_view(workspace, model, span, now)
        return replace(good, features=overtaken) if swapped["now"] else good

    monkeypatch.setattr(data, "drift_view", view)
    app = console().make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: "0.410" in screen_text(app))
        swapped["now"] = True
        await wait_for(pilot, lambda: "0.520" in screen_text(app), tries=400)
        text = screen_text(app)
        age, income = _line_with(text, " age "), _line_with(text, " income ")
        assert "0.520" in age and "alert" in age.split("0.520", 1)[1]
        assert "0.070" in income and "ok" in income.split("0.070", 1)[1]
        assert text.index(" age ") < text.index(" income ")
        assert "0.410" not in text and "0.020" not in text


def live_view(workspace, model, span, now, width=120) -> DriftView:  # type: ignore[no-untyped-def]
    """A live drift: one point every 15 s on the clock's grid up to ``now``, each
    point's value a function of its time only (as the metrics sources give)."""
    step = 15.0
    first = math.ceil((now - span).timestamp() / step)
    times = [k * step for k in range(first, math.floor(now.timestamp() / step) + 1)]
    drift = tuple((t, 0.05 + 0.03 * math.sin(t / 120)) for t in times)
    return replace(
        fixed_view(workspace, model, span, now),
        step=step,
        drift=Series("psi", drift),
        quantiles=(Series("p50", tuple((t, 0.5 + v) for t, v in drift)),),
        markers=(),
    )


def _next_jump() -> int:
    """Return the first jump of the 15-minute range's window at or after FIXED_NOW (unix s)."""
    jump = jump_seconds(timedelta(minutes=15))
    return math.ceil(FIXED_NOW.timestamp() / jump) * jump


async def _open_charts(pilot, app, names: tuple[str, ...]) -> list:  # type: ignore[no-untyped-def]
    """Press ``5`` and return the charts ``names`` once each has drawn its picture."""
    await pilot.press("5")
    await wait_for(pilot, lambda: "drift now" in screen_text(app))
    charts = [app.screen.query_one(f"#{name}") for name in names]
    await wait_for(pilot, lambda: all(c._picture is not None for c in charts))
    return charts


async def test_a_new_point_repaints_only_the_right_end_of_each_chart(console, monkeypatch) -> None:
    """Live, a chart's window stays put while points are added: one more step of
    data changes only the cells at its right end, and a poll with nothing new
    plots nothing. (A chart whose x axis moved with the clock shifted every point,
    so nearly every cell changed at every step.)"""
    monkeypatch.setattr(data, "drift_view", live_view)
    # Two minutes after a jump of the window: the next one is minutes away.
    clock = {"now": datetime.fromtimestamp(_next_jump() + 120, UTC)}
    app = console().make_app()
    app.clock = lambda: clock["now"]
    async with app.run_test(size=(120, 40)) as pilot:
        charts = await _open_charts(pilot, app, ("chart-drift", "chart-prediction"))
        await pilot.pause(1.5)  # another poll at the same time
        before = [(c._picture, c.builds) for c in charts]
        assert all(c.builds == builds for c, (_, builds) in zip(charts, before, strict=True))
        clock["now"] += timedelta(seconds=30)  # two more points
        await wait_for(
            pilot,
            lambda: all(c._picture is not old for c, (old, _) in zip(charts, before, strict=True)),
        )
        for chart, (old, _) in zip(charts, before, strict=True):
            changes = old.changes(chart._picture)
            width = chart.size.width
            assert changes, "the new points are drawn"
            assert len({row for row, _, _ in changes}) <= 4, changes
            assert all(first > width * 2 // 3 for _, first, _ in changes), (width, changes)
            # The lines that did not change were reused, and the picture is still plotext's:
            # the same characters, each with its colours (a blank's text colour aside).
            picture = chart._picture
            fresh = Text.from_ansi(chart._last_built)
            assert picture.text.plain == fresh.plain
            lines = fresh.split("\n", allow_blank=True)
            for row, (line, cells) in enumerate(zip(lines, picture.rows, strict=True)):
                for column, (char, style) in enumerate(cells):
                    want = line.get_style_at_offset(app.console, column)
                    got = style or Style()
                    assert char == line.plain[column]
                    assert got.bgcolor == want.bgcolor, (row, column)
                    assert char == " " or got.color == want.color, (row, column)


def _terminal_writes(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """Record what the app would write to a terminal for each screen update (Pilot runs
    headless and writes nothing): the escape sequences and text of each update."""
    writes: list[str] = []

    def display(app, screen, renderable) -> None:  # type: ignore[no-untyped-def]
        if isinstance(renderable, CompositorUpdate):
            writes.append(renderable.render_segments(app.console))

    monkeypatch.setattr(App, "_display", display)
    return writes


async def test_a_new_point_writes_only_the_right_end_of_each_chart(console, monkeypatch) -> None:
    """A terminal update writes each repainted line of a widget from the widget's left
    edge: a new point at the right end of a chart must not rewrite its y axis, legend
    and every point left of it. What a new point writes starts in the chart's right
    third on every line."""
    monkeypatch.setattr(data, "drift_view", live_view)
    writes = _terminal_writes(monkeypatch)
    clock = {"now": datetime.fromtimestamp(_next_jump() + 120, UTC)}
    app = console().make_app()
    app.clock = lambda: clock["now"]
    async with app.run_test(size=(120, 40)) as pilot:
        charts = await _open_charts(pilot, app, ("chart-drift", "chart-prediction"))
        await pilot.pause(0.5)
        pictures = [c._picture for c in charts]
        writes.clear()
        clock["now"] += timedelta(seconds=30)  # two more points
        await wait_for(
            pilot,
            lambda: all(c._picture is not old for c, old in zip(charts, pictures, strict=True)),
        )
        await pilot.pause(0.2)
        regions = [c.region for c in charts]
    written = "".join(writes)
    moves = [(int(y) - 1, int(x) - 1) for y, x in re.findall(r"\x1b\[(\d+);(\d+)H", written)]
    in_charts = [(y, x, region) for y, x in moves for region in regions if region.contains(x, y)]
    assert in_charts, "the new points are written"
    for y, x, region in in_charts:
        assert x >= region.x + region.width * 2 // 3, (y, x, region)


async def test_a_jump_of_the_window_leaves_the_ticks_in_their_columns(console, monkeypatch) -> None:
    """When the window jumps on, the x axis' ticks stay in their columns and only the
    clock times under them change: a jump rewrites the points, not the axis."""
    monkeypatch.setattr(data, "drift_view", live_view)
    boundary = _next_jump()
    clock = {"now": datetime.fromtimestamp(boundary - 20, UTC)}
    app = console().make_app()
    app.clock = lambda: clock["now"]
    async with app.run_test(size=(120, 40)) as pilot:
        (chart,) = await _open_charts(pilot, app, ("chart-drift",))
        before = chart._picture.text.plain.splitlines()
        clock["now"] = datetime.fromtimestamp(boundary + 20, UTC)
        await wait_for(pilot, lambda: chart._picture.text.plain.splitlines() != before)
        after = chart._picture.text.plain.splitlines()
    axis = next(i for i, line in enumerate(before) if "└" in line)
    assert after[axis] == before[axis], (before[axis], after[axis])
    labels = re.compile(r"\d\d:\d\d")
    assert [m.start() for m in labels.finditer(before[axis + 1])] == [
        m.start() for m in labels.finditer(after[axis + 1])
    ]
    assert labels.findall(before[axis + 1]) != labels.findall(after[axis + 1])


async def _written_at_next_score_mark(  # type: ignore[no-untyped-def]
    console, writes: list[str], line: str, ready: str
) -> list[str]:
    """Open the Drift screen, wait for ``ready`` on it, move the clock to the next score
    mark; return the pieces then written to the terminal (one per cursor move, escapes
    removed) that hold ``line``, the text naming the line that changes."""
    clock = {"now": FIXED_NOW}
    app = console().make_app()
    app.clock = lambda: clock["now"]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: ready in screen_text(app))
        before = _line_with(screen_text(app), line)
        writes.clear()
        clock["now"] += timedelta(seconds=SCORE_SECONDS)
        await wait_for(pilot, lambda: _line_with(screen_text(app), line) != before)
        await pilot.pause(0.2)
    pieces = re.split(r"\x1b\[\d+;\d+H", "".join(writes))
    return [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", one) for one in pieces if line in one]


async def test_a_new_feature_score_writes_its_row_only_up_to_the_score(
    console, monkeypatch
) -> None:
    """A feature's new score (same band) is written from the table's left edge to the
    end of the score's cell: the band after it is not written again."""
    writes = _terminal_writes(monkeypatch)

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        score = 0.3 + (now.timestamp() % 600) / 10000
        features = (("income", DriftScore("psi", score, DriftBand.ALERT, 1800)),)
        return replace(fixed_view(workspace, model, span, now), features=features)

    monkeypatch.setattr(data, "drift_view", view)
    rows = await _written_at_next_score_mark(console, writes, "income", ready=" income ")
    assert rows, "the new score is written"
    assert all("alert" not in row for row in rows), rows


async def test_scores_are_those_of_the_latest_score_mark(console, monkeypatch) -> None:
    """Polled every second, the screen asks for the view as of the latest multiple of
    SCORE_SECONDS once it has a score and a mark has passed: the scores on screen change
    at most once per mark. Before that it asks as of now, so the first score is not late."""
    asked: list[datetime] = []

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        asked.append(now)
        return fixed_view(workspace, model, span, now)

    monkeypatch.setattr(data, "drift_view", view)
    mark = math.floor(FIXED_NOW.timestamp() / SCORE_SECONDS) * SCORE_SECONDS
    clock = {"now": datetime.fromtimestamp(mark + 3, UTC)}
    app = console().make_app()
    app.clock = lambda: clock["now"]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: len(asked) >= 2)
        clock["now"] += timedelta(seconds=SCORE_SECONDS)
        await wait_for(pilot, lambda: asked[-1].timestamp() > mark + 3)
    assert asked[0].timestamp() == mark + 3  # no score on screen yet: as of now
    # The first score is of mark + 3: the mark before it is never asked for.
    assert {t.timestamp() for t in asked[1:]} == {mark + 3, mark + SCORE_SECONDS}


async def test_the_first_score_stays_on_screen_until_the_next_mark(console, monkeypatch) -> None:
    """Once the first score is shown, the polls until the next mark ask as of that score's
    time: the score on screen does not change every second (it did, redrawing the score,
    the features and the charts' last points at each poll until the mark)."""
    asked: list[datetime] = []

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        asked.append(now)
        score = DriftScore("psi", 0.3 + (now.timestamp() % 60) / 1000, DriftBand.ALERT, 1800)
        return replace(fixed_view(workspace, model, span, now), current=score)

    monkeypatch.setattr(data, "drift_view", view)
    mark = math.floor(FIXED_NOW.timestamp() / SCORE_SECONDS) * SCORE_SECONDS
    first = mark + 3
    clock = {"now": datetime.fromtimestamp(first, UTC)}
    app = console().make_app()
    app.clock = lambda: clock["now"]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: "drift now: 0.3" in screen_text(app))
        shown = _line_with(screen_text(app), "drift now")
        for _ in range(int(SCORE_SECONDS) - 4):
            seen = len(asked)
            clock["now"] += timedelta(seconds=1)
            app.screen.poll()
            await wait_for(pilot, lambda: len(asked) > seen)  # noqa: B023
            await pilot.pause()
            assert _line_with(screen_text(app), "drift now") == shown
        clock["now"] = datetime.fromtimestamp(mark + SCORE_SECONDS, UTC)
        await wait_for(pilot, lambda: _line_with(screen_text(app), "drift now") != shown)
    assert {t.timestamp() for t in asked} == {first, mark + SCORE_SECONDS}


async def test_the_first_score_does_not_flip_back_to_not_enough_data(console, monkeypatch) -> None:
    """Data that begin between two marks: the first score is of a time after the last
    mark, whose window had too little data. The screen keeps the score and does not
    ask for that mark (it showed "not enough data" and the score in turn at every
    poll, relaying out the side panel each second, until the next mark)."""
    mark = math.floor(FIXED_NOW.timestamp() / SCORE_SECONDS) * SCORE_SECONDS
    data_from = mark + 2

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        scored = fixed_view(workspace, model, span, now)
        if now.timestamp() < data_from:
            none = DriftScore("psi", None, DriftBand.NOT_ENOUGH_DATA, samples=0)
            return replace(scored, current=none)
        return scored

    monkeypatch.setattr(data, "drift_view", view)
    clock = {"now": datetime.fromtimestamp(mark + 4, UTC)}
    app = console().make_app()
    app.clock = lambda: clock["now"]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: "drift now: 0.380" in screen_text(app))
        screen = app.screen
        for _ in range(4):
            drawn = screen._drawn
            clock["now"] += timedelta(seconds=1)
            screen.poll()
            await wait_for(pilot, lambda: screen._drawn is not drawn)  # noqa: B023
            assert "not enough data" not in screen_text(app)


async def test_until_there_is_a_score_every_poll_asks_as_of_now(console, monkeypatch) -> None:
    """A model without a score yet (too little data) is asked as of each poll's now, so its
    first score shows within a poll of the data being there, not at the next mark."""
    asked: list[datetime] = []

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        asked.append(now)
        scored = fixed_view(workspace, model, span, now)
        if len(asked) < 4:
            none = DriftScore("psi", None, DriftBand.NOT_ENOUGH_DATA, samples=12)
            return replace(scored, current=none)
        return scored

    monkeypatch.setattr(data, "drift_view", view)
    mark = math.floor(FIXED_NOW.timestamp() / SCORE_SECONDS) * SCORE_SECONDS
    clock = {"now": datetime.fromtimestamp(mark + 1, UTC)}
    app = console().make_app()
    app.clock = lambda: clock["now"]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: "not enough data" in screen_text(app))
        for _ in range(3):
            seen = len(asked)
            clock["now"] += timedelta(seconds=1)
            await wait_for(pilot, lambda: len(asked) > seen)  # noqa: B023
        await wait_for(pilot, lambda: "drift now: 0.380" in screen_text(app))
    assert [t.timestamp() for t in asked[:4]] == [mark + 1, mark + 2, mark + 3, mark + 4]


async def test_a_jump_of_the_window_does_not_rewrite_the_y_axis_or_the_legend(
    console, monkeypatch
) -> None:
    """When the window jumps on, the points, a release marker and the clock times move:
    they are written again, not the cells that stay, such as the top of the y axis and
    the legend on the marker label's row (a changed cell rewrote its row from the
    chart's left edge)."""
    boundary = _next_jump()
    release = Marker(datetime.fromtimestamp(boundary - 400, UTC), "rollout r4", "rollout", "x")

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        return replace(live_view(workspace, model, span, now), markers=(release,))

    monkeypatch.setattr(data, "drift_view", view)
    writes = _terminal_writes(monkeypatch)
    clock = {"now": datetime.fromtimestamp(boundary - 20, UTC)}
    app = console().make_app()
    app.clock = lambda: clock["now"]
    async with app.run_test(size=(120, 40)) as pilot:
        (chart,) = await _open_charts(pilot, app, ("chart-drift",))
        await pilot.pause(0.5)
        before = chart._picture.text.plain.splitlines()
        writes.clear()
        clock["now"] = datetime.fromtimestamp(boundary + 20, UTC)
        await wait_for(pilot, lambda: chart._picture.text.plain.splitlines() != before)
        await pilot.pause(0.2)
        region = chart.region
    legend = next(line for line in before if "▞▞ psi" in line)
    assert legend.lstrip().startswith("0.500┤") and "rollout r4" in legend
    pieces = re.split(r"\x1b\[(\d+);(\d+)H", "".join(writes))
    written = [  # what each move writes inside the chart, without the escape sequences
        re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
        for y, x, text in zip(pieces[1::3], pieces[2::3], pieces[3::3], strict=True)
        if region.contains(int(x) - 1, int(y) - 1)
    ]
    assert any(re.search(r"\d\d:\d\d", text) for text in written), written  # the clock times
    assert "rollout r4" in "".join(written), written  # the marker moved
    assert not any("psi" in text or "0.500" in text for text in written), written


async def test_a_new_score_is_written_up_to_its_last_changed_cell(console, monkeypatch) -> None:
    """A new drift score (same band) rewrites the score's line up to the score, not the
    blanks after it to the panel's edge."""
    writes = _terminal_writes(monkeypatch)

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        score = 0.03 + (now.timestamp() % 600) / 10000
        current = DriftScore("psi", score, DriftBand.OK, 1800)
        drift = Series("psi", ((now.timestamp(), score),))  # no drift: no advice lines
        return replace(fixed_view(workspace, model, span, now), current=current, drift=drift)

    monkeypatch.setattr(data, "drift_view", view)
    rows = await _written_at_next_score_mark(console, writes, "drift now", ready="drift now: 0.")
    assert rows, "the new score is written"
    score = re.compile(r"drift now: \d\.\d{3}( ok)?")  # up to the score: no blanks after it
    assert all(score.fullmatch(row.rstrip("\r\n")) for row in rows), rows
