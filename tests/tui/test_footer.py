"""The key footer: what it shows, at which widths, and what clicking a key does."""

from __future__ import annotations

from tests.tui.test_shell import screen_text, wait_for
from tui.screens import tests as tests_screen
from tui.screens.help import HelpScreen
from tui.widgets.footer import KeyFooter


def _footer(app) -> KeyFooter:  # type: ignore[no-untyped-def]
    return app.screen.query_one(KeyFooter)


def _footer_line(app) -> str:  # type: ignore[no-untyped-def]
    return screen_text(app).splitlines()[-1]


def _colour(app, word: str):  # type: ignore[no-untyped-def]
    """Return the foreground colour the footer line draws ``word`` in."""
    for segment in app.screen._compositor.render_strips()[-1]:
        if word in segment.text:
            return segment.style.color if segment.style else None
    raise AssertionError(f"{word!r} is not in the footer")


def _enabled(app) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    return {key.action: key.enabled for key in _footer(app).keys}


async def test_the_footer_lists_the_screen_keys_and_the_palette_key(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "t Test" in _footer_line(app))
        line = _footer_line(app)
        for shown in ("t Test", "b Build", "d Release", "/ Search", "u Roll back", "? Help",
                      "q Quit"):  # fmt: skip
            assert shown in line
        assert line.rstrip().endswith("▏^p palette")


async def test_a_key_that_becomes_disabled_is_dimmed(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: _enabled(app).get("build") is True)
        await pilot.press("m")  # fraud: no image, so nothing to build
        await wait_for(pilot, lambda: _enabled(app).get("build") is False)
        await pilot.pause()
        assert _colour(app, "Build") != _colour(app, "Test")  # dimmed: blended to the background
        await pilot.press("m")
        await wait_for(pilot, lambda: _enabled(app).get("build") is True)
        await pilot.pause()
        assert _colour(app, "Build") == _colour(app, "Test")


async def test_refreshed_bindings_that_show_the_same_keys_do_not_repaint(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "build" in _enabled(app))
        footer = _footer(app)
        repaints = 0
        refresh = footer.refresh

        def counting_refresh(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal repaints
            repaints += 1
            return refresh(*args, **kwargs)

        footer.refresh = counting_refresh  # type: ignore[method-assign]
        app.screen.refresh_bindings()  # what every focus change and mount does
        app.screen.query_one("VirtualTable").focus()
        await pilot.pause()
        await pilot.pause()
        assert repaints == 0
        await pilot.press("m")
        await wait_for(pilot, lambda: repaints > 0)


async def test_clicking_a_key_presses_it(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "? Help" in _footer_line(app))
        await pilot.click(KeyFooter, offset=(_footer_line(app).index("? Help") + 1, 0))
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))


async def test_clicking_a_disabled_key_rings_the_bell_and_runs_nothing(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("m")  # fraud: nothing to build
        await wait_for(pilot, lambda: _enabled(app).get("build") is False)
        await pilot.pause()
        bells = 0

        def bell() -> None:
            nonlocal bells
            bells += 1

        app.bell = bell  # type: ignore[method-assign]
        screen = app.screen
        await pilot.click(KeyFooter, offset=(_footer_line(app).index("b Build"), 0))
        await pilot.pause()
        assert bells == 1
        assert app.screen is screen


async def test_at_80_columns_every_key_still_shows(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "Quit" in _footer_line(app))
        line = _footer_line(app)
        assert "…" not in line
        assert "t Test" in line and "q Quit" in line and "^p palette" in line


async def test_a_narrow_terminal_cuts_the_keys_and_keeps_the_palette_key(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(50, 24)) as pilot:
        await wait_for(pilot, lambda: "palette" in _footer_line(app))
        line = _footer_line(app)
        assert line.startswith("t Test")
        assert "…" in line
        assert line.rstrip().endswith("^p palette")


async def test_another_screen_shows_its_own_keys(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, tests_screen.TestsScreen))
        await wait_for(pilot, lambda: "b Build" not in _footer_line(app))
        assert "? Help" in _footer_line(app)
