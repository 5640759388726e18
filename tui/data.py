"""Screen-shaped reads over the workspace, called from worker threads only."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core.services.workspace import Workspace


def target_pairs(workspace: Workspace) -> list[tuple[str, str, str]]:
    """Return (model, target, kind) for every configured target, in file order."""
    return [(m.name, t.name, t.kind) for m in workspace.config.models for t in m.targets]


def deployed_commits(workspace: Workspace, model: str) -> dict[str, list[str]]:
    """Map full sha -> names of the targets of ``model`` running it now.

    A target that cannot be reached is left out (the Rollouts screen says why).
    """
    pairs: list[tuple[str, str]] = []
    for target in workspace.model(model).targets:
        try:
            state = workspace.target(model, target.name).status()
        except Exception:
            continue
        if state.commit:
            pairs.append((target.name, state.commit))
    if not pairs:
        return {}
    return workspace.repository(model).deployed_map(pairs)


def drift_view(workspace: Workspace, model: str, span: timedelta, now: datetime) -> Any:
    """Return the Drift screen's view of ``model`` over the last ``span``.

    Raises BackendUnavailable (the screen turns stale) or InvalidQuery.
    """
    from core.services.views import build_view

    return build_view(workspace, model, now - span, now)
