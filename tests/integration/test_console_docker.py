"""The console with a Docker target whose daemon is down: a clear error, no freeze."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import parse
from core.journal import Journal
from core.services.workspace import Workspace
from tests.support.repos import make_history_repo
from tests.tui.test_shell import screen_text, wait_for
from tui.app import MrcApp

pytestmark = [pytest.mark.integration]


async def test_stopped_daemon_gives_a_clear_error_and_the_console_answers(tmp_path: Path) -> None:
    repo = make_history_repo(tmp_path / "repo", commits=3)
    socket = tmp_path / "stopped" / "docker.sock"  # where a stopped daemon's socket was
    config = parse(
        f"""
[[model]]
name = "churn"
repo = "{repo.path}"
  [[model.target]]
  name = "edge"
  kind = "docker"
  base_url = "unix://{socket}"
  port = 18080
  timeout = "2s"
""",
        source=tmp_path / "mrc.toml",
    )
    workspace = Workspace(config, journal=Journal(tmp_path / "j.sqlite3"), state_dir=tmp_path)
    app = MrcApp(workspace, animate=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: "cannot reach Docker" in screen_text(app), tries=400)
        assert "disconnected" in screen_text(app)
        for key, name in (
            ("1", "CommitsScreen"),
            ("4", "RollbacksScreen"),
            ("3", "RolloutsScreen"),
        ):
            await pilot.press(key)
            await pilot.pause()
            assert type(app.screen).__name__ == name
        await pilot.press("u")
        await pilot.pause(0.5)
        assert type(app.screen).__name__ == "RolloutsScreen"  # no dialog without a history
    workspace.close()
