"""Deterministic workspaces for Pilot and snapshot tests of the console.

The console's behaviour is tested here against a real git repository and a
real journal; targets are an in-memory stand-in (``ScriptedTarget``) because
these tests are about what the screens do with a target's answers. Each
target kind is proven against its real backend in tests/integration.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.config import parse
from core.domain import (
    Artifact,
    Permission,
    Phase,
    PodInfo,
    Progress,
    Revision,
    RollbackPreview,
    RolloutState,
    TargetDetail,
    TargetEvent,
)
from core.journal import Journal
from core.registry import Workspace
from tests.support.repos import BASE_TIME, make_history_repo
from tui.app import MrcApp

#: The console's clock in these tests: a day after the sample history starts.
FIXED_NOW = datetime.fromtimestamp(BASE_TIME, UTC) + timedelta(days=1)


@dataclass
class ScriptedTarget:
    """A target whose history is a list; rollback moves the live revision like kubectl."""

    model: str
    name: str
    kind: str = "kubernetes"
    revisions: list[Revision] = field(default_factory=list)
    calls: list[tuple[str, object]] = field(default_factory=list)
    denied: dict[str, str] = field(default_factory=dict)
    fail_with: Exception | None = None

    def _live(self) -> Revision:
        return next(r for r in self.revisions if r.current)

    def status(self) -> RolloutState:
        live = self._live()
        return RolloutState(
            model=self.model,
            target=self.name,
            kind=self.kind,
            phase=Phase.COMPLETE,
            revision=live.number,
            image=live.image,
            commit=live.commit,
            desired=3,
            ready=3,
            updated=3,
            available=3,
            message=f"deployment {self.model!r} successfully rolled out",
            since=live.created,
        )

    def detail(self) -> TargetDetail:
        state = self.status()
        pods = tuple(
            PodInfo(f"{self.model}-7d9f-{i}", "Running", True, 0, state.image) for i in range(3)
        )
        event = TargetEvent(FIXED_NOW, "Normal", "ScalingReplicaSet", "[bold]scaled[/] up", "rs")
        return TargetDetail(state=state, pods=pods, events=(event,))

    def history(self) -> list[Revision]:
        return sorted(self.revisions, key=lambda r: -r.number)

    def preview_rollback(self, to_revision: int | None = None) -> RollbackPreview:
        live = self._live()
        older = [r for r in self.history() if r.number != live.number]
        target = (
            older[0]
            if to_revision is None and older
            else next((r for r in self.revisions if r.number == to_revision), None)
        )
        if target is None:
            from core.errors import NotFound

            raise NotFound(f"unable to find specified revision {to_revision} in history")
        return RollbackPreview(
            model=self.model,
            target=self.name,
            from_revision=live.number,
            to_revision=target.number,
            from_image=live.image,
            to_image=target.image,
            from_commit=live.commit,
            to_commit=target.commit,
            diff=f"-    image: {live.image}\n+    image: {target.image}\n",
        )

    def rollback(self, to_revision=None, *, reason="", cancel=None) -> Iterator[Progress]:  # type: ignore[no-untyped-def]
        self.calls.append(("rollback", to_revision))
        if self.fail_with is not None:
            raise self.fail_with
        preview = self.preview_rollback(to_revision)
        target = next(r for r in self.revisions if r.number == preview.to_revision)
        new_number = max(r.number for r in self.revisions) + 1
        self.revisions = [replace(r, current=False) for r in self.revisions if r is not target]
        self.revisions.append(replace(target, number=new_number, current=True))
        yield Progress("rollback", f"rolled back to revision {preview.to_revision}")

    def rollout(self, artifact: Artifact, *, reason="", cancel=None) -> Iterator[Progress]:  # type: ignore[no-untyped-def]
        self.calls.append(("rollout", artifact))
        yield Progress("rollout", "done")

    def pause(self) -> None:
        self.calls.append(("pause", None))

    def resume(self) -> None:
        self.calls.append(("resume", None))

    def restart(self) -> None:
        self.calls.append(("restart", None))

    def watch(self, cancel):  # type: ignore[no-untyped-def]
        return iter(())

    def permissions(self) -> dict[str, Permission]:
        actions = ("rollout", "rollback", "pause", "resume", "restart")
        return {a: Permission(a not in self.denied, self.denied.get(a, "")) for a in actions}

    def close(self) -> None:
        pass


def scripted_history(model: str, shas: list[str]) -> list[Revision]:
    """Three revisions of ``model``, the newest live, built from ``shas``."""
    base = datetime.fromtimestamp(BASE_TIME, UTC)
    return [
        Revision(
            number=i + 1,
            image=f"registry.local/{model}:{sha[:8]}",
            commit=sha,
            created=base + timedelta(hours=4 * i),
            change_cause=f"mrc: rollout {sha[:8]} by ada",
            current=i == 2,
        )
        for i, sha in enumerate(shas[-3:])
    ]


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
