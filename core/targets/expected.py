"""The state an operator saw of a target, and the check that refuses a change when it moved.

Every mutating Target method takes ``expected``: what the operator was shown
when deciding (the Rollouts row, the state printed before a prompt, the state
read when a release started). When the target's live state no longer matches,
the change is refused with :class:`~core.errors.Conflict`, so a change made by
someone else meanwhile is never silently overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import Conflict

if TYPE_CHECKING:
    from core.domain import RolloutState


@dataclass(frozen=True, slots=True)
class ExpectedState:
    """The live revision, image, commit and pause state the operator saw.

    ``revision`` None means nothing was live. ``image`` and ``commit`` ""
    and ``paused`` None are not compared. ``basis`` is the backend's opaque
    token of the state (Kubernetes: the Deployment's fingerprint of its spec
    and non-controller annotations); when set, targets that produce one
    compare it instead of the other fields.
    """

    revision: int | None
    image: str = ""
    commit: str = ""
    paused: bool | None = None
    basis: str = ""

    @classmethod
    def of(cls, seen: RolloutState | ExpectedState) -> ExpectedState:
        """Return ``seen`` as an ExpectedState (a RolloutState keeps its basis)."""
        from core.domain import Phase

        if isinstance(seen, ExpectedState):
            return seen
        return cls(
            revision=seen.revision,
            image=seen.image,
            commit=seen.commit,
            paused=seen.phase is Phase.PAUSED,
            basis=seen.basis,
        )

    def differences(self, now: ExpectedState) -> list[str]:
        """Return what differs from ``now`` ("revision 2 -> 3", "image a -> b", "paused").

        Fields this state leaves empty are not compared; ``basis`` is not
        compared here (see :func:`refuse_if_changed`).
        """
        changes = []
        if self.revision != now.revision:
            changes.append(f"revision {_text(self.revision)} -> {_text(now.revision)}")
        if self.image and self.image != now.image:
            changes.append(f"image {self.image} -> {now.image or '-'}")
        if self.commit and self.commit != now.commit:
            changes.append(f"commit {self.commit[:12]} -> {now.commit[:12] or '-'}")
        if self.paused is not None and now.paused is not None and self.paused != now.paused:
            changes.append("paused" if now.paused else "resumed")
        return changes


def refuse_if_changed(
    what: str,
    action: str,
    expected: RolloutState | ExpectedState | None,
    now: RolloutState | ExpectedState,
) -> None:
    """Raise Conflict when ``now`` is not the state ``expected`` describes; else return None.

    Both basis tokens set: they are compared (and the visible fields only
    explain the change); otherwise revision, image, commit and pause state
    are. ``expected`` None checks nothing. ``what`` names the target and
    ``action`` the refused change in the message.
    """
    if expected is None:
        return
    seen, live = ExpectedState.of(expected), ExpectedState.of(now)
    changes = seen.differences(live)
    if seen.basis and live.basis:
        if seen.basis == live.basis:
            return
        changes = changes or ["its spec or annotations changed"]
    elif not changes:
        return
    raise Conflict(
        f"{what} changed since it was shown ({'; '.join(changes)}): {action} refused, "
        "nothing was applied; review it and try again"
    )


def _text(revision: int | None) -> str:
    return "-" if revision is None else str(revision)
