"""Checks a scripting command makes before it reads or changes anything.

Each raises the error whose exit code :mod:`tui.cli.output` documents, or
returns the problems a reading command reports as warnings: a missing
configuration file, a model repository that is missing or not a git
repository, and the read-only rule of :mod:`core.services.action_table`
for the mutating commands.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from core.errors import BackendUnavailable, ReadOnly
from core.git import NotARepository
from core.services import action_table
from tui.cli.output import MissingConfiguration

if TYPE_CHECKING:
    from core.services.action_table import Decision
    from core.services.workspace import Workspace


def require_configuration(ws: Workspace) -> None:
    """Return when the workspace was loaded from a file.

    Raises MissingConfiguration (exit 2) naming where ``mrc`` looked when no
    configuration file was found.
    """
    if ws.config.source is not None:
        return
    from core import paths

    raise MissingConfiguration(
        "no configuration file found: pass --config PATH, set MRC_CONFIG, or create "
        f"./mrc.toml or {paths.user_config_file()}"
    )


def repository_problem(ws: Workspace, model: str) -> str:
    """Return why ``model``'s configured repository cannot be used, or "" when it opens.

    Only a path that is missing or not a git repository is a problem of the
    configuration; other failures (git not installed) are left to the command.
    Raises NotFound for an unknown model.
    """
    try:
        ws.repository(model)
    except NotARepository as exc:
        source = ws.config.source or "the configuration"
        return f"model {model}: {exc} (the repo setting in {source})"
    except BackendUnavailable:  # git itself is missing: the command reports it where it matters
        return ""
    return ""


def repository_problems(ws: Workspace, models: Iterable[str]) -> list[str]:
    """Return :func:`repository_problem` for each of ``models`` that has one, in order."""
    return [p for p in (repository_problem(ws, m) for m in models) if p]


def require_repository(ws: Workspace, model: str) -> None:
    """Return when ``model``'s repository opens.

    Raises NotARepository (exit 2) when it is missing or not a git repository.
    """
    problem = repository_problem(ws, model)
    if problem:
        raise NotARepository(problem)


def refuse_if_read_only(ws: Workspace, action: str, model: str, target: str | None) -> Decision:
    """Return the table's decision for ``action`` on ``model`` (on ``target``) when allowed.

    The rule is :func:`core.services.action_table.check`'s: ``target`` None
    is the model's first target for an action on a target; an action on the
    model (``test``) is refused only by the whole console's read-only mode.
    Raises ReadOnly (exit 5) with the table's reason before anything runs or
    is journalled, and NotFound for an unknown model or target.
    """
    decision = action_table.check(ws, action, model, target)
    if not decision.allowed:
        raise ReadOnly(f"{decision.reason}; nothing was run, changed or journalled")
    return decision
