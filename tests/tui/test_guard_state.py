"""The guard's verdict as the operator sees it on the Rollouts and Drift screens."""

from __future__ import annotations

import pytest

from core.services import guard as g
from tests.tui.test_shell import screen_text, wait_for

REASON = "too few samples for drift in 60s: reference window has 0 samples (minimum 100)"


def inconclusive(action: str, reason: str = REASON) -> g.GuardEvent:
    return g.GuardEvent(
        g.INCONCLUSIVE,
        "churn",
        "prod-eu",
        check="drift",
        message=f"guard: inconclusive ({reason}); whatever follows",
        reason=reason,
        action=action,
    )


@pytest.mark.parametrize(
    ("action", "after"),
    [
        (g.ALERT_OPERATOR, "not verified: u rolls back"),
        (g.ACCEPT, "accepted, not verified"),
    ],
)
async def test_inconclusive_guard_shows_its_reason_never_passed(
    console, monkeypatch, action: str, after: str
) -> None:
    from tests.tui.test_drift_screen import fixed_view
    from tui import data

    monkeypatch.setattr(data, "drift_view", fixed_view)
    c = console()
    c.workspace.note_guard(inconclusive(action, "too few samples for drift"))
    app = c.make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("3")
        expected = f"guard: inconclusive (too few samples for drift) {after}"
        await wait_for(pilot, lambda: expected in screen_text(app))
        assert "passed" not in screen_text(app)
        await pilot.press("5")
        await wait_for(pilot, lambda: "guard: inconclusive (too few samples" in screen_text(app))


async def test_inconclusive_reason_from_outside_is_shown_inert(console) -> None:
    c = console()
    hostile = "source error for error_rate: \x1b]0;owned\x07[@click=app.quit]x[/]"
    c.workspace.note_guard(inconclusive(g.ALERT_OPERATOR, hostile))
    app = c.make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: "guard: inconclusive (source error" in screen_text(app))
        shown = screen_text(app)
        assert "\x1b" not in shown and "\x07" not in shown
        assert "[@click=app.quit]" in shown  # shown literally, not run
        assert app.is_running
