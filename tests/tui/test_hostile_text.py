"""Text from outside is shown literally and stays inert, one test per kind of hostility.

Commit subjects come from a real repository (tests/support/repos.py writes the
bytes with git); test output goes through the same path as a live test run.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.config import parse
from core.journal import Journal
from core.services.workspace import Workspace
from tests.support.repos import make_hostile_repo
from tests.tui.test_shell import screen_text, wait_for
from tui.app import MrcApp
from tui.runs import LiveOperation
from tui.widgets.vtable import VirtualTable


@pytest.fixture
def hostile(tmp_path: Path):  # type: ignore[no-untyped-def]
    repo = make_hostile_repo(tmp_path / "repo")
    config = parse(
        f'[[model]]\nname = "m"\nrepo = "{repo.path}"\ntest_command = "true"\n',
        source=Path("/etc/mrc/hostile.toml"),
    )
    workspace = Workspace(config, journal=Journal(tmp_path / "j.sqlite3"), state_dir=tmp_path)
    return MrcApp(workspace, animate=False)


async def _commits(pilot, app) -> str:  # type: ignore[no-untyped-def]
    table = app.screen.query_one(VirtualTable)
    await wait_for(pilot, lambda: len(table.rows) == 5)
    await pilot.pause(0.1)
    return screen_text(app)


async def _still_running(pilot, app) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("2")
    await pilot.pause()
    assert type(app.screen).__name__ == "TestsScreen"
    assert app.is_running


async def test_markup_in_a_subject_is_literal_and_not_clickable(hostile) -> None:
    async with hostile.run_test(size=(200, 24)) as pilot:
        text = await _commits(pilot, hostile)
        assert "[bold]markup[/bold] and [@click=app.quit]click me[/]" in text
        await pilot.click(VirtualTable, offset=(120, 5))
        await _still_running(pilot, hostile)


async def test_ansi_and_osc_sequences_are_stripped(hostile) -> None:
    async with hostile.run_test(size=(200, 24)) as pilot:
        text = await _commits(pilot, hostile)
        assert "ansi ␛red␛ and osc ␛ done" in text
        assert "\x1b" not in text and "pwned title" not in text


async def test_very_long_subject_is_cut_to_the_column(hostile) -> None:
    async with hostile.run_test(size=(120, 24)) as pilot:
        text = await _commits(pilot, hostile)
        line = next(row for row in text.splitlines() if "long xxxx" in row)
        assert len(line) <= 120
        assert "…" in line


async def test_invalid_utf8_is_replaced_not_fatal(hostile) -> None:
    async with hostile.run_test(size=(200, 24)) as pilot:
        text = await _commits(pilot, hostile)
        assert "invalid utf-8" in text
        assert "\ufffd" in text or "bytes" in text
        await _still_running(pilot, hostile)


async def test_right_to_left_text_is_kept(hostile) -> None:
    async with hostile.run_test(size=(200, 24)) as pilot:
        text = await _commits(pilot, hostile)
        assert "\u05e9\u05dc\u05d5\u05dd" in text
        assert "\u0645\u0631\u062d\u0628\u0627" in text


def _feed(app: MrcApp, lines: list[str]) -> LiveOperation:
    """Register a running test operation whose output is ``lines``."""
    from core.domain import RunStatus, TestRun

    op = LiveOperation(kind="test", model="m", commit="0" * 40)
    op.run = TestRun(id=1, model="m", commit="0" * 40, status=RunStatus.RUNNING)
    for line in lines:
        op.append(line)
    app.ops.remember(op)
    return op


async def test_test_output_markup_and_escapes_are_inert(hostile) -> None:
    async with hostile.run_test(size=(120, 24)) as pilot:
        _feed(
            hostile,
            [
                "[@click=app.quit]quit[/] [bold]not bold[/bold]",
                "\x1b[2J\x1b]0;owned\x07cleared?",
                "x" * 10_000,
                "bad \udcff bytes",
                "\u05e9\u05dc\u05d5\u05dd",
            ],
        )
        await pilot.press("2")
        screen = hostile.screen
        screen.flush_live_output()  # type: ignore[attr-defined]
        await pilot.pause(0.2)
        text = screen_text(hostile)
        assert "[@click=app.quit]quit[/] [bold]not bold[/bold]" in text
        assert "cleared?" in text and "owned" not in text
        assert "\u05e9\u05dc\u05d5\u05dd" in text
        await pilot.press("1")
        await pilot.pause()
        assert hostile.is_running


async def test_log_view_stays_responsive_with_100k_lines(hostile) -> None:
    async with hostile.run_test(size=(120, 24)) as pilot:
        op = _feed(hostile, [f"line {i} of a long test log" for i in range(100_000)])
        await pilot.press("2")
        screen = hostile.screen
        screen.flush_live_output()  # type: ignore[attr-defined]
        await pilot.pause()
        assert "line 99999 of a long test log" in screen_text(hostile)
        op.append("one more line")
        screen.flush_live_output()  # type: ignore[attr-defined]
        started = time.perf_counter()
        await pilot.press("1")
        await pilot.pause()
        switched = time.perf_counter() - started
        assert type(hostile.screen).__name__ == "CommitsScreen"
        print(f"screen switch with a 100k-line log mounted: {switched * 1000:.0f} ms")


# -- one hostile value in every other source: annotations, change-causes, metric
# labels, error notifications, search terms ------------------------------------

#: ESC/OSC-8 hyperlink, CSI blink, BEL, markup, an RTL override and 10,000 characters.
HOSTILE = (
    "\x1b]8;;https://evil.example/\x07link\x1b]8;;\x07 \x1b[5mblink\x1b[0m \x07bell "
    "[@click=app.quit]q[/] [/docs] \u202eevil\u202c " + "y" * 10_000
)


#: Short enough to be drawn whole as a legend entry and a marker label.
SHORT = "\x1b]8;;https://evil.example/\x07ln\x1b]8;;\x07\x1b[5mbl\x1b[0m\x07"


def _rendered(app: MrcApp) -> list:  # type: ignore[type-arg]
    """Every segment the visible screen (with its notifications) sends to the terminal."""
    return [seg for line in app.screen._compositor.render_strips() for seg in line]


def _assert_inert(app: MrcApp) -> None:
    """No ESC or BEL, no hyperlink and no blinking text reaches the terminal."""
    for segment in _rendered(app):
        assert "\x1b" not in segment.text and "\x07" not in segment.text, repr(segment.text)
        if segment.style is not None:
            assert not segment.style.blink and not segment.style.link, segment
    assert app.is_running


async def test_hostile_commit_annotation_and_change_cause_are_inert(console) -> None:
    from dataclasses import replace

    c = console()
    target = c.targets[("churn", "prod-eu")]
    target.revisions = [
        replace(r, commit="\x1b[5m\x07" + r.commit, change_cause=HOSTILE) for r in target.revisions
    ]
    app = c.make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: "complete" in screen_text(app))
        _assert_inert(app)
        await pilot.press("4")
        await wait_for(pilot, lambda: "link" in screen_text(app))
        assert "␛" in screen_text(app)  # shown as removed, not interpreted
        _assert_inert(app)


async def test_hostile_metric_labels_and_marker_labels_are_inert(console, monkeypatch) -> None:
    from dataclasses import replace

    from core.domain import Marker, Series
    from tests.tui.test_drift_screen import RELEASE_AT, fixed_view
    from tui import data

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        good = fixed_view(workspace, model, span, now)
        return replace(
            good,
            drift=Series(SHORT, good.drift.points),
            quantiles=tuple(Series(HOSTILE, s.points) for s in good.quantiles),
            markers=(Marker(RELEASE_AT, SHORT, "rollout", "prod-eu"),),
            features=((HOSTILE, good.features[0][1]),),
        )

    monkeypatch.setattr(data, "drift_view", view)
    app = console().make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: "drift now" in screen_text(app))
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "link" in text and text.count("␛ln␛␛bl␛␇") >= 2  # legend and marker label
        _assert_inert(app)


async def test_hostile_error_notification_is_inert(console) -> None:
    from core.errors import OperationFailed

    c = console()
    c.targets[("churn", "prod-eu")].fail_with = OperationFailed(
        "container exited; last log lines: " + HOSTILE
    )
    app = c.make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: ("churn", "prod-eu") in app._previews)
        await pilot.press("u")
        await pilot.pause(0.2)
        await pilot.press("y")
        await wait_for(pilot, lambda: any("exited" in n.message for n in app._notifications))
        # What the toast renders (markup=False keeps ESC bytes: only the text can be inert).
        [notice] = [n.message for n in app._notifications if "exited" in n.message]
        assert "\x1b" not in notice and "\x07" not in notice and "\u202e" not in notice
        assert "[@click=app.quit]q[/]" in notice and "␛" in notice
        _assert_inert(app)


@pytest.mark.parametrize("term", ["[/docs]", "[skip ci]", "[@click=app.quit]x[/]"])
async def test_hostile_search_term_is_shown_literally(hostile, term) -> None:
    from textual.widgets import Input

    async with hostile.run_test(size=(120, 24)) as pilot:
        await _commits(pilot, hostile)
        await pilot.press("slash")
        await pilot.pause()
        field_ = hostile.screen.query_one("#commits-search", Input)
        field_.value = term
        await pilot.press("enter")
        await wait_for(pilot, lambda: "No commit matches" in screen_text(hostile))
        shown = screen_text(hostile)
        assert term in shown
        _assert_inert(hostile)
