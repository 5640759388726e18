"""The key footer is rebuilt when the keys it shows change, and only then."""

from __future__ import annotations

from textual.widgets._footer import FooterKey

from tests.tui.test_shell import wait_for


def _keys(app) -> dict[str, FooterKey]:  # type: ignore[no-untyped-def]
    return {key.action: key for key in app.screen.query(FooterKey)}


async def test_refreshed_bindings_that_show_the_same_keys_keep_the_footer(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "build" in _keys(app))
        before = _keys(app)
        app.screen.refresh_bindings()  # what every focus change and mount does
        app.screen.query_one("VirtualTable").focus()
        await pilot.pause()
        await pilot.pause()
        after = _keys(app)
        assert after.keys() == before.keys()
        assert all(after[action] is before[action] for action in before)


async def test_a_key_that_becomes_disabled_is_shown_disabled(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "build" in _keys(app))
        assert not _keys(app)["build"].has_class("-disabled")
        await pilot.press("m")  # fraud: no image, so nothing to build
        await wait_for(pilot, lambda: _keys(app)["build"].has_class("-disabled"))
        await pilot.press("m")
        await wait_for(pilot, lambda: not _keys(app)["build"].has_class("-disabled"))
