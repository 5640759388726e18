"""SVG snapshots of the console with deterministic data (fixed repo, clock and journal).

Regenerate after an intended UI change with ``pytest tests/tui --snapshot-update``
and review the SVGs in ``tests/tui/__snapshots__``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from core import journal as journal_module
from core.audit import Actor
from core.domain import RunStatus, TestFailure, TestRun
from tests.tui.conftest import FIXED_NOW
from tui.widgets.vtable import VirtualTable


async def _wait(pilot, predicate, tries: int = 200) -> None:  # type: ignore[no-untyped-def]
    for _ in range(tries):
        if predicate():
            break
        await pilot.pause(0.05)
    await pilot.pause(0.2)


def _commits_loaded(pilot) -> bool:  # type: ignore[no-untyped-def]
    tables = pilot.app.screen.query(VirtualTable)
    return bool(tables) and len(tables.first().rows) > 0


def _record_runs(workspace, shas) -> None:  # type: ignore[no-untyped-def]
    start = FIXED_NOW - timedelta(hours=2)
    workspace.journal.record_test_run(
        TestRun(
            id=None,
            model="churn",
            commit=shas[-1],
            status=RunStatus.FAILED,
            started_at=start,
            finished_at=start + timedelta(seconds=42),
            passed=11,
            failed=1,
            metrics={"accuracy": 0.71},
            failures=[TestFailure("test_quality", "assert 0.71 >= 0.8", "failure")],
        )
    )
    workspace.journal.record_test_run(
        TestRun(
            id=None,
            model="churn",
            commit=shas[-2],
            status=RunStatus.PASSED,
            started_at=start - timedelta(hours=1),
            finished_at=start - timedelta(hours=1) + timedelta(seconds=40),
            passed=12,
            metrics={"accuracy": 0.91},
        )
    )


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_commits_screen(console, snap_compare, size) -> None:
    """Commits screen: banner with config and targets, 12 commits newest first with
    tags v1.1 and v1.0, test badges (✗ on the newest, ✓ on the one before), the
    deployed badge prod-eu on the newest commit, and the footer keys."""
    c = console()
    _record_runs(c.workspace, c.repo_shas)

    async def loaded(pilot) -> None:  # type: ignore[no-untyped-def]
        await _wait(pilot, lambda: _commits_loaded(pilot))
        await _wait(pilot, lambda: bool(pilot.app.screen.badges.tests))

    assert snap_compare(c.make_app(), terminal_size=size, run_before=loaded)


def test_tests_screen(console, snap_compare) -> None:
    """Tests screen: two recorded runs (failed 11/1 with accuracy 0.71, passed 12 with
    accuracy 0.91), the newest selected; its stored output is unavailable."""
    c = console()
    _record_runs(c.workspace, c.repo_shas)

    async def opened(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("2")
        await _wait(pilot, lambda: pilot.app.screen.query_one("#tests-table").row_count == 2)

    assert snap_compare(c.make_app(), terminal_size=(80, 24), run_before=opened)


def test_rollouts_screen(console, snap_compare) -> None:
    """Rollouts screen: churn/prod-eu and fraud/staging, both revision 3, 3/3 ready,
    complete; the status line under the table names the selected target."""
    c = console()

    async def opened(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("3")
        await _wait(pilot, lambda: pilot.app.screen.query_one("#rollouts-table").row_count == 2)

    assert snap_compare(c.make_app(), terminal_size=(80, 24), run_before=opened)


def test_rollbacks_screen(console, snap_compare, monkeypatch) -> None:
    """Rollbacks screen: churn/prod-eu history (revision 3 live, 2 and 1 kept) and two
    journal rows: a done rollback with its reason and an unknown outcome asking to verify."""
    monkeypatch.setattr(journal_module, "_now", lambda: FIXED_NOW - timedelta(minutes=30))
    c = console()
    journal = c.workspace.journal
    ada = Actor(user="ada", ssh_client="10.1.2.3", host="bastion", pid=os.getpid())
    done = journal.begin("churn", "prod-eu", "rollback", "3", "2", reason="p99", actor=ada)
    journal.finish(done, "done")
    journal.begin("churn", "prod-eu", "restart", "3", "3", reason="[bold]stuck[/]", actor=ada)

    async def opened(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("4")
        await _wait(pilot, lambda: pilot.app.screen.query_one("#rollbacks-journal").row_count == 2)

    assert snap_compare(c.make_app(), terminal_size=(80, 24), run_before=opened)


def test_rollback_confirm_dialog(console, snap_compare) -> None:
    """The one-key rollback dialog over the Commits screen: churn on prod-eu,
    revision 3 -> 2, images and commits before/after, the image diff, the reason
    field and the keys y / n / r."""
    c = console()

    async def pressed(pilot) -> None:  # type: ignore[no-untyped-def]
        await _wait(pilot, lambda: ("churn", "prod-eu") in pilot.app._previews)
        await _wait(pilot, lambda: _commits_loaded(pilot))
        await pilot.press("u")
        await pilot.pause(0.3)

    assert snap_compare(c.make_app(), terminal_size=(80, 24), run_before=pressed)


def test_help_screen(console, snap_compare) -> None:
    """Help: the global keys (1-5, u, m, :, ?, q) then each screen's keys."""
    c = console()

    async def pressed(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("question_mark")
        await pilot.pause(0.3)

    assert snap_compare(c.make_app(), terminal_size=(80, 24), run_before=pressed)


def test_build_progress_view(console, snap_compare) -> None:
    """Build progress view of churn at the newest commit: finished steps (context,
    build steps), the layer being pushed with its percentage, the progress bar and
    the tail of the build log; the daemon's text is shown literally."""
    from core.domain import Progress
    from tui.runs import LiveOperation
    from tui.screens.progress import OperationScreen

    c = console()
    op = LiveOperation(kind="build", model="churn", commit=c.repo_shas[-1])
    for progress in (
        Progress("context", "git archive of d0974be7: 12 files, 40 KiB"),
        Progress("build", "Step 1/4 : FROM mrc-python-base:bookworm"),
        Progress("build", 'Step 4/4 : CMD ["python3", "server.py"]'),
        Progress("tag", "registry.local/churn:d0974be7"),
        Progress("push", "Pushing", 0.62, detail="layer 3f2a9c1e"),
    ):
        op.add_step(progress)
    for line in (
        "Step 1/4 : FROM mrc-python-base:bookworm",
        "[bold]Successfully[/] built 3f2a9c1e",
    ):
        op.append(line)

    async def opened(pilot) -> None:  # type: ignore[no-untyped-def]
        pilot.app.push_screen(OperationScreen(op, live=False))
        await pilot.pause(0.3)

    assert snap_compare(c.make_app(), terminal_size=(80, 24), run_before=opened)
