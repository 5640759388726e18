"""Deterministic workspaces for Pilot and snapshot tests of the console.

The console's behaviour is tested here against a real git repository and a
real journal; targets are an in-memory stand-in (``ScriptedTarget``) because
these tests are about what the screens do with a target's answers. Each
target kind is proven against its real backend in tests/integration.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.config import parse
from core.journal import Journal
from core.services.workspace import Workspace
from tests.support.repos import make_history_repo
from tests.support.targets import FIXED_NOW, ScriptedTarget, scripted_history
from tui.app import MrcApp

CONFIG = """
[[model]]
name = "churn"
repo = "{repo}"
test_command = "true"
image = "registry.local/churn"

  [[model.target]]
  name = "prod-eu"
  kind = "kubernetes"
  context = "prod-eu"
  deployment = "churn"
  production = {production}

  [model.metrics]
  source = "scrape"
  url = "http://127.0.0.1:9/metrics"
  prediction_histogram = "model_prediction_score"

[[model]]
name = "fraud"
repo = "{repo}"

  [[model.target]]
  name = "staging"
  kind = "kubernetes"
  context = "staging"
  deployment = "fraud"
"""


@dataclass
class Console:
    """What a test gets: the workspace, its scripted targets and an app factory."""

    workspace: Workspace
    targets: dict[tuple[str, str], ScriptedTarget]
    repo_shas: list[str]
    make_app: Callable[[], MrcApp]


@pytest.fixture
def console(tmp_path: Path) -> Callable[..., Console]:
    """Return a factory of deterministic consoles: ``console(read_only=..., production=...)``."""
    repo = make_history_repo(tmp_path / "repo", commits=12)
    counter = itertools.count()

    def make(*, read_only: bool = False, production: bool = False) -> Console:
        n = next(counter)
        config = parse(
            CONFIG.format(repo=repo.path, production=str(production).lower()),
            source=Path(f"/etc/mrc/console-{n}.toml"),
        )
        if read_only:
            config = config.with_read_only(True)
        state = tmp_path / f"state-{n}"
        state.mkdir()
        workspace = Workspace(config, journal=Journal(state / "journal.sqlite3"), state_dir=state)
        targets = {
            ("churn", "prod-eu"): ScriptedTarget(
                "churn", "prod-eu", revisions=scripted_history("churn", repo.shas)
            ),
            ("fraud", "staging"): ScriptedTarget(
                "fraud", "staging", revisions=scripted_history("fraud", repo.shas[:6])
            ),
        }
        workspace._targets.update(targets)  # type: ignore[arg-type]

        def app() -> MrcApp:
            return MrcApp(workspace, clock=lambda: FIXED_NOW, animate=False)

        return Console(workspace, targets, repo.shas, app)

    return make
