"""The Rollouts screen follows its targets' watch, and says when it has to poll instead.

The poll interval is set far beyond the test's length, so a row that changes
can only have been updated by the watch.
"""

from __future__ import annotations

import asyncio
import textwrap
import threading
from pathlib import Path

import pytest
from textual.widgets import Static

from core.config import parse
from core.domain import Artifact
from core.journal import Journal
from core.services.workspace import Workspace
from core.targets.local import free_port
from tests.support.repos import BASE_TIME, commit_files, init_repo
from tests.support.targets import UnwatchableTarget, scripted_history
from tests.tui.test_shell import screen_text, wait_for
from tui.app import MrcApp
from tui.screens.rollouts import RolloutsScreen

SERVER = textwrap.dedent(
    """\
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


@pytest.fixture
def no_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll once an hour: within a test, only the watch can change a row."""
    monkeypatch.setattr(RolloutsScreen, "POLL_SECONDS", 3600.0)


def _watch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if "watch" in t.name and t.is_alive()]


async def test_a_local_rollout_shows_without_waiting_for_a_poll(
    tmp_path: Path, no_polling: None
) -> None:
    repo = init_repo(tmp_path / "model")
    sha = commit_files(repo, {"server.py": SERVER}, "serve", when=BASE_TIME)
    config = parse(
        f"""
[[model]]
name = "churn"
repo = "{repo}"

  [[model.target]]
  name = "local"
  kind = "local"
  command = "{{python}} server.py {{port}}"
  port = {free_port()}
""",
        source=tmp_path / "mrc.toml",
    )
    state = tmp_path / "state"
    state.mkdir()
    workspace = Workspace(config, journal=Journal(state / "journal.sqlite3"), state_dir=state)
    app = MrcApp(workspace, animate=False)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("3")
            screen = app.screen
            assert isinstance(screen, RolloutsScreen)
            await wait_for(pilot, lambda: "churn/local" in screen.rows, tries=200)
            assert screen.rows["churn/local"].state is not None
            assert screen.rows["churn/local"].state.revision is None  # nothing deployed yet

            target = workspace.target("churn", "local")
            steps = await asyncio.to_thread(
                lambda: list(target.rollout(Artifact(commit=sha), reason="test"))
            )
            assert steps, "the rollout reported nothing"

            def shown() -> bool:
                row = screen.rows["churn/local"]
                return row.state is not None and row.state.revision == 1

            try:
                await wait_for(pilot, shown, tries=400)
            except AssertionError:
                raise AssertionError(screen_text(app)) from None
            text = screen_text(app)
            assert sha[:8] in text and "complete" in text
            assert "polling" not in text
            # the status line follows the selected row's new state
            message = screen.rows["churn/local"].state.message
            status = screen.query_one("#rollouts-status", Static)
            assert f"churn/local: {message}" in str(status.render())
    finally:
        workspace.close()


async def test_a_failing_watch_falls_back_to_polling_with_a_badge(console) -> None:  # type: ignore[no-untyped-def]
    setup = console()
    shas = setup.repo_shas
    broken = UnwatchableTarget("fraud", "staging", revisions=scripted_history("fraud", shas[:6]))
    setup.workspace._targets[("fraud", "staging")] = broken  # type: ignore[assignment]
    app = setup.make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, RolloutsScreen)
        try:
            await wait_for(pilot, lambda: "polling: watch failed" in screen_text(app), tries=200)
        except AssertionError:
            raise AssertionError(screen_text(app)) from None
        assert broken.watch_error in screen_text(app)
        # the polled row and the watched one are both on screen
        await wait_for(pilot, lambda: {"churn/prod-eu", "fraud/staging"} <= set(screen.rows))
        assert screen.rows["fraud/staging"].state is not None


async def test_watched_targets_show_no_badge_and_a_hidden_screen_stops_watching(
    console,  # type: ignore[no-untyped-def]
) -> None:
    app = console().make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, RolloutsScreen)
        await wait_for(pilot, lambda: {"churn/prod-eu", "fraud/staging"} <= set(screen.rows))
        assert "polling" not in screen_text(app)
        assert _watch_threads(), "the visible screen follows its targets"
        await pilot.press("1")
        await pilot.pause()
        await wait_for(pilot, lambda: not _watch_threads(), tries=200)
        await pilot.press("3")
        await pilot.pause()
        await wait_for(pilot, lambda: bool(_watch_threads()), tries=200)


async def test_ages_follow_the_clock_on_screen_and_when_scrolled_into_view(
    tmp_path: Path, no_polling: None
) -> None:
    """With many targets the clock tick rewrites only ages near the view; scrolling catches up."""
    from datetime import timedelta

    from tests.support.repos import make_history_repo
    from tests.support.targets import FIXED_NOW, ScriptedTarget

    repo = make_history_repo(tmp_path / "repo", commits=3)
    names = [f"t{n:03d}" for n in range(120)]
    targets = "".join(
        f'\n  [[model.target]]\n  name = "{name}"\n  kind = "kubernetes"\n'
        f'  context = "c"\n  deployment = "{name}"\n'
        for name in names
    )
    config = parse(
        f'[[model]]\nname = "churn"\nrepo = "{repo.path}"\n{targets}', source=tmp_path / "m.toml"
    )
    state = tmp_path / "state"
    state.mkdir()
    workspace = Workspace(config, journal=Journal(state / "journal.sqlite3"), state_dir=state)
    for name in names:
        history = scripted_history("churn", repo.shas)
        workspace._targets[("churn", name)] = ScriptedTarget("churn", name, revisions=history)  # type: ignore[assignment]
    now = [FIXED_NOW]
    app = MrcApp(workspace, clock=lambda: now[0], animate=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, RolloutsScreen)
        await wait_for(pilot, lambda: len(screen.rows) == len(names), tries=300)
        table = screen.table

        def age(name: str) -> str:
            return str(table.get_cell(f"churn/{name}", "age"))

        before = age(names[0])
        assert age(names[-1]) == before
        now[0] = FIXED_NOW + timedelta(days=3)
        screen.refresh_ages()  # what the screen's clock tick does
        await pilot.pause()
        after = age(names[0])
        assert after != before and after in screen_text(app)
        assert age(names[-1]) == before, "a row far below the view is left for later"
        await pilot.press("ctrl+end")  # the table's bottom
        await wait_for(pilot, lambda: age(names[-1]) == after)
        assert names[-1] in screen_text(app)
