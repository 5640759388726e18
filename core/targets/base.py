"""The Target protocol every deployment backend implements.

A target is one place where one model runs: a Kubernetes Deployment, a
container on a Docker host, or a model-server process on this machine. All
methods are blocking and meant to be called from a worker thread; every call
that talks to a backend has a timeout, so a dead backend raises
:class:`~core.errors.BackendUnavailable` instead of hanging.

Mutating methods do not journal: callers go through :mod:`core.services.actions`,
which writes the intent row before and the outcome after.

Every mutating method takes ``expected``, the state the operator saw when
deciding (a :class:`~core.domain.RolloutState` as read, or an
:class:`~core.targets.expected.ExpectedState`; a rollback takes the confirmed
:class:`~core.domain.RollbackPreview`): when the live revision, image or
generation moved since, the change is refused with
:class:`~core.errors.Conflict` and nothing is applied. None checks nothing.

Optional capabilities (:meth:`Target.pause`, :meth:`Target.resume`,
:meth:`Target.start`, :meth:`Target.stop_all`) are declared here with their
default behaviour; an implementation subclasses :class:`Target` explicitly to
inherit the defaults and overrides what its backend supports. Callers call
them directly, never probe for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

from core.cancel import CancelToken
from core.errors import OperationFailed

if TYPE_CHECKING:
    from core.domain import (
        Artifact,
        Permission,
        Progress,
        Revision,
        RollbackPreview,
        RolloutState,
        TargetDetail,
        TargetEvent,
    )
    from core.targets.expected import ExpectedState

#: What a mutating method may be told the operator saw (None: no check).
Seen: TypeAlias = "RolloutState | ExpectedState | None"

#: Actions whose permission a target reports in :meth:`Target.permissions`.
ACTIONS = ("rollout", "rollback", "pause", "resume", "restart")


@runtime_checkable
class Target(Protocol):
    """One model on one deployment target."""

    model: str
    name: str
    kind: str  # "kubernetes", "docker" or "local"
    #: True when the first item :meth:`rollback` yields is the
    #: backend's acknowledgement of the change, which the backend then carries out
    #: on its own (Kubernetes: the patch accepted); later items only follow it, so a
    #: caller that does not wait may stop there. Default False: the target carries
    #: out the change itself while it is iterated, and stopping early abandons it.
    acknowledges_first: bool = False

    def status(self) -> RolloutState:
        """Return the live state.

        Raises BackendUnavailable when the backend cannot be reached and
        NotFound when the deployment/container/process does not exist.
        """
        ...

    def detail(self) -> TargetDetail:
        """Return status plus pods/containers, conditions and recent events."""
        ...

    def history(self) -> list[Revision]:
        """Return the revisions kept for rollback, newest first; ``current`` marks the live one.

        Raises BackendUnavailable or NotFound.
        """
        ...

    def rollout(
        self,
        artifact: Artifact,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: Seen = None,
    ) -> Iterator[Progress]:
        """Install ``artifact`` and yield progress until it is live.

        ``expected`` is the live revision/image/generation the operator saw:
        if the target changed since, Conflict is raised before anything is
        applied (None: no check). Raises OperationFailed (with the backend's reason) when the new
        revision never becomes healthy, Conflict when another change raced
        with this one, PermissionDenied, BackendUnavailable, Cancelled.
        """
        ...

    def preview_rollback(self, to_revision: int | None = None) -> RollbackPreview:
        """Describe what :meth:`rollback` would do, without changing anything.

        ``to_revision`` None means the previous revision. Raises NotFound when
        the revision does not exist, OperationFailed when a rollback would be
        refused (e.g. a paused Kubernetes Deployment).
        """
        ...

    def rollback(
        self,
        to_revision: int | None = None,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: RollbackPreview | None = None,
    ) -> Iterator[Progress]:
        """Roll back to ``to_revision`` (None: the previous one) and yield progress.

        ``expected`` is the preview the operator confirmed: when the target's
        live revision is no longer the one it showed, the rollback is refused
        with Conflict instead of applying something nobody reviewed. Same
        errors as :meth:`rollout`, plus NotFound for a missing revision.
        """
        ...

    def pause(self, *, expected: Seen = None) -> None:
        """Pause rollouts (Kubernetes Deployments support it).

        ``expected`` as for :meth:`rollout`: Conflict when the target changed
        since the operator saw it. Default: raise OperationFailed "pause is
        not supported by <kind> targets".
        """
        raise OperationFailed(f"pause is not supported by {self.kind} targets")

    def resume(self, *, expected: Seen = None) -> None:
        """Resume a paused target.

        ``expected`` as for :meth:`pause`. Default: raise OperationFailed
        "resume is not supported by <kind> targets".
        """
        raise OperationFailed(f"resume is not supported by {self.kind} targets")

    def start(self, *, cancel: CancelToken | None = None) -> Iterator[Progress]:
        """Bring the live revision back up when the console itself runs it; yield progress.

        Local targets run model servers as this console's processes and start
        the recorded live revision again (OperationFailed when nothing was
        ever deployed). Default: the backend keeps the live revision running
        on its own, so there is nothing to start and nothing is yielded.
        """
        return iter(())

    def stop_all(self) -> None:
        """Stop whatever this console runs for the target; never raises.

        Local targets stop their processes (the history keeps the live
        revision for :meth:`start`). Default: nothing runs under the console,
        so nothing is stopped.
        """
        return None

    def restart(self, *, expected: Seen = None) -> None:
        """Restart the running revision without changing it.

        ``expected`` as for :meth:`rollout`: Conflict when the target changed
        since the operator saw it (None: no check).
        """
        ...

    def watch(self, cancel: CancelToken) -> Iterator[TargetEvent]:
        """Yield live events until ``cancel`` is set; reconnects on its own."""
        ...

    def permissions(self) -> dict[str, Permission]:
        """Return, for each name in :data:`ACTIONS`, whether it is allowed and why not."""
        ...

    def close(self) -> None:
        """Release clients, connections and (for local targets) nothing else."""
        ...
