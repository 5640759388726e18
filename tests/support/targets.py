"""An in-memory target for console tests and benchmarks of the screens.

It answers like a Kubernetes Deployment would (revisions, rollback to the
previous one creates a new revision) so the screens can be exercised without
a cluster; every real target kind is proven against its backend elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

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
from tests.support.repos import BASE_TIME

#: The console's clock in these tests: a day after the sample history starts.
FIXED_NOW = datetime.fromtimestamp(BASE_TIME, UTC) + timedelta(days=1)


@dataclass
class ScriptedTarget:
    """A target whose history is a list; rollback moves the live revision like kubectl.

    With ``hold`` set, a rollback applies the change, yields its first
    progress, sets ``holding`` and then follows the "rollout" until ``hold``
    is set or its cancel token is cancelled (then it raises Cancelled, as a
    Kubernetes target does when it stops following a rollout).
    """

    model: str
    name: str
    kind: str = "kubernetes"
    replicas: int = 3
    revisions: list[Revision] = field(default_factory=list)
    calls: list[tuple[str, object]] = field(default_factory=list)
    denied: dict[str, str] = field(default_factory=dict)
    fail_with: Exception | None = None
    hold: threading.Event | None = None
    holding: threading.Event = field(default_factory=threading.Event)

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
            desired=self.replicas,
            ready=self.replicas,
            updated=self.replicas,
            available=self.replicas,
            message=(
                f"deployment {self.model!r} successfully rolled out"
                if self.kind == "kubernetes"
                else f"revision {live.number} serving"
            ),
            since=live.created,
        )

    def detail(self) -> TargetDetail:
        state = self.status()
        pods = tuple(
            PodInfo(f"{self.model}-7d9f-{i}", "Running", True, 0, state.image)
            for i in range(self.replicas)
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
            diff=(
                f"-    image: {live.image}\n+    image: {target.image}\n"
                if live.image
                else f"-    commit: {live.commit}\n+    commit: {target.commit}\n"
            ),
        )

    def rollback(
        self, to_revision=None, *, reason="", cancel=None, expected=None
    ) -> Iterator[Progress]:  # type: ignore[no-untyped-def]
        self.calls.append(("rollback", to_revision))
        if self.fail_with is not None:
            raise self.fail_with
        if expected is not None and expected.from_revision != self._live().number:
            from core.errors import Conflict

            raise Conflict(
                f"live revision is now {self._live().number}, was {expected.from_revision}"
            )
        preview = self.preview_rollback(to_revision)
        target = next(r for r in self.revisions if r.number == preview.to_revision)
        new_number = max(r.number for r in self.revisions) + 1
        self.revisions = [replace(r, current=False) for r in self.revisions if r is not target]
        self.revisions.append(replace(target, number=new_number, current=True))
        yield Progress("rollback", f"rolled back to revision {preview.to_revision}")
        if self.hold is not None:
            self._follow(self.hold, cancel)

    def _follow(self, hold: threading.Event, cancel) -> None:  # type: ignore[no-untyped-def]
        """Wait until ``hold`` is set or ``cancel`` is cancelled (then raise Cancelled)."""
        if cancel is not None:
            cancel.on_cancel(hold.set)
        self.holding.set()
        hold.wait()
        if cancel is not None and cancel.cancelled:
            from core.errors import Cancelled

            raise Cancelled(f"stopped following the rollback of {self.model}; it goes on")

    def rollout(  # type: ignore[no-untyped-def]
        self, artifact: Artifact, *, reason="", cancel=None, expected=None
    ) -> Iterator[Progress]:
        self.calls.append(("rollout", artifact))
        yield Progress("rollout", "done")

    def pause(self, *, expected=None) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(("pause", None))

    def resume(self, *, expected=None) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(("resume", None))

    def restart(self, *, expected=None) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(("restart", None))

    def watch(self, cancel):  # type: ignore[no-untyped-def]
        """Yield nothing until ``cancel`` is set: a quiet target's watch never ends on its own."""
        while not cancel.wait(60.0):
            pass
        yield from ()

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


class UnwatchableTarget(ScriptedTarget):
    """A scripted target whose watch fails as an unreachable backend's does.

    Only for the console's fallback: its status still answers, so the
    Rollouts screen can poll it. ``watch_error`` is the message raised.
    """

    watch_error: str = "cannot reach the event stream: connection refused"

    def watch(self, cancel):  # type: ignore[no-untyped-def]
        from core.errors import BackendUnavailable

        raise BackendUnavailable(self.watch_error)
        yield  # a generator, like every target's watch
