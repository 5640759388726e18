"""The one table of mutating actions: who may run them, how they are confirmed, how journalled.

Every front end (console, scripting CLI) asks :func:`check` before it opens a
dialog, asks a question or touches anything, and the core services call
:func:`require` before they write a journal row, so the rules live here once:

* **read-only**: ``--read-only`` / ``[console] read_only`` refuses every
  action; a target's ``read_only`` refuses the actions on that target
  (``scope == "target"``). Actions on the model itself (a test run, a
  build) are refused only by the console-wide setting.
* **confirmation**: :attr:`ActionRule.confirmation` on an ordinary target,
  :attr:`ActionRule.on_production` on a target marked ``production``.
* **journal**: the action name its journal row carries (see
  :mod:`core.services.actions`); "" when the action writes no journal row
  (its record is elsewhere: the test-run table, the image itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from core.errors import ReadOnly

if TYPE_CHECKING:
    from core.services.workspace import Workspace


class Confirmation(StrEnum):
    """What the operator does to confirm an action."""

    NONE = "none"
    """Nothing: the action starts at once."""
    YES = "y"
    """One key (``y``) in the console; ``y`` on a terminal or ``--yes`` in the CLI."""
    NAME = "name"
    """The model's name typed (``--confirm MODEL`` in scripts)."""


@dataclass(frozen=True)
class ActionRule:
    """One row of :data:`ACTIONS`."""

    name: str
    """The action's name in this table and in front-end code."""
    title: str
    """What the operator reads: "restart", "set image", "test run"."""
    scope: Literal["model", "target"]
    """``target``: a read-only target refuses it; ``model``: only global read-only does."""
    confirmation: Confirmation
    """Confirmation on a target that is not marked ``production``."""
    on_production: Confirmation
    """Confirmation on a ``production`` target."""
    journal: str
    """The action name of its journal row ("" when it writes none)."""


def _rule(
    name: str,
    title: str,
    scope: Literal["model", "target"],
    confirmation: Confirmation,
    on_production: Confirmation,
    journal: str,
) -> tuple[str, ActionRule]:
    return name, ActionRule(name, title, scope, confirmation, on_production, journal)


_N, _Y, _T = Confirmation.NONE, Confirmation.YES, Confirmation.NAME

#: Every mutating action. A rollback is one key plus ``y`` even on production:
#: it is the way out of an incident (``u``), and shows exactly what goes back.
ACTIONS: Mapping[str, ActionRule] = dict(
    [
        _rule("test", "test run", "model", _N, _N, ""),  # recorded as a test run
        _rule("build", "build", "model", _N, _N, ""),  # the image is the record
        _rule("push", "push", "model", _Y, _Y, ""),
        _rule("release", "release", "target", _Y, _T, "release"),
        _rule("rollout", "rollout", "target", _Y, _T, "rollout"),
        _rule("set_image", "set image", "target", _Y, _T, "rollout"),
        _rule("rollback", "rollback", "target", _Y, _Y, "rollback"),
        _rule("pause", "pause", "target", _Y, _T, "pause"),
        _rule("resume", "resume", "target", _Y, _T, "resume"),
        _rule("restart", "restart", "target", _Y, _T, "restart"),
        _rule("silence", "silence", "model", _Y, _Y, "silence"),  # an Alertmanager silence
        _rule("retrain", "retrain", "model", _Y, _Y, "retrain"),  # a commit on a retrain/ branch
    ]
)

#: The global read-only refusal, completed with the action's title.
GLOBAL_READ_ONLY = "{title} refused: read-only mode (--read-only or [console] read_only)"
#: A read-only target's refusal.
TARGET_READ_ONLY = "{title} refused: {model} on {target} is read-only (the target's read_only)"


@dataclass(frozen=True)
class Decision:
    """Whether an action may run now, and how the operator confirms it."""

    action: ActionRule
    model: str
    target: str
    """The target it acts on ("" for an action on the model)."""
    allowed: bool
    reason: str
    """Why it is refused ("" when allowed)."""
    confirmation: Confirmation
    production: bool
    """True when the target is marked ``production``."""


def rule(action: str) -> ActionRule:
    """Return the row of ``action``; raises ValueError for an action not in the table."""
    try:
        return ACTIONS[action]
    except KeyError:
        raise ValueError(f"unknown action {action!r} (expected {', '.join(ACTIONS)})") from None


def check(workspace: Workspace, action: str, model: str, target: str | None = None) -> Decision:
    """Return whether ``action`` may run on ``model`` (and ``target``), and its confirmation.

    ``target`` None means the model's first target for an action on a
    target, and no target for an action on the model. Reads the
    configuration only (no backend is contacted). Raises ValueError for an
    unknown action and NotFound for an unknown model or target (or a model
    without targets when a target is needed).
    """
    row = rule(action)
    workspace.model(model)  # NotFound for an unknown model, whatever the scope
    if row.scope == "model":
        name, production, target_read_only = "", False, False
    else:
        config = workspace.target_config(model, target)
        name, production = config.name, config.production
        target_read_only = config.read_only_effective
    confirmation = row.on_production if production else row.confirmation
    reason = ""
    if workspace.config.read_only:
        reason = GLOBAL_READ_ONLY.format(title=row.title)
    elif target_read_only:
        reason = TARGET_READ_ONLY.format(title=row.title, model=model, target=name)
    return Decision(row, model, name, not reason, reason, confirmation, production)


def require(workspace: Workspace, action: str, model: str, target: str | None = None) -> Decision:
    """Return :func:`check`'s decision when the action is allowed.

    Raises ReadOnly (with the reason) when it is refused, and what
    :func:`check` raises.
    """
    decision = check(workspace, action, model, target)
    if not decision.allowed:
        raise ReadOnly(decision.reason)
    return decision
