"""Work still starting when the console opens (the demo's release): the console follows it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from tests.tui.test_shell import wait_for
from tui.app import MrcApp


@dataclass
class Start:
    """What the demo's background start reports: ``ready`` once done, ``error`` if it failed."""

    ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


async def test_a_start_that_fails_is_named_in_the_console_with_its_text_made_inert(
    console,
) -> None:
    start = Start()
    c = console()
    app = MrcApp(c.workspace, animate=False, starting=start)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.pause()
        assert not app._notifications  # still starting: nothing to say yet
        start.error = OSError("port 8080 in use\x1b[2J")
        start.ready.set()
        await wait_for(pilot, lambda: bool(app._notifications))
        [notice] = [n.message for n in app._notifications]
        assert notice.startswith("the demo release did not start: port 8080 in use")
        assert "\x1b" not in notice


async def test_a_start_that_succeeds_refreshes_the_shown_screen(console) -> None:
    start = Start()
    c = console()
    app = MrcApp(c.workspace, animate=False, starting=start)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.pause()
        refreshed = []
        app.screen.on_shown = lambda: refreshed.append(True)  # type: ignore[method-assign]
        start.ready.set()
        await wait_for(pilot, lambda: bool(refreshed))
        assert not app._notifications
