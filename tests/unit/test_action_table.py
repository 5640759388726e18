"""The one table of mutating actions: read-only rule, confirmation, journal entry."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import parse
from core.domain import Artifact, Outcome, Phase, Progress, RolloutState
from core.errors import NotFound, ReadOnly
from core.journal import Journal
from core.services import action_table, actions
from core.services.action_table import ACTIONS, Confirmation
from core.services.workspace import Workspace

CONFIG = """
[[model]]
name = "churn"
repo = "/nowhere"

  [[model.target]]
  name = "edge"
  kind = "local"
  command = "true"
  port = 9

  [[model.target]]
  name = "prod"
  kind = "local"
  command = "true"
  port = 9
  production = true

  [[model.target]]
  name = "frozen"
  kind = "local"
  command = "true"
  port = 9
  read_only = true
"""

TARGET_ACTIONS = [name for name, row in ACTIONS.items() if row.scope == "target"]
MODEL_ACTIONS = [name for name, row in ACTIONS.items() if row.scope == "model"]


def workspace(tmp_path: Path, *, read_only: bool = False) -> Workspace:
    config = parse(CONFIG, source=tmp_path / "mrc.toml")
    if read_only:
        config = config.with_read_only(True)
    return Workspace(config, journal=Journal(tmp_path / "journal.sqlite3"), state_dir=tmp_path)


def test_the_table_holds_every_mutating_action_once() -> None:
    assert set(ACTIONS) == {
        "test", "build", "push", "release", "rollout", "set_image",
        "rollback", "pause", "resume", "restart", "silence", "retrain",
    }  # fmt: skip
    assert all(row.name == name for name, row in ACTIONS.items())
    # the journalled ones carry their own name, except set image, which is a rollout
    assert {name: row.journal for name, row in ACTIONS.items() if row.journal} == {
        "release": "release", "rollout": "rollout", "set_image": "rollout",
        "rollback": "rollback", "pause": "pause", "resume": "resume", "restart": "restart",
        "silence": "silence", "retrain": "retrain",
    }  # fmt: skip


@pytest.mark.parametrize("action", list(ACTIONS))
def test_global_read_only_refuses_every_action_with_the_reason(tmp_path: Path, action: str) -> None:
    ws = workspace(tmp_path, read_only=True)
    decision = action_table.check(ws, action, "churn", "edge")
    assert not decision.allowed
    assert decision.reason.startswith(f"{ACTIONS[action].title} refused: read-only mode")
    assert "--read-only" in decision.reason
    with pytest.raises(ReadOnly, match="read-only mode"):
        action_table.require(ws, action, "churn", "edge")


@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_read_only_target_refuses_only_the_actions_on_targets(
    tmp_path: Path, action: str
) -> None:
    decision = action_table.check(workspace(tmp_path), action, "churn", "frozen")
    if action in MODEL_ACTIONS:  # a test run or a build changes no target
        assert decision.allowed and decision.reason == "" and decision.target == ""
    else:
        assert not decision.allowed
        title = ACTIONS[action].title
        assert decision.reason == (
            f"{title} refused: churn on frozen is read-only (the target's read_only)"
        )


@pytest.mark.parametrize("action", list(ACTIONS))
def test_confirmation_follows_the_production_mark(tmp_path: Path, action: str) -> None:
    ws = workspace(tmp_path)
    edge = action_table.check(ws, action, "churn", "edge")
    prod = action_table.check(ws, action, "churn", "prod")
    assert edge.allowed and prod.allowed
    assert edge.confirmation is ACTIONS[action].confirmation and not edge.production
    expected = ACTIONS[action].on_production if action in TARGET_ACTIONS else edge.confirmation
    assert prod.confirmation is expected
    assert prod.production is (action in TARGET_ACTIONS)


def test_the_suggested_confirmations() -> None:
    """test/build: none; push: y; changes of a target: y, the model's name on production;
    a rollback stays one key plus y everywhere (the way out of an incident)."""
    none, yes, name = Confirmation.NONE, Confirmation.YES, Confirmation.NAME
    rules = {n: (r.confirmation, r.on_production) for n, r in ACTIONS.items()}
    assert rules["test"] == rules["build"] == (none, none)
    assert rules["push"] == (yes, yes)
    assert rules["rollback"] == (yes, yes)
    assert rules["silence"] == (yes, yes)
    assert rules["retrain"] == (yes, yes)  # a commit on a branch: nothing is released
    for action in ("release", "rollout", "set_image", "pause", "resume", "restart"):
        assert rules[action] == (yes, name), action


def test_no_target_means_the_first_one_and_unknown_names_are_errors(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    assert action_table.check(ws, "restart", "churn").target == "edge"
    with pytest.raises(ValueError, match="unknown action 'delete'"):
        action_table.check(ws, "delete", "churn")
    with pytest.raises(NotFound):
        action_table.check(ws, "test", "other")
    with pytest.raises(NotFound):
        action_table.check(ws, "restart", "churn", "nowhere")


def test_the_journalling_wrappers_have_no_second_read_only_switch() -> None:
    """Read-only is decided by the table only: the wrappers take no ``read_only=``."""
    wrappers = (actions.run_rollout, actions.run_rollback, actions.run_simple, actions.run_silence)
    for function in wrappers:
        assert "read_only" not in inspect.signature(function).parameters


class Target:
    """Just enough of a target for the journalled wrappers."""

    kind = "local"
    model = "churn"

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[str] = []

    def status(self) -> RolloutState:
        return RolloutState(self.model, self.name, self.kind, Phase.COMPLETE, revision=1)

    def rollout(self, artifact: Artifact, **kw: object) -> Iterator[Progress]:
        self.calls.append("rollout")
        yield Progress("live", "done")

    def restart(self, **kw: object) -> None:
        self.calls.append("restart")


def test_the_workspace_refuses_through_the_table_before_journalling(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    frozen = Target("frozen")
    with pytest.raises(ReadOnly, match="churn on frozen is read-only"):
        ws.run_rollout(frozen, Artifact(image="x"))  # type: ignore[arg-type]
    with pytest.raises(ReadOnly, match="churn on frozen is read-only"):
        ws.run_rollback(frozen)  # type: ignore[arg-type]
    assert frozen.calls == [] and ws.journal.entries() == []


def test_journal_rows_carry_the_tables_action_name(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    edge = Target("edge")
    list(ws.run_rollout(edge, Artifact(image="x"), reason="r1"))  # type: ignore[arg-type]
    actions.run_simple(ws.journal, edge, "restart", "r2")  # type: ignore[arg-type]
    entries = {e.reason: e for e in ws.journal.entries()}
    assert entries["r1"].action == ACTIONS["rollout"].journal
    assert entries["r2"].action == ACTIONS["restart"].journal
    assert all(e.outcome is Outcome.DONE for e in entries.values())
