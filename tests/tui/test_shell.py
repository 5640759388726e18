"""Pilot tests of the console shell: navigation, help, palette, banner, one-key rollback."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandPalette
from textual.widgets import Static

from core.config import Config
from core.domain import Outcome
from core.journal import Journal
from core.services.workspace import Workspace
from tui.app import MrcApp
from tui.screens.commits import CommitsScreen
from tui.screens.confirm import RollbackConfirm
from tui.screens.drift import DriftScreen
from tui.screens.help import HelpScreen
from tui.screens.rollbacks import RollbacksScreen
from tui.screens.rollouts import RolloutsScreen
from tui.screens.tests import TestsScreen
from tui.widgets.banner import ContextBanner
from tui.widgets.vtable import VirtualTable


def screen_text(app: MrcApp) -> str:
    """Everything the visible screen shows, as plain text."""
    return "\n".join(
        "".join(segment.text for segment in line) for line in app.screen._compositor.render_strips()
    )


async def wait_for(pilot, predicate, tries: int = 100) -> None:  # type: ignore[no-untyped-def]
    for _ in range(tries):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached")


async def test_number_keys_switch_screens(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        expected = [CommitsScreen, TestsScreen, RolloutsScreen, RollbacksScreen, DriftScreen]
        for key, screen in zip("12345", expected, strict=True):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, screen)


async def test_jump_prompt_opens_screen_by_prefix(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("colon")
        await pilot.pause()
        await pilot.press(*"rollb", "enter")
        await pilot.pause()
        assert isinstance(app.screen, RollbacksScreen)


async def test_help_lists_every_binding(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(100, 60)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for description in ("Roll the selected model back", "Run the tests here", "Range"):
            assert description in text
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, CommitsScreen)


async def test_palette_opens_a_screen(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"Screen: Drift")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, DriftScreen)


async def test_read_only_banner_and_no_rollback_key(console) -> None:
    c = console(read_only=True)
    app = c.make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        banner = app.screen.query_one(ContextBanner)
        assert "READ-ONLY" in str(banner.render())
        await pilot.press("u")
        await pilot.pause()
        assert not isinstance(app.screen, RollbackConfirm)
        assert c.targets[("churn", "prod-eu")].calls == []


async def test_production_banner_is_red(console) -> None:
    app = console(production=True).make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        banner = app.screen.query_one(ContextBanner)
        assert banner.has_class("-production")
        assert "PRODUCTION: churn/prod-eu" in str(banner.render())


async def test_empty_configuration_says_what_to_configure(tmp_path: Path) -> None:
    workspace = Workspace(Config(), journal=Journal(tmp_path / "j.sqlite3"), state_dir=tmp_path)
    app = MrcApp(workspace, animate=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "No model is configured" in screen_text(app)
        await pilot.press("3")
        await pilot.pause()
        assert "No target is configured" in screen_text(app)
        await pilot.press("5")
        await pilot.pause()
        assert "No metrics are configured" in screen_text(app)


async def test_commits_screen_lists_history(console) -> None:
    c = console()
    app = c.make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(VirtualTable)
        await wait_for(pilot, lambda: len(table.rows) == len(c.repo_shas))
        assert table.rows[0].sha == c.repo_shas[-1]
        assert "change 11" in screen_text(app)


async def test_one_key_rollback_confirms_and_journals(console) -> None:
    c = console()
    target = c.targets[("churn", "prod-eu")]
    app = c.make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: ("churn", "prod-eu") in app._previews)
        await pilot.press("u")
        await pilot.pause()
        assert isinstance(app.screen, RollbackConfirm)
        summary = str(app.screen.query_one("#summary", Static).render())
        assert "3" in summary and "2" in summary
        assert c.repo_shas[-2][:8] in summary  # target commit
        await pilot.press("r")
        await pilot.press(*"bad drift")
        await pilot.press("enter")
        await wait_for(pilot, lambda: target.calls == [("rollback", 2)])
        await app.workers.wait_for_complete()
    entries = c.workspace.journal.entries(model="churn")
    assert [(e.action, e.outcome, e.reason) for e in entries] == [
        ("rollback", Outcome.DONE, "bad drift")
    ]
    assert target.status().revision == 4
    assert target.status().commit == c.repo_shas[-2]


async def test_rollback_can_be_cancelled(console) -> None:
    c = console()
    app = c.make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: ("churn", "prod-eu") in app._previews)
        await pilot.press("u")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, CommitsScreen)
    assert c.targets[("churn", "prod-eu")].calls == []
    assert c.workspace.journal.entries(model="churn") == []


async def test_failed_rollback_is_journalled_as_failed(console) -> None:
    from core.errors import Conflict

    c = console()
    target = c.targets[("churn", "prod-eu")]
    target.fail_with = Conflict("deployment changed meanwhile: image is now x:9")
    app = c.make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: ("churn", "prod-eu") in app._previews)
        await pilot.press("u")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(target.calls))
        await app.workers.wait_for_complete()
    [entry] = c.workspace.journal.entries(model="churn")
    assert entry.outcome is Outcome.FAILED
    assert "changed meanwhile" in entry.error


async def test_set_image_on_production_needs_the_model_name(console) -> None:
    from tui.screens.confirm import TypedConfirm

    c = console(production=True)
    target = c.targets[("churn", "prod-eu")]
    app = c.make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app.screen.query_one("#rollouts-table").row_count == 2)
        await pilot.press("s")
        await pilot.pause()
        field = app.screen.query_one("#rollouts-image")
        field.value = "registry.local/churn:new"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, TypedConfirm)
        await pilot.press(*"fraud", "enter")  # the wrong name does nothing
        await pilot.pause()
        assert isinstance(app.screen, TypedConfirm)
        assert target.calls == []
        typed = app.screen.query_one("#typed")
        typed.value = ""  # type: ignore[attr-defined]
        await pilot.press(*"churn", "enter")
        await wait_for(pilot, lambda: bool(target.calls))
        await app.workers.wait_for_complete()
    [(action, artifact)] = target.calls
    assert action == "rollout" and artifact.image == "registry.local/churn:new"  # type: ignore[attr-defined]
    [entry] = c.workspace.journal.entries(model="churn")
    assert entry.action == "rollout"


async def test_rollback_refused_when_the_target_changed_after_review(console) -> None:
    c = console()
    target = c.targets[("churn", "prod-eu")]
    app = c.make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: ("churn", "prod-eu") in app._previews)
        await pilot.press("u")
        await pilot.pause()
        for _ in target.rollback(1):  # another operator acts while the dialog is open
            pass
        target.calls.clear()
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(target.calls))
        await app.workers.wait_for_complete()
    [entry] = c.workspace.journal.entries(model="churn")
    assert entry.outcome is Outcome.FAILED
    assert "was 3" in entry.error
    assert target.status().revision == 4  # what the other operator did stays


async def test_guard_state_shows_on_rollouts_and_drift(console, monkeypatch) -> None:
    from core.services.guard import ALERT, GuardEvent
    from tests.tui.test_drift_screen import fixed_view
    from tui import data

    monkeypatch.setattr(data, "drift_view", fixed_view)
    c = console()
    c.workspace.note_guard(
        GuardEvent(ALERT, "churn", "prod-eu", check="drift", value=0.4, limit=0.25,
                   message="drift 0.40 > 0.25")
    )  # fmt: skip
    app = c.make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: "guard: ALERT: u rolls back" in screen_text(app))
        await pilot.press("5")
        await wait_for(pilot, lambda: "guard: ALERT" in screen_text(app))
        assert "drift 0.40 > 0.25" in screen_text(app)


async def test_disabled_keys_say_why(console) -> None:
    c = console()
    app = c.make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("m")  # fraud: no image, so nothing to build
        await pilot.pause()
        await pilot.press("2", "1")
        await pilot.pause()
        assert "b: fraud has no `image` in its configuration" in screen_text(app)
        assert app.screen.check_action("build", ()) is None


async def test_quitting_during_a_rollback_records_what_is_live(console) -> None:
    """`q` while a rollback is being followed cancels it and waits for the journal:
    the row says `unknown` with the revision now live, never a dangling `intent`."""
    import threading

    c = console()
    target = c.targets[("churn", "prod-eu")]
    target.hold = threading.Event()
    app = c.make_app()
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: ("churn", "prod-eu") in app._previews)
            await pilot.press("u")
            await pilot.pause()
            await pilot.press("y")
            await wait_for(pilot, target.holding.is_set)  # applied, now being followed
            await pilot.press("q")
            await wait_for(pilot, lambda: app.return_code is not None)
        [entry] = c.workspace.journal.entries(model="churn")
    finally:
        target.hold.set()  # never leave the worker thread waiting
    assert (entry.action, entry.outcome) == ("rollback", Outcome.UNKNOWN), entry
    assert entry.outcome_unknown and "verify" in entry.error
    assert (entry.from_revision, entry.details["live_revision"]) == ("3", "4")
    assert entry.details["live_commit"] == c.repo_shas[-2]


async def test_rollback_from_the_history_is_refused_when_the_target_changed(console) -> None:
    """Enter on a revision of the Rollbacks screen (the preview is read for the dialog,
    not taken from the warm cache): a change made while the dialog is open is a conflict."""
    from textual.widgets import DataTable

    c = console()
    target = c.targets[("churn", "prod-eu")]
    app = c.make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("4")
        table = app.screen.query_one("#rollbacks-history", DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.press("down", "enter")  # revision 2, below the live one
        await wait_for(pilot, lambda: isinstance(app.screen, RollbackConfirm))
        for _ in target.rollback(1):  # another operator acts while the dialog is open
            pass
        target.calls.clear()
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(target.calls))
        await app.workers.wait_for_complete()
    [entry] = c.workspace.journal.entries(model="churn")
    assert entry.outcome is Outcome.FAILED and "was 3" in entry.error
    assert target.status().revision == 4  # what the other operator did stays


async def test_enter_on_the_rollouts_table_opens_the_detail(console) -> None:
    """`enter` on a row of the Rollouts screen opens its pods and events (the focused
    table must not swallow the key)."""
    from tui.screens.rollouts import TargetDetailScreen

    app = console().make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app.screen.query_one("#rollouts-table").row_count == 2)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TargetDetailScreen))
