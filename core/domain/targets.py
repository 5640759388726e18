"""Images, artifacts and targets: revisions, live rollout state, rollback previews, detail.

Part of :mod:`core.domain` (import the names from there).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Image:
    """A container image built from a commit."""

    ref: str
    id: str = ""
    commit: str = ""
    created: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Artifact:
    """What a rollout installs: an image (docker, kubernetes) and/or a commit (local)."""

    commit: str = ""
    image: str = ""

    def describe(self) -> str:
        """Short human description, e.g. ``repo/model:1a2b3c4d`` or ``commit 1a2b3c4d``."""
        if self.image:
            return self.image
        return f"commit {self.commit[:8]}"


@dataclass(frozen=True, slots=True)
class Revision:
    """One entry of a target's revision history.

    ``number`` follows the target's own numbering (Kubernetes'
    ``deployment.kubernetes.io/revision``; an increasing counter for docker and
    local targets). ``current`` is True for the revision now live.
    """

    number: int
    image: str = ""
    commit: str = ""
    created: datetime | None = None
    change_cause: str = ""
    current: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Phase(enum.StrEnum):
    """Overall state of a target as shown in the Rollouts screen."""

    COMPLETE = "complete"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    FAILED = "failed"
    DEGRADED = "degraded"
    STOPPED = "stopped"
    UNKNOWN = "unknown"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Live status of one model on one target (``kubectl rollout status`` semantics)."""

    model: str
    target: str
    kind: str
    phase: Phase
    revision: int | None = None
    image: str = ""
    commit: str = ""
    desired: int = 0
    ready: int = 0
    updated: int = 0
    available: int = 0
    message: str = ""
    since: datetime | None = None
    observed_at: datetime | None = None
    #: Opaque token of the backend state this was read from ("" when the backend has
    #: none); passed back as ``expected``, a change made since is refused (Conflict).
    basis: str = ""


@dataclass(frozen=True, slots=True)
class RollbackPreview:
    """What a rollback would do, shown in the confirm dialog before applying it.

    ``noop`` is True when the target template already equals the revision's
    (``kubectl rollout undo`` skips such a rollback). ``diff`` is a unified
    diff of the pod template (or of the container spec) from current to target.
    """

    model: str
    target: str
    from_revision: int | None
    to_revision: int
    from_image: str = ""
    to_image: str = ""
    from_commit: str = ""
    to_commit: str = ""
    diff: str = ""
    noop: bool = False
    warning: str = ""
    #: Opaque token of the target state the preview was computed from; passing the
    #: preview back to the rollback makes it refuse (Conflict) if that state changed.
    basis: str = ""


@dataclass(frozen=True, slots=True)
class TargetEvent:
    """A live event about a target (Kubernetes event, container state change)."""

    time: datetime
    kind: str  # "Normal", "Warning", "state"
    reason: str
    message: str
    object: str = ""


@dataclass(frozen=True, slots=True)
class Permission:
    """Whether the current credentials may perform an action, and why not."""

    allowed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PodInfo:
    """One pod (or process/container) behind a target, for the detail view."""

    name: str
    phase: str
    ready: bool
    restarts: int = 0
    image: str = ""
    node: str = ""
    started: datetime | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """A status condition (Kubernetes style)."""

    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class TargetDetail:
    """Everything the Rollouts detail view shows for one target."""

    state: RolloutState
    pods: tuple[PodInfo, ...] = ()
    conditions: tuple[Condition, ...] = ()
    events: tuple[TargetEvent, ...] = ()
