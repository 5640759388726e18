"""Journalled mutating actions on targets: the only way the console changes a target.

The console, the scripting CLI, the release pipeline and the guard all call
these wrappers, so every rollout, rollback, pause, resume and restart gets
the same audit trail: an ``intent`` row is committed before the target is
touched (with the revision live at that moment, best effort), then ``done``
with the revision now live, or ``failed`` with the error text. Errors are
re-raised unchanged after being recorded.

Whether an action may run at all (read-only mode, a read-only target) and
how it is confirmed is decided by :mod:`core.services.action_table`, which
the callers consult first (:meth:`Workspace.run_rollout` and the front
ends); the journal names its rows after that table.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from core.cancel import CancelToken
from core.domain import Artifact, Outcome, Progress, RollbackPreview
from core.errors import Cancelled
from core.journal import Journal, JournalError
from core.services.action_table import ACTIONS
from core.targets.base import Seen, Target

if TYPE_CHECKING:
    from core.alertmanager import Alert, AlertmanagerClient

#: Actions :func:`run_simple` performs, each with the Target method that does it
#: (given the state the operator saw, see :data:`core.targets.base.Seen`).
SIMPLE_ACTIONS: Mapping[str, Callable[[Target, Seen], None]] = {
    "pause": lambda target, seen: target.pause(expected=seen),
    "resume": lambda target, seen: target.resume(expected=seen),
    "restart": lambda target, seen: target.restart(expected=seen),
}

ABANDONED = "stopped following the operation before it ended; verify the target"

#: Error of a change cancelled after it was sent whose effect is not known.
CANCELLED_AFTER_SEND = (
    "cancelled after the change was sent; it may have been applied: verify the target"
)


def error_text(error: BaseException) -> str:
    """Return ``error``'s message as a journal row records it (its class name when empty).

    Never raises.
    """
    text = str(error).strip()
    return text or type(error).__name__


def _observe(target: Target, prefix: str) -> tuple[str, dict[str, Any]]:
    """Return the live revision (as text, "" if unknown) and its image/commit as details.

    Best effort: a target that cannot report its status gives "" and the reason.
    """
    try:
        state = target.status()
    except Exception as error:
        return "", {f"{prefix}status_error": error_text(error)}
    revision = "" if state.revision is None else str(state.revision)
    details = {f"{prefix}image": state.image, f"{prefix}commit": state.commit}
    return revision, {key: value for key, value in details.items() if value}


def finish_entry(journal: Journal, entry: int, outcome: Outcome, error: str = "", **kw: Any) -> str:
    """Record ``outcome`` (and ``error``, ``kw`` as for :meth:`Journal.finish`) on row ``entry``.

    Returns "" when it was recorded, else the reason the journal could not
    record it (so an action that succeeded is not reported as failed because
    of its journal). Never raises.
    """
    try:
        journal.finish(entry, outcome, error, **kw)
    except Exception as failure:
        return error_text(failure)
    return ""


def _live(revision: str, observed: Mapping[str, Any]) -> dict[str, Any]:
    """Return the ``live_*`` details of an observation (``live_revision`` when known)."""
    return {**({"live_revision": revision} if revision else {}), **observed}


def _finish_cancelled(
    journal: Journal,
    entry: int,
    target: Target,
    sent: bool,
    before: tuple[str, Mapping[str, Any]],
) -> None:
    """Record a cancelled action: ``failed``/"cancelled" or ``unknown``.

    Nothing yielded yet means nothing was sent: ``failed`` with "cancelled".
    After the target yielded, the change may have been applied, so the live
    state is read: unchanged from ``before`` (revision, image, commit all
    known and equal) it is still ``failed``/"cancelled" (the target undid
    its attempt); otherwise ``unknown`` with what is live as ``live_*``
    details and CANCELLED_AFTER_SEND as the error.
    """
    if not sent:
        finish_entry(journal, entry, Outcome.FAILED, "cancelled")
        return
    revision, observed = _observe(target, "live_")
    was_revision, was = before
    unchanged = (
        bool(revision)
        and "live_status_error" not in observed
        and "from_status_error" not in was
        and revision == was_revision
        and observed.get("live_image") == was.get("from_image")
        and observed.get("live_commit") == was.get("from_commit")
    )
    details = _live(revision, observed)
    if unchanged:
        finish_entry(journal, entry, Outcome.FAILED, "cancelled", details=details)
    else:
        finish_entry(journal, entry, Outcome.UNKNOWN, CANCELLED_AFTER_SEND, details=details)


def _journalled(
    journal: Journal,
    target: Target,
    action: str,
    start: Callable[[], Iterator[Progress]],
    *,
    reason: str,
    cancel: CancelToken | None,
    to_revision: str,
    details: Mapping[str, Any],
    stop_after_first: bool = False,
) -> Iterator[Progress]:
    """Run ``start()`` between a journal row's intent and its outcome; yield its progress.

    The row's ``from_*`` are the target's status read now (what was live when
    the action was attempted, also when it is then refused). Contract as
    :func:`run_rollout`.
    """
    if cancel is not None:
        cancel.raise_if_cancelled()
    from_revision, before = _observe(target, "from_")
    entry = journal.begin(
        target.model,
        target.name,
        action,
        from_revision=from_revision,
        to_revision=to_revision,
        reason=reason,
        details={**details, **before},
    )
    sent = False  # True once the target yielded: from then on the change may have landed
    try:
        steps = start()
        for progress in steps:
            sent = True
            yield progress
            if stop_after_first:  # acknowledged: the backend carries it out on its own
                if isinstance(steps, Generator):
                    steps.close()
                break
    except Cancelled:
        _finish_cancelled(journal, entry, target, sent, (from_revision, before))
        raise
    except GeneratorExit:
        revision, live = _observe(target, "live_")
        finish_entry(journal, entry, Outcome.UNKNOWN, ABANDONED, details=_live(revision, live))
        raise
    except Exception as error:
        finish_entry(journal, entry, Outcome.FAILED, error_text(error))
        raise
    except BaseException as error:  # KeyboardInterrupt, SystemExit: nobody knows how it ended
        finish_entry(journal, entry, Outcome.UNKNOWN, f"interrupted ({type(error).__name__})")
        raise
    if stop_after_first:  # what is live now says nothing yet: keep the requested revision
        problem = finish_entry(journal, entry, Outcome.DONE, details={"waited": False})
    else:
        revision, after = _observe(target, "")
        problem = finish_entry(
            journal, entry, Outcome.DONE, to_revision=revision or None, details=after
        )
    if problem:
        yield Progress(
            step="journal",
            message=f"{action} done, but the journal could not record it: {problem}",
            level="warning",
        )


def run_rollout(
    journal: Journal,
    target: Target,
    artifact: Artifact,
    reason: str = "",
    cancel: CancelToken | None = None,
    *,
    expected: Seen = None,
) -> Iterator[Progress]:
    """Roll ``artifact`` out on ``target`` with an audit row; yield the target's progress.

    ``expected`` is the state the operator saw (see :meth:`Target.rollout`):
    a target changed since refuses with Conflict, recorded as ``failed``.
    While iterating, raises what :meth:`Target.rollout` raises, after
    recording it as ``failed``. Cancelled is recorded as ``failed``/"cancelled"
    when nothing was sent or the live state is unchanged, else as ``unknown``
    with the live state (see :func:`_finish_cancelled`). The intent is written
    when iteration starts. Closing the iterator early records outcome
    ``unknown`` with the live state.
    """
    return _journalled(
        journal,
        target,
        ACTIONS["rollout"].journal,
        lambda: target.rollout(artifact, reason=reason, cancel=cancel, expected=expected),
        reason=reason,
        cancel=cancel,
        to_revision="",
        details={
            "artifact": artifact.describe(),
            "image": artifact.image,
            "commit": artifact.commit,
        },
    )


def run_rollback(
    journal: Journal,
    target: Target,
    to_revision: int | None = None,
    reason: str = "",
    cancel: CancelToken | None = None,
    *,
    expected: RollbackPreview | None = None,
    wait: bool = True,
) -> Iterator[Progress]:
    """Roll ``target`` back to ``to_revision`` (None: the previous one) with an audit row.

    ``expected`` is the confirmed preview (see :meth:`Target.rollback`). Same
    contract as :func:`run_rollout`; raises what :meth:`Target.rollback` raises.
    ``wait`` False stops after the first item when the target
    :attr:`~core.targets.base.Target.acknowledges_first` (the backend accepted
    the change and carries it out on its own) and records ``done`` with the
    detail ``"waited": false``; other targets are followed to the end anyway.
    """
    return _journalled(
        journal,
        target,
        ACTIONS["rollback"].journal,
        lambda: target.rollback(to_revision, reason=reason, cancel=cancel, expected=expected),
        reason=reason,
        cancel=cancel,
        to_revision="" if to_revision is None else str(to_revision),
        details={"requested": "previous" if to_revision is None else str(to_revision)},
        stop_after_first=not wait and target.acknowledges_first,
    )


def run_simple(
    journal: Journal,
    target: Target,
    action: str,
    reason: str = "",
    *,
    cancel: CancelToken | None = None,
    expected: Seen = None,
) -> None:
    """Pause, resume or restart ``target`` with an audit row.

    ``expected`` is the state the operator saw: a target changed since
    refuses with Conflict (recorded as ``failed``, then re-raised).
    Raises ValueError for another ``action`` and re-raises what the target
    raises after recording it as ``failed``. The action is one call:
    ``cancel`` is honoured until it is made (Cancelled, nothing journalled),
    not during it.
    """
    perform = SIMPLE_ACTIONS.get(action)
    if perform is None:
        raise ValueError(f"unknown action {action!r} (expected {', '.join(SIMPLE_ACTIONS)})")

    def start() -> Iterator[Progress]:
        perform(target, expected)
        return iter(())

    for progress in _journalled(
        journal,
        target,
        ACTIONS[action].journal,
        start,
        reason=reason,
        cancel=cancel,
        to_revision="",
        details={},
    ):
        if progress.step == "journal":
            raise JournalError(progress.message)


def run_silence(
    journal: Journal,
    client: AlertmanagerClient,
    alert: Alert,
    *,
    duration: float,
    reason: str,
) -> str:
    """Silence ``alert`` in Alertmanager for ``duration`` seconds, with an audit row.

    The row (action ``silence``, model from the alert's ``model`` label, no
    target) is written as ``intent`` first, then ``done`` with the silence id
    or ``failed`` with Alertmanager's error. Returns the silence id. Re-raises
    what the client raises (OperationFailed when Alertmanager refuses,
    BackendUnavailable, InvalidResponse) after recording it; raises
    JournalError when the outcome could not be recorded.
    """
    from core import audit
    from core.alertmanager import matchers_for

    details = {"alertname": alert.name, "fingerprint": alert.fingerprint, "duration": duration}
    entry = journal.begin(
        alert.model, "", ACTIONS["silence"].journal, reason=reason, details=details
    )
    try:
        silence_id = client.create_silence(
            matchers_for(alert),
            duration=duration,
            created_by=audit.whoami().user or "mrc",
            comment=reason,
        )
    except Exception as error:
        finish_entry(journal, entry, Outcome.FAILED, error_text(error))
        raise
    problem = finish_entry(journal, entry, Outcome.DONE, details={"silence_id": silence_id})
    if problem:
        raise JournalError(f"silence done, but the journal could not record it: {problem}")
    return silence_id
