"""The console's long operations: tracked, cancellable thread workers reporting by message.

Every operation the console starts runs here, as a Textual thread worker of
the app (``run_worker(thread=True, exit_on_error=False, group=...)``), so the
event loop never waits for git, Docker, Kubernetes or a test command.

How workers report back (the one documented place):

* They post the typed messages below to the app (``post_message`` is
  thread-safe); the app applies them on its event loop. Workers never write
  the app's state.
* The output of a test run, build or release (lines and steps) goes into its
  :class:`~tui.runs.LiveOperation`, a locked, bounded buffer screens read.

Every mutating operation (tests, build, release with its push and rollout,
rollout, rollback, pause, resume, restart, retrain) is registered with its
:class:`~core.cancel.CancelToken` while it runs. When the console quits it
calls :meth:`Operations.cancel_all`, then :meth:`Operations.wait_closed`
(bounded): the backend is asked to stop, and :mod:`core.services.actions`
closes the journal row (``failed``/"cancelled" when nothing was sent,
``unknown`` with what is live otherwise) before the worker ends; a retrain's
row is closed by :mod:`core.services.retrain` (its command is stopped first).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.message import Message

from core.domain import Progress
from core.errors import Cancelled
from tui.runs import LiveOperation

if TYPE_CHECKING:
    from textual.app import App

    from core.domain import RollbackPreview, TestRun
    from core.services.workspace import Workspace
    from core.targets.base import Seen

#: Operations kept for the Tests screen and progress views (newest last).
KEEP = 50

#: Kinds listed by :meth:`Operations.history`: the ones with live output.
WITH_OUTPUT = frozenset({"test", "build", "release", "retrain"})


# -- messages ------------------------------------------------------------------


class TestRunChanged(Message):
    """A test run was queued, started or finished; ``run`` is its journal record.

    ``status_changed`` is True when its status differs from the last one seen
    (the Tests screen shows the row at once).
    """

    __test__ = False  # not a pytest test class

    def __init__(self, op: LiveOperation, run: TestRun, status_changed: bool) -> None:
        super().__init__()
        self.op = op
        self.run = run
        self.status_changed = status_changed


class OperationEnded(Message):
    """A tracked operation ended.

    ``error`` is "" when it succeeded. ``notice`` is what to tell the
    operator ("" for nothing) with ``severity`` and ``timeout`` (None: the
    default). ``changed`` is True when a target or the journal may have
    changed (previews and the visible screen are refreshed). ``alert`` is a
    guard alert to show in the banner ("" for none).
    """

    def __init__(
        self,
        op: LiveOperation,
        *,
        error: str = "",
        notice: str = "",
        severity: str = "information",
        timeout: float | None = None,
        changed: bool = True,
        alert: str = "",
    ) -> None:
        super().__init__()
        self.op = op
        self.error = error
        self.notice = notice
        self.severity = severity
        self.timeout = timeout
        self.changed = changed
        self.alert = alert


class PreviewRead(Message):
    """A rollback preview of ``model``/``target`` was read (``preview``) or not (``error``).

    ``confirm`` is True when the operator is waiting for it (open the confirm
    dialog, or say why not); ``cache`` is True when it is the preview ``u``
    uses (rollback to the previous revision).
    """

    def __init__(
        self,
        model: str,
        target: str,
        preview: RollbackPreview | None,
        error: str = "",
        *,
        confirm: bool = False,
        cache: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.target = target
        self.preview = preview
        self.error = error
        self.confirm = confirm
        self.cache = cache


class PermissionsRead(Message):
    """Why each (model, target, action) is not allowed; allowed ones are absent."""

    def __init__(self, reasons: dict[tuple[str, str, str], str]) -> None:
        super().__init__()
        self.reasons = reasons


# -- the operations ------------------------------------------------------------


class Operations:
    """Starts the console's long operations as workers of ``app`` and tracks them.

    Start methods are called on the event loop; the registry methods
    (:meth:`running`, :meth:`cancel_all`, :meth:`wait_closed`) from any thread.
    """

    def __init__(self, app: App[Any], workspace: Workspace) -> None:
        self._app = app
        self._workspace = workspace
        self._history: list[LiveOperation] = []
        self._running: dict[int, LiveOperation] = {}
        self._changed = threading.Condition()
        self._closed = False

    # -- registry ------------------------------------------------------------

    def history(self, kind: str | None = None) -> list[LiveOperation]:
        """Return the tests, builds and releases started here (the last 50), oldest first."""
        return [op for op in self._history if kind is None or op.kind == kind]

    def remember(self, op: LiveOperation) -> None:
        """Keep ``op`` in :meth:`history` (the newest :data:`KEEP` are kept)."""
        self._history.append(op)
        del self._history[:-KEEP]

    def running(self) -> list[LiveOperation]:
        """Return the mutating operations running now, oldest first."""
        with self._changed:
            return list(self._running.values())

    def cancel_all(self) -> list[LiveOperation]:
        """Cancel every running mutating operation; return them.

        Operations started afterwards are cancelled at once (the console is
        closing). Returns without waiting: see :meth:`wait_closed`.
        """
        with self._changed:
            self._closed = True
            running = list(self._running.values())
        for op in running:
            op.cancel.cancel()
        return running

    def wait_closed(self, timeout: float) -> list[LiveOperation]:
        """Wait up to ``timeout`` seconds until no mutating operation runs.

        Never needs the event loop (the hangup handler calls it on the loop's
        thread). Returns the operations still running (a backend call that
        ignores cancellation; their rows are closed as ``unknown`` when the
        journal is next opened).
        """
        with self._changed:
            self._changed.wait_for(lambda: not self._running, timeout)
            return list(self._running.values())

    def _start(
        self,
        op: LiveOperation,
        body: Callable[[LiveOperation], OperationEnded],
        group: str,
    ) -> LiveOperation:
        """Register ``op`` and run ``body(op)`` in a thread worker of group ``group``."""
        op.started = time.monotonic()
        with self._changed:
            self._running[op.key] = op
            closed = self._closed
        if closed:
            op.cancel.cancel()
        if op.kind in WITH_OUTPUT:
            self.remember(op)
        self._app.run_worker(
            partial(self._tracked, op, body),
            name=op.describe(),
            group=group,
            thread=True,
            exit_on_error=False,
        )
        return op

    def _tracked(self, op: LiveOperation, body: Callable[[LiveOperation], OperationEnded]) -> None:
        """Run ``body``; post what it returns; unregister ``op`` (worker thread)."""
        try:
            try:
                ended = body(op)
            except Exception as error:  # a bug in a body: still report and unregister
                ended = OperationEnded(
                    op, error=str(error), notice=f"{op.describe()} failed: {error}",
                    severity="error",
                )  # fmt: skip
            op.ended = time.monotonic()
            self._app.post_message(ended)
        finally:
            with self._changed:
                self._running.pop(op.key, None)
                self._changed.notify_all()

    # -- tests, builds, releases ----------------------------------------------

    def tests(self, model: str, commit: str) -> LiveOperation:
        """Run ``model``'s tests at ``commit``; its record arrives by TestRunChanged."""
        return self._start(
            LiveOperation(kind="test", model=model, commit=commit), self._tests, "tests"
        )

    def _tests(self, op: LiveOperation) -> OperationEnded:
        from core.domain import OutputLine
        from core.testing import RunFinished, RunQueued, RunStarted

        last: TestRun | None = None
        try:
            for item in self._workspace.run_tests(op.model, op.commit, cancel=op.cancel):
                if isinstance(item, OutputLine):
                    op.append(item.text, item.stream)
                elif isinstance(item, RunQueued | RunStarted | RunFinished):
                    changed = last is None or last.status != item.run.status
                    last = item.run
                    self._app.post_message(TestRunChanged(op, item.run, changed))
        except Exception as error:
            return OperationEnded(
                op,
                error=str(error),
                notice=f"test run of {op.commit[:8]} failed to start: {error}",
                severity="error",
                timeout=15,
            )
        if last is None:
            return OperationEnded(op)
        status = last.status.value
        return OperationEnded(
            op,
            notice=f"tests at {op.commit[:8]}: {status}",
            severity="information" if status == "passed" else "warning",
        )

    def build(self, model: str, commit: str) -> LiveOperation:
        """Build ``model``'s image at ``commit``; steps and log go into the returned op."""
        return self._start(
            LiveOperation(kind="build", model=model, commit=commit), self._build, "build"
        )

    def _build(self, op: LiveOperation) -> OperationEnded:
        config = self._workspace.config.model(op.model)
        try:
            builder = self._workspace.image_builder(op.model)
            repo = self._workspace.repository(op.model)
            for progress in builder.build(
                repo, op.commit, config.image, op.model, config.dockerfile, cancel=op.cancel
            ):
                op.add_step(progress)
                if progress.step == "build" and progress.message:
                    op.append(progress.message)
        except Exception as error:
            op.add_step(Progress("failed", str(error), level="error"))
            return OperationEnded(op, error=str(error), changed=False)
        return OperationEnded(op, changed=False)

    def release(self, model: str, commit: str, target: str, reason: str) -> LiveOperation:
        """Run the release pipeline of ``commit`` to ``target``; progress goes into the op."""
        op = LiveOperation(kind="release", model=model, commit=commit, target=target)
        return self._start(op, partial(self._release, reason=reason), "release")

    def _release(self, op: LiveOperation, reason: str) -> OperationEnded:
        from core.services.release import ReleasePipeline

        error = alert = ""
        try:
            pipeline = ReleasePipeline(self._workspace)
            for event in pipeline.run(
                op.model, op.commit, op.target, reason=reason, cancel=op.cancel
            ):
                if event.line:
                    op.append(event.line, event.stream)
                step = event.step or "release"
                if event.progress is not None:
                    op.add_step(
                        Progress(
                            step,
                            event.progress.message,
                            event.progress.fraction,
                            event.progress.detail,
                            event.progress.level,
                        )
                    )
                elif event.kind == "step_failed":
                    op.add_step(Progress(step, event.message, level="error"))
                elif event.kind != "step_progress" or event.message:
                    op.add_step(Progress(step, event.message or event.kind.replace("_", " ")))
                if event.kind == "release_finished":
                    if event.outcome != "done":
                        error = f"{event.outcome}: {event.message}"
                    if event.outcome == "alerted" or (
                        event.guard is not None and event.guard.action == "alert"
                    ):
                        alert = f"GUARD ALERT {op.model}: {event.message} (u rolls back)"
        except Exception as failure:
            op.add_step(Progress("failed", str(failure), level="error"))
            return OperationEnded(op, error=str(failure))
        return OperationEnded(op, error=error, alert=alert)

    def retrain(self, model: str, reason: str) -> LiveOperation:
        """Retrain ``model`` at its deployed commit; output and steps go into the returned op.

        The trigger (current drift, who, ``reason``) is read in the worker.
        """
        op = LiveOperation(kind="retrain", model=model)
        return self._start(op, partial(self._retrain, reason=reason), "retrain")

    def _retrain(self, op: LiveOperation, reason: str) -> OperationEnded:
        from core.services.retrain import RetrainResult, run_retrain, trigger_for

        result: RetrainResult | None = None
        try:
            op.add_step(Progress("trigger", "reading the current drift"))
            trigger = trigger_for(self._workspace, op.model, reason=reason)
            score = "unknown" if trigger.score is None else f"{trigger.score:.3f}"
            op.add_step(Progress("trigger", f"drift {score} ({trigger.method or '-'})"))
            for progress in run_retrain(
                self._workspace, op.model, trigger=trigger, cancel=op.cancel
            ):
                if progress.step == "output":
                    op.append(progress.message)
                elif isinstance(progress.result, RetrainResult):
                    result = progress.result
                else:
                    op.add_step(progress)
        except Cancelled as error:
            op.add_step(Progress("cancelled", str(error) or "cancelled", level="warning"))
            return OperationEnded(op, error=f"cancelled: {error}", notice=f"retrain of "
                                  f"{op.model} cancelled", severity="warning")  # fmt: skip
        except Exception as error:
            op.add_step(Progress("failed", str(error), level="error"))
            return _failed(op, f"retrain of {op.model} failed: {error}")
        if result is None:
            return _failed(op, f"retrain of {op.model} ended without a commit")
        short = result.commit[:8]
        op.add_step(
            Progress("done", f"commit {short} on {result.branch}: press d on it in Commits (1)")
        )
        return OperationEnded(
            op,
            notice=f"retrained {op.model}: {short} on {result.branch}; "
            "press d on it in Commits to release",
            timeout=30,
        )

    # -- target actions -------------------------------------------------------

    def rollout(
        self, model: str, target: str, value: str, reason: str, expected: Seen = None
    ) -> LiveOperation:
        """Roll out what ``value`` names on ``target`` (an image, or a commit on local targets).

        ``expected`` is the state the operator saw (the Rollouts row when the
        key was pressed): the target refuses with a conflict if it changed since.
        """
        op = LiveOperation(kind="rollout", model=model, target=target)
        body = partial(self._rollout, value=value, reason=reason, expected=expected)
        return self._start(op, body, "rollout")

    def _rollout(
        self, op: LiveOperation, value: str, reason: str, expected: Seen
    ) -> OperationEnded:
        workspace = self._workspace
        where = f"{op.model}/{op.target}"
        try:
            handle = workspace.target(op.model, op.target)
            artifact = workspace.artifact_from_input(op.model, op.target, value)
            for _ in workspace.run_rollout(
                handle, artifact, reason=reason, cancel=op.cancel, expected=expected
            ):
                pass
        except Exception as error:
            return _failed(op, f"rollout of {where} failed: {error}")
        return OperationEnded(op, notice=f"{where}: rolled out {value}")

    def rollback(
        self,
        model: str,
        target: str,
        to_revision: int,
        reason: str,
        preview: RollbackPreview | None = None,
    ) -> LiveOperation:
        """Roll ``target`` back to ``to_revision`` through the journalled action.

        ``preview`` is what the operator confirmed: the target refuses with a
        conflict if its live revision changed since.
        """
        op = LiveOperation(kind="rollback", model=model, target=target)
        body = partial(self._rollback, to_revision=to_revision, reason=reason, preview=preview)
        return self._start(op, body, "rollback")

    def _rollback(
        self, op: LiveOperation, to_revision: int, reason: str, preview: RollbackPreview | None
    ) -> OperationEnded:
        workspace = self._workspace
        where = f"{op.model}/{op.target}"
        try:
            handle = workspace.target(op.model, op.target)
            for _ in workspace.run_rollback(
                handle, to_revision, reason=reason, cancel=op.cancel, expected=preview
            ):
                pass
        except Exception as error:
            return _failed(op, f"rollback of {where} failed: {error}")
        return OperationEnded(op, notice=f"{where} rolled back to revision {to_revision}")

    def simple(
        self, model: str, target: str, action: str, reason: str = "", expected: Seen = None
    ) -> LiveOperation:
        """Pause, resume or restart ``target`` through the journalled action (with ``reason``).

        ``expected`` is the state the operator saw (see :meth:`rollout`).
        """
        op = LiveOperation(kind=action, model=model, target=target)
        return self._start(op, partial(self._simple, reason=reason, expected=expected), "simple")

    def _simple(self, op: LiveOperation, reason: str, expected: Seen) -> OperationEnded:
        from core.services import action_table, actions

        where = f"{op.model}/{op.target}"
        try:
            action_table.require(self._workspace, op.kind, op.model, op.target)
            handle = self._workspace.target(op.model, op.target)
            actions.run_simple(
                self._workspace.journal,
                handle,
                op.kind,
                reason,
                cancel=op.cancel,
                expected=expected,
            )
        except Exception as error:
            return _failed(op, f"{op.kind} of {where} failed: {error}")
        return OperationEnded(op, notice=f"{op.kind}: {where} done")

    # -- reads (not tracked: nothing to journal) ------------------------------

    def warm_history(self, model: str, target: str) -> None:
        """Read the rollback preview of ``model``/``target`` so ``u`` opens instantly."""
        self._app.run_worker(
            partial(self._preview, model, target, None, confirm=False),
            name=f"preview {model}/{target}",
            group="warm-history",
            exclusive=True,
            thread=True,
            exit_on_error=False,
        )

    def load_preview(self, model: str, target: str, to_revision: int | None) -> None:
        """Read a rollback preview for the confirm dialog (PreviewRead with ``confirm``)."""
        self._app.run_worker(
            partial(self._preview, model, target, to_revision, confirm=True),
            name=f"preview {model}/{target}",
            group="preview",
            exclusive=True,
            thread=True,
            exit_on_error=False,
        )

    def _preview(self, model: str, target: str, to_revision: int | None, *, confirm: bool) -> None:
        cache = to_revision is None
        try:
            preview = self._workspace.target(model, target).preview_rollback(to_revision)
        except Exception as error:  # shown in the dialog / notification
            message = PreviewRead(model, target, None, str(error), confirm=confirm, cache=cache)
        else:
            message = PreviewRead(model, target, preview, confirm=confirm, cache=cache)
        self._app.post_message(message)

    def load_permissions(self) -> None:
        """Ask every opened target which actions the credentials allow (RBAC, reachability)."""
        self._app.run_worker(
            self._permissions,
            name="permissions",
            group="permissions",
            thread=True,
            exit_on_error=False,
        )

    def _permissions(self) -> None:
        from tui import data

        reasons: dict[tuple[str, str, str], str] = {}
        for model, target, _kind in data.target_pairs(self._workspace):
            try:
                allowed = self._workspace.target(model, target).permissions()
            except Exception:
                continue
            for action, permission in allowed.items():
                if not permission.allowed:
                    reasons[(model, target, action)] = permission.reason or "not allowed"
        self._app.post_message(PermissionsRead(reasons))


def _failed(op: LiveOperation, notice: str) -> OperationEnded:
    """Return the end of a target action that raised: an error shown for 15 seconds."""
    return OperationEnded(op, error=notice, notice=notice, severity="error", timeout=15)
