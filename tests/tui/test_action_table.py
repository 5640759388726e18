"""The table of mutating actions, walked key by key through the console.

Every console key that changes something is pressed on the screen where it
is documented: under ``--read-only`` it is refused with the table's reason
and no dialog opens; otherwise the dialog is the one the table asks for
(none, ``y``, the model's name typed on a production target).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.domain import RunStatus, TestRun
from core.services import action_table
from core.services.action_table import ACTIONS, Confirmation
from core.services.workspace import Workspace
from tests.support.targets import FIXED_NOW
from tests.tui.test_shell import wait_for
from tui.app import MUTATING_ACTIONS, SCREENS_ORDER, MrcApp, screen_class
from tui.screens.base import Dialog, MrcScreen
from tui.screens.confirm import RollbackConfirm, TypedConfirm, YesConfirm
from tui.widgets.vtable import VirtualTable

#: (screen, keys, console action): every key of the console that changes something.
KEYS = [
    ("commits", ("t",), "run_tests"),
    ("commits", ("b",), "build"),
    ("commits", ("d",), "release"),
    ("tests", ("t",), "rerun"),
    ("rollouts", ("s",), "set_image"),  # then an image is typed (see press_action)
    ("rollouts", ("p",), "pause_resume"),
    ("rollouts", ("r",), "restart"),
    ("rollbacks", ("down", "enter"), "rollback_to"),
    ("commits", ("u",), "rollback_previous"),
]
IDS = [f"{where}-{keys[-1]}-{action}" for where, keys, action in KEYS]

NEW_IMAGE = "registry.local/churn:new"


def test_every_mutating_console_action_is_walked_and_in_the_table() -> None:
    # `a` (silence_alert) needs an Alertmanager: tests/tui/test_alerts.py walks it against one;
    # `R` (retrain) needs [model.retrain]: tests/tui/test_retrain.py walks it
    walked_elsewhere = {"silence_alert", "retrain"}
    assert {action for _, _, action in KEYS} | walked_elsewhere == set(MUTATING_ACTIONS)
    for where in ("drift", "rollouts"):
        for action in ("silence_alert", "retrain"):
            assert any(b.action == action for b in screen_class(where).BINDINGS), where  # type: ignore[union-attr]
    assert set(MUTATING_ACTIONS.values()) <= set(ACTIONS)
    # each console action's key is bound on its screen
    for where, _keys, action in KEYS:
        owner = MrcApp if action == "rollback_previous" else screen_class(where)
        assert any(b.action.startswith(action) for b in owner.BINDINGS), (where, action)  # type: ignore[union-attr]


def record_run(workspace: Workspace, sha: str) -> None:
    """A finished test run, so the Tests screen has a row to rerun."""
    start = FIXED_NOW - timedelta(hours=1)
    workspace.journal.record_test_run(
        TestRun(id=None, model="churn", commit=sha, status=RunStatus.PASSED, started_at=start,
                finished_at=start + timedelta(seconds=30), passed=3)
    )  # fmt: skip


async def open_screen(pilot, app: MrcApp, where: str) -> None:  # type: ignore[no-untyped-def]
    """Open ``where`` and wait until its rows (and the rollback preview) are in."""
    await pilot.press(str(SCREENS_ORDER.index(where) + 1))
    await wait_for(pilot, lambda: isinstance(app.screen, screen_class(where)), tries=400)
    selector = {
        "commits": "#commits-table",
        "tests": "#tests-table",
        "rollouts": "#rollouts-table",
        "rollbacks": "#rollbacks-history",
    }[where]

    def loaded() -> bool:
        table = app.screen.query_one(selector)
        if isinstance(table, VirtualTable):
            return bool(table.rows)
        return table.row_count > 0  # type: ignore[attr-defined,no-any-return]

    await wait_for(pilot, loaded, tries=400)
    await wait_for(pilot, lambda: ("churn", "prod-eu") in app._previews, tries=400)
    await pilot.pause()


async def press_action(pilot, app: MrcApp, keys: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    await pilot.press(*keys)
    await pilot.pause()
    if keys == ("s",):
        field = app.screen.query("#rollouts-image")
        if field and field.first().display:
            field.first().value = NEW_IMAGE  # type: ignore[attr-defined]
            await pilot.press("enter")
            await pilot.pause()


def notices(app: MrcApp) -> list[str]:
    return [n.message for n in app._notifications]


@pytest.mark.parametrize(("where", "keys", "action"), KEYS, ids=IDS)
async def test_read_only_refuses_with_the_reason_before_any_dialog(
    console, where: str, keys: tuple[str, ...], action: str
) -> None:
    c = console(read_only=True)
    record_run(c.workspace, c.repo_shas[-1])
    runs_before = len(c.workspace.journal.test_runs("churn"))
    reason = action_table.check(c.workspace, MUTATING_ACTIONS[action], "churn", "prod-eu").reason
    assert reason
    app = c.make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await open_screen(pilot, app, where)
        await press_action(pilot, app, keys)

        def refused_or_asked() -> bool:
            return isinstance(app.screen, Dialog) or any(reason in n for n in notices(app))

        await wait_for(pilot, refused_or_asked, tries=200)
        await app.workers.wait_for_complete()  # a dialog opened after a preview read, too
        await pilot.pause()
        assert not isinstance(app.screen, Dialog), f"a dialog opened: {app.screen}"
        assert isinstance(app.screen, MrcScreen), app.screen  # no progress panel either
        assert any(reason in n for n in notices(app)), notices(app)
        await app.workers.wait_for_complete()
    assert all(not target.calls for target in c.targets.values())
    assert c.workspace.journal.entries() == []
    assert len(c.workspace.journal.test_runs("churn")) == runs_before


#: The dialog each confirmation opens (a rollback's ``y`` is the rollback dialog).
DIALOG = {Confirmation.YES: YesConfirm, Confirmation.NAME: TypedConfirm}

#: Keys whose action, once started, needs a backend these tests do not have.
STARTS_A_BUILD = {"build"}


#: The keys that open a dialog or start something these tests can watch (a build is
#: asked nothing and needs a Docker engine: tests/integration covers it).
DIALOG_KEYS = [key for key in KEYS if key[2] not in STARTS_A_BUILD]


@pytest.mark.parametrize("production", [False, True], ids=["staging", "production"])
@pytest.mark.parametrize(
    ("where", "keys", "action"),
    DIALOG_KEYS,
    ids=[f"{where}-{keys[-1]}-{action}" for where, keys, action in DIALOG_KEYS],
)
async def test_the_dialog_is_the_one_the_table_asks_for(
    console, where: str, keys: tuple[str, ...], action: str, production: bool
) -> None:
    c = console(production=production)
    record_run(c.workspace, c.repo_shas[-1])
    decision = action_table.check(c.workspace, MUTATING_ACTIONS[action], "churn", "prod-eu")
    expected: type | None = DIALOG.get(decision.confirmation)
    if decision.action.name == "rollback" and decision.confirmation is Confirmation.YES:
        expected = RollbackConfirm
    app = c.make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await open_screen(pilot, app, where)
        await press_action(pilot, app, keys)
        if expected is None:  # nothing asked: it starts (the test run, on the Tests screen)
            await wait_for(pilot, lambda: any("testing" in n for n in notices(app)), tries=200)
            assert not isinstance(app.screen, Dialog)
        else:
            await wait_for(pilot, lambda: isinstance(app.screen, Dialog), tries=200)
            assert type(app.screen) is expected, (decision.confirmation, app.screen)
            assert all(not target.calls for target in c.targets.values())  # nothing yet
            await pilot.press("escape")  # cancelled: nothing happens
            await pilot.pause()
            assert not isinstance(app.screen, Dialog)
        await app.workers.wait_for_complete()
    assert all(not target.calls for target in c.targets.values())
    assert c.workspace.journal.entries() == []


async def test_restart_confirmed_with_y_and_a_reason_is_journalled(console) -> None:
    """On a non-production target `r`, `r` (reason field), the reason, `enter` restarts;
    the journal row carries the table's action name and the reason."""
    c = console()
    target = c.targets[("churn", "prod-eu")]
    app = c.make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await open_screen(pilot, app, "rollouts")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, YesConfirm), tries=200)
        await pilot.press("r", *"stuck pods", "enter")
        await wait_for(pilot, lambda: bool(target.calls), tries=200)
        await app.workers.wait_for_complete()
    assert target.calls == [("restart", None)]
    [entry] = c.workspace.journal.entries(model="churn")
    assert (entry.action, entry.reason) == (ACTIONS["restart"].journal, "stuck pods")


async def test_production_restart_needs_the_model_name(console) -> None:
    c = console(production=True)
    target = c.targets[("churn", "prod-eu")]
    app = c.make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await open_screen(pilot, app, "rollouts")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, TypedConfirm), tries=200)
        await pilot.press("y", "enter")  # one key is not enough on production
        await pilot.pause()
        assert isinstance(app.screen, TypedConfirm) and target.calls == []
        app.screen.query_one("#typed").value = ""  # type: ignore[attr-defined]
        await pilot.press(*"churn", "enter")
        await wait_for(pilot, lambda: bool(target.calls), tries=200)
        await app.workers.wait_for_complete()
    assert target.calls == [("restart", None)]
    [entry] = c.workspace.journal.entries(model="churn")
    assert entry.action == "restart"
