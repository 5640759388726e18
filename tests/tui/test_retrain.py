"""``R``: retraining from the console, pressed where the README says it works.

Refused in read-only mode and disabled (with the reason) without a
``[model.retrain]`` table; otherwise ``y`` starts it, the progress view
streams the command's output, ``x`` cancels it (journalled), and quitting
mid-run never leaves an ``intent`` row. The Drift screen advises ``R`` or
``u`` from the chart's own data, and the Commits screen lists retrained
commits first, marked, ready for ``d``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from textual.widgets import Log

from core.config import parse
from core.domain import DriftBand, DriftScore, Marker, Outcome, Series
from core.journal import Journal
from core.metrics.model import DriftView
from core.services.workspace import Workspace
from tests.support.repos import commit_files, git, make_history_repo
from tests.support.targets import FIXED_NOW, ScriptedTarget, scripted_history
from tests.tui.test_shell import screen_text, wait_for
from tui import data
from tui.app import MrcApp
from tui.screens.commits import CommitsScreen
from tui.screens.confirm import YesConfirm
from tui.screens.drift import DriftScreen
from tui.screens.help import HelpScreen
from tui.screens.progress import OperationScreen
from tui.screens.rollouts import RolloutsScreen
from tui.widgets.vtable import VirtualTable

CONFIG = """
[[model]]
name = "churn"
repo = "{repo}"
test_command = "true"

  [[model.target]]
  name = "prod-eu"
  kind = "kubernetes"
  context = "prod-eu"
  deployment = "churn"

  [model.metrics]
  source = "scrape"
  url = "http://127.0.0.1:9/metrics"
  prediction_histogram = "model_prediction_score"
{retrain}
"""

#: A command that prints, then waits to be stopped (sleep is what it does, not a wait here).
SLOW = """
  [model.retrain]
  command = "echo fitting on recent data; echo second line; exec sleep 600"
  executor = "local"
  window = "30s"
"""


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., tuple[MrcApp, Workspace, list[str]]]:
    """Return a factory of consoles on a 12-commit repository (``retrain=``, ``read_only=``)."""
    repo = make_history_repo(tmp_path / "repo", commits=12)
    counter = iter(range(100))

    def build(
        *, retrain: str = SLOW, read_only: bool = False
    ) -> tuple[MrcApp, Workspace, list[str]]:
        n = next(counter)
        config = parse(
            CONFIG.format(repo=repo.path, retrain=retrain),
            source=Path(f"/etc/mrc/retrain-{n}.toml"),
        )
        if read_only:
            config = config.with_read_only(True)
        state = tmp_path / f"state-{n}"
        state.mkdir()
        workspace = Workspace(config, journal=Journal(state / "journal.sqlite3"), state_dir=state)
        target = ScriptedTarget("churn", "prod-eu", revisions=scripted_history("churn", repo.shas))
        workspace._targets[("churn", "prod-eu")] = target  # type: ignore[assignment]
        app = MrcApp(workspace, clock=lambda: FIXED_NOW, animate=False)
        return app, workspace, repo.shas

    return build


def notices(app: MrcApp) -> list[str]:
    return [n.message for n in app._notifications]


def retrain_rows(workspace: Workspace) -> list:  # type: ignore[type-arg]
    return workspace.journal.entries("churn", action="retrain")


async def open_drift(pilot, app: MrcApp) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("5")
    await wait_for(pilot, lambda: isinstance(app.screen, DriftScreen), tries=400)
    await pilot.pause()


# -- refused, disabled -----------------------------------------------------------


@pytest.mark.parametrize("key", ["5", "3"], ids=["drift", "rollouts"])
async def test_R_is_refused_in_read_only_mode_before_any_dialog(make, key: str) -> None:  # type: ignore[no-untyped-def]
    app, workspace, _ = make(read_only=True)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.press(key)
        screen = DriftScreen if key == "5" else RolloutsScreen
        await wait_for(pilot, lambda: isinstance(app.screen, screen), tries=400)
        await pilot.pause()
        assert "Retrain" not in screen_text(app)  # removed from the footer
        await pilot.press("R")
        await wait_for(pilot, lambda: any("retrain refused: read-only" in n for n in notices(app)))
        assert isinstance(app.screen, screen)  # no dialog opened
    assert retrain_rows(workspace) == []


async def test_R_without_a_retrain_table_is_disabled_and_says_why(make) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = make(retrain="")
    reason = "churn has no [model.retrain] table"
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await open_drift(pilot, app)
        await wait_for(pilot, lambda: f"R: {reason}" in screen_text(app))  # the reasons line
        await pilot.press("R")
        await wait_for(pilot, lambda: any(reason in n for n in notices(app)))
        assert isinstance(app.screen, DriftScreen)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        assert any(reason in why for why in help_screen.reasons["Drift screen"].values())


# -- the progress view, cancel, quit -----------------------------------------------


async def start(pilot, app: MrcApp, reason: str = "") -> OperationScreen:  # type: ignore[no-untyped-def]
    """Press R on the Drift screen, optionally type a reason, confirm; return the progress view."""
    await open_drift(pilot, app)
    await pilot.press("R")
    await wait_for(pilot, lambda: isinstance(app.screen, YesConfirm), tries=200)
    assert "Retrain?" in screen_text(app)
    if reason:
        await pilot.press("r", *reason, "enter")
    else:
        await pilot.press("y")
    await wait_for(pilot, lambda: isinstance(app.screen, OperationScreen), tries=200)
    screen = app.screen
    assert isinstance(screen, OperationScreen)
    return screen


async def test_progress_shows_the_output_and_x_cancels_it_journalled(make) -> None:  # type: ignore[no-untyped-def]
    app, workspace, _ = make()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        view = await start(pilot, app, reason="inputs moved")
        log = view.query_one(Log)

        def output() -> str:
            view.update_view()  # the snapshot console draws on demand (no timers)
            return "\n".join(str(line) for line in log.lines)

        await wait_for(pilot, lambda: "second line" in output(), tries=600)
        assert "fitting on recent data" in output()
        assert "retrain of churn" in screen_text(app) and "running" in screen_text(app)
        await pilot.press("x")
        await wait_for(pilot, lambda: view.op.finished, tries=600)
        view.update_view()
        await pilot.pause()
        assert "cancel" in view.op.error
        assert "fitting on recent data" in output()  # the output is kept
    rows = retrain_rows(workspace)
    assert len(rows) == 1 and rows[0].outcome is Outcome.FAILED
    assert "cancel" in rows[0].error and rows[0].reason == "inputs moved"


async def test_quitting_mid_run_closes_the_journal_row(make) -> None:  # type: ignore[no-untyped-def]
    app, workspace, _ = make()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        view = await start(pilot, app)
        await wait_for(pilot, lambda: view.op.total >= 2, tries=600)
        assert [row.outcome for row in retrain_rows(workspace)] == [Outcome.INTENT]
        await pilot.press("escape", "q")  # hide the panel, quit
        await wait_for(pilot, lambda: app.return_code is not None, tries=600)
    rows = retrain_rows(workspace)
    assert len(rows) == 1 and rows[0].outcome is not Outcome.INTENT


# -- the advice -------------------------------------------------------------------


RISE_AT = FIXED_NOW - timedelta(minutes=6)


def rising_view(marker_at: timedelta | None) -> Callable[..., DriftView]:
    """Drift flat, then high from 6 minutes ago; a rollout marker ``marker_at`` before that."""

    def view(workspace, model, span, now, width=120):  # type: ignore[no-untyped-def]
        start = now - span
        times = [start.timestamp() + 60 * i for i in range(int(span.total_seconds() // 60) + 1)]
        points = tuple((t, 0.03 if t < RISE_AT.timestamp() else 0.4) for t in times)
        markers = ()
        if marker_at is not None:
            markers = (Marker(RISE_AT - marker_at, "rollout r4", "rollout", "prod-eu"),)
        return DriftView(
            start=start, end=now, step=60.0, method="psi", warn=0.1, alert=0.25, window=300.0,
            drift=Series("psi", points), current=DriftScore("psi", 0.4, DriftBand.ALERT, 900),
            reference="training", markers=markers, fetched_at=now,
        )  # fmt: skip

    return view


@pytest.mark.parametrize(
    ("marker_at", "advice"),
    [(timedelta(minutes=2), "u roll back"), (None, "R retrain")],
    ids=["at-a-release", "without-a-release"],
)
async def test_the_drift_screen_advises_from_its_own_data(
    make, monkeypatch, marker_at: timedelta | None, advice: str
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(data, "drift_view", rising_view(marker_at))
    app, _, _ = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_drift(pilot, app)
        await wait_for(pilot, lambda: f"advice: {advice}" in screen_text(app), tries=400)
        other = "R retrain" if advice.startswith("u") else "u roll back"
        assert other not in screen_text(app)


# -- the Commits screen --------------------------------------------------------------


async def test_a_retrained_commit_is_listed_first_marked_and_d_releases_it(make) -> None:  # type: ignore[no-untyped-def]
    app, workspace, shas = make()
    repo = workspace.config.models[0].repo
    # What a retrain leaves: a commit on a retrain/ branch, off an older commit, not on HEAD.
    git(repo, "checkout", "-q", "-b", "retrain/churn/20261120T150000Z", shas[5])
    retrained = commit_files(
        repo, {"model/weights.json": "{}\n"}, "Retrain churn on recent data\n", when=2_000_000_000
    )
    git(repo, "checkout", "-q", "main")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CommitsScreen), tries=200)
        table = app.screen.query_one(VirtualTable)
        await wait_for(pilot, lambda: bool(table.rows), tries=400)
        await pilot.pause()
        first = table.rows[0]
        assert first is not None and first.sha == retrained
        assert len(table.rows) == 13  # the 12 commits of main follow it
        assert table.rows[1].sha == shas[-1]  # type: ignore[union-attr]
        row = next(line for line in screen_text(app).splitlines() if retrained[:8] in line)
        assert "retrained" in row and "Retrain churn on recent data" in row
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, YesConfirm), tries=200)
        assert f"Release {retrained[:8]} of churn" in screen_text(app)
