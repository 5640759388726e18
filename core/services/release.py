"""The release pipeline: tests -> build -> push -> rollout -> wait -> verify.

:meth:`ReleasePipeline.run` turns one commit into a live revision on one
target and yields :class:`ReleaseEvent` values the console renders, the CLI
prints and the tests iterate. Nothing reaches the target unless the commit's
tests pass (and its quality metrics meet the model's ``quality`` minimums).
The rollout goes through :mod:`core.services.actions`, so it has its own intent/outcome
row in the audit trail; the release itself is a journal row with one row per
step, written before the step starts and closed when it ends. Cancelling (or
a crash) at any step therefore leaves a record of what was done and of the
step in progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from core.cancel import CancelToken
from core.config import ModelConfig
from core.domain import Artifact, OutputLine, Phase, Progress, RunStatus, TestRun
from core.errors import (
    BackendUnavailable,
    Cancelled,
    MrcError,
    NotFound,
)
from core.services import action_table
from core.services import guard as guard_mod
from core.services.guard import GuardEvent
from core.targets.base import Seen, Target
from core.targets.expected import ExpectedState
from core.targets.kinds import artifact_rule

if TYPE_CHECKING:
    from core.journal import Journal
    from core.services.workspace import Workspace

#: The pipeline's steps, in order.
STEPS = ("tests", "build", "push", "rollout", "wait", "verify")

# ReleaseEvent.kind values.
RELEASE_STARTED = "release_started"
STEP_STARTED = "step_started"
STEP_PROGRESS = "step_progress"
STEP_FINISHED = "step_finished"
STEP_SKIPPED = "step_skipped"
STEP_FAILED = "step_failed"
RELEASE_FINISHED = "release_finished"

# Release outcomes (ReleaseEvent.outcome of RELEASE_FINISHED and the journal row).
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
ROLLED_BACK = "rolled_back"  # the guard found a breach and rolled back
ALERTED = "alerted"  # the guard found a breach; automatic rollback is off
INCONCLUSIVE = "inconclusive"  # live, but the guard had no verdict: not verified


@dataclass(frozen=True, slots=True)
class ReleaseEvent:
    """One thing that happened during a release.

    ``kind`` is one of RELEASE_STARTED, STEP_STARTED, STEP_PROGRESS,
    STEP_FINISHED, STEP_SKIPPED, STEP_FAILED, RELEASE_FINISHED. ``step`` is a
    name from :data:`STEPS` ("" for release-level events). STEP_PROGRESS
    carries either ``progress`` (build, push, rollout), ``line`` (test output)
    or ``guard`` (verify). STEP_FAILED carries the step's journalled outcome in
    ``outcome`` ("failed" or "inconclusive"). RELEASE_FINISHED carries ``outcome``
    (DONE, FAILED, CANCELLED, ROLLED_BACK, ALERTED or INCONCLUSIVE) and, except
    for DONE, the reason in ``message``; ``error`` holds the exception that
    ended it and ``guard`` the guard's last event when the verify step ended it.
    DONE means verified: every guard check had data and none breached (or no
    checks are configured). INCONCLUSIVE means the new revision is live but
    the guard had no verdict (``guard.action`` says whether the operator is
    asked to decide); a rollback after an inconclusive window is ROLLED_BACK
    with a message that says inconclusive.
    """

    kind: str
    model: str
    target: str
    step: str = ""
    message: str = ""
    progress: Progress | None = None
    line: str = ""
    stream: str = "stdout"
    guard: GuardEvent | None = None
    outcome: str = ""
    release_id: int | None = None
    commit: str = ""
    error: BaseException | None = None


_Step = Generator[ReleaseEvent, None, str]


class EventMaker(Protocol):
    """Makes the ReleaseEvents of one release (model, target, id and commit filled in)."""

    def __call__(self, kind: str, step: str = "", **fields: Any) -> ReleaseEvent:
        """Return a ReleaseEvent of ``kind`` in ``step`` with ``fields``."""
        ...


class _StepFailed(Exception):
    """Internal: a step ended badly; ``outcome`` says how the release ends."""

    def __init__(
        self,
        message: str,
        outcome: str = FAILED,
        error: BaseException | None = None,
        guard: GuardEvent | None = None,
    ):
        super().__init__(message)
        self.outcome = outcome
        self.error = error
        self.guard = guard


class ReleaseRecord:
    """The release's rows in the journal (one release row, one row per step).

    Every write is best effort only in the sense that a journal without the
    release API (an old file) raises at construction, before anything runs.
    """

    def __init__(
        self, journal: Journal, *, model: str, target: str, commit: str, reason: str
    ) -> None:
        self.journal = journal
        self.id: int = journal.start_release(
            model=model, target=target, commit=commit, reason=reason
        )
        self._step_ids: dict[str, int] = {}

    def step_started(self, step: str) -> None:
        """Write the row of ``step`` (state running) before the step does anything."""
        self._step_ids[step] = self.journal.start_step(self.id, step)

    def step_finished(self, step: str, outcome: str, message: str = "") -> None:
        """Close the row of ``step`` with ``outcome`` (done/failed/skipped/cancelled)."""
        step_id = self._step_ids.get(step)
        if step_id is None:
            step_id = self.journal.start_step(self.id, step)
        self.journal.finish_step(step_id, outcome, message)

    def finished(self, outcome: str, message: str = "") -> None:
        """Close the release row with its outcome."""
        self.journal.finish_release(self.id, outcome, message)


class ReleasePipeline:
    """Runs releases for the models of a :class:`core.services.workspace.Workspace`.

    ``wait_timeout`` bounds the wait-for-completion step (seconds);
    ``poll`` is the status polling interval of that step.
    """

    def __init__(self, workspace: Workspace, *, wait_timeout: float = 600.0, poll: float = 1.0):
        self.workspace = workspace
        self.wait_timeout = wait_timeout
        self.poll = poll

    def run(
        self,
        model: str,
        commit: str,
        target: str | None = None,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: Seen = None,
    ) -> Iterator[ReleaseEvent]:
        """Release ``commit`` of ``model`` to ``target`` (None: the model's first target).

        ``expected`` is the target state the operator confirmed the release
        against (None: the state read when the release starts, see
        :func:`live_state`); the rollout step passes it to the target, so a
        change someone made meanwhile fails the rollout with Conflict instead
        of being overwritten. Yields events until RELEASE_FINISHED, which is always the last one.
        Errors found before anything is journalled are raised: NotFound (model,
        target, commit, target kind), ReadOnly, ConfigError. Everything that
        happens after the release row exists ends in RELEASE_FINISHED instead.
        The target kind's artifact rule (:data:`core.targets.kinds.KINDS`)
        decides what is installed and whether an image is built and pushed.
        """
        cancel = cancel or CancelToken()
        ws = self.workspace
        model_cfg = ws.model(model)
        action_table.require(ws, "release", model, target)  # ReadOnly before the target opens
        tgt = ws.target(model, target)
        sha = ws.resolve_commit(model, commit)
        rule = artifact_rule(tgt.kind)
        reason = reason or f"release {sha[:8]}"
        seen = expected if expected is not None else live_state(tgt)
        record = ReleaseRecord(ws.journal, model=model, target=tgt.name, commit=sha, reason=reason)

        def ev(kind: str, step: str = "", **kw: Any) -> ReleaseEvent:
            return ReleaseEvent(
                kind, model, tgt.name, step=step, release_id=record.id, commit=sha, **kw
            )

        yield ev(RELEASE_STARTED, message=f"releasing {model} {sha[:8]} to {tgt.name}")
        current = ""
        outcome, message, error = DONE, "", None
        guard_end: GuardEvent | None = None
        try:
            artifact = rule.for_commit(model_cfg, sha)
            skip_build = rule.skip_build(model_cfg)
            image = "" if skip_build else artifact.image
            since = [datetime.now(UTC)]
            steps: list[tuple[str, Callable[[], _Step | None]]] = [
                ("tests", lambda: self._tests(model, model_cfg, sha, cancel, ev)),
                (
                    "build",
                    lambda: (
                        self._build(model, model_cfg, sha, image, cancel, ev) if image else None
                    ),
                ),
                ("push", lambda: self._push(model, image, cancel, ev) if image else None),
                ("rollout", lambda: self._rollout(tgt, artifact, reason, cancel, ev, seen)),
                ("wait", lambda: self._wait(tgt, cancel, ev)),
                ("verify", lambda: self._verify(model, tgt, since[0], cancel, ev)),
            ]
            for step, body in steps:
                cancel.raise_if_cancelled()
                current = step
                record.step_started(step)
                yield ev(STEP_STARTED, step)
                if step == "rollout":
                    since[0] = datetime.now(UTC)
                gen = body()
                if gen is None:
                    skipped = f"{step} skipped: {skip_build}"
                    record.step_finished(step, "skipped", skipped)
                    current = ""
                    yield ev(STEP_SKIPPED, step, message=skipped)
                    continue
                summary = yield from gen
                record.step_finished(step, "done", summary or "")
                current = ""
                yield ev(STEP_FINISHED, step, message=summary or "")
            message = f"{model} {sha[:8]} is live on {tgt.name}"
        except _StepFailed as exc:
            outcome, message, error, guard_end = exc.outcome, str(exc), exc.error, exc.guard
        except Cancelled as exc:
            where = current or "between steps"
            outcome, message, error = CANCELLED, f"cancelled during {where}", exc
        except MrcError as exc:
            outcome, message, error = FAILED, str(exc), exc
        except Exception as exc:  # a bug or an unexpected library error: still close the rows
            outcome, message, error = FAILED, f"{type(exc).__name__}: {exc}", exc
        except BaseException:  # the consumer closed the generator, or Ctrl-C
            outcome, message = CANCELLED, f"interrupted during {current or 'a pause between steps'}"
            raise
        finally:
            if current:
                step_outcome = {
                    CANCELLED: "cancelled",
                    DONE: "done",
                    INCONCLUSIVE: "inconclusive",
                }.get(outcome, "failed")
                _quiet(record.step_finished, current, step_outcome, message)
            _quiet(record.finished, outcome, message)
        if current and outcome != CANCELLED:
            yield ev(STEP_FAILED, current, message=message, error=error, outcome=step_outcome)
        yield ev(RELEASE_FINISHED, message=message, outcome=outcome, error=error, guard=guard_end)

    # ------------------------------------------------------------------ steps
    # Each step is a generator of events whose return value is its summary.

    def _tests(
        self, model: str, model_cfg: ModelConfig, sha: str, cancel: CancelToken, ev: EventMaker
    ) -> _Step:
        run: TestRun | None = None
        for item in self.workspace.run_tests(model, sha, cancel=cancel):
            # A TestEvent: a line of output, or a queued/started/finished run.
            if isinstance(item, OutputLine):
                yield ev(STEP_PROGRESS, "tests", line=item.text, stream=item.stream)
            else:
                run = item.run
                if not item.run.status.finished:
                    yield ev(STEP_PROGRESS, "tests", message=f"test run {item.run.status.value}")
        if run is None:
            raise _StepFailed("the test runner ended without a result")
        if run.status is RunStatus.CANCELLED:
            raise Cancelled("test run cancelled")
        if run.status is not RunStatus.PASSED:
            counts = f"{run.passed} passed, {run.failed} failed, {run.errors} errors"
            detail = f": {run.message}" if run.message else ""
            raise _StepFailed(f"tests {run.status.value} ({counts}){detail}")
        problems = quality_problems(model_cfg.quality, run.metrics)
        if problems:
            raise _StepFailed("quality gate failed: " + "; ".join(problems))
        gate = ""
        if model_cfg.quality:
            gate = ", quality " + ", ".join(
                f"{k}={run.metrics[k]:g}" for k in sorted(model_cfg.quality)
            )
        return f"{run.passed} passed{gate}"

    def _build(
        self,
        model: str,
        model_cfg: ModelConfig,
        sha: str,
        image: str,
        cancel: CancelToken,
        ev: EventMaker,
    ) -> _Step:
        builder = self.workspace.image_builder(model)
        repo = self.workspace.repository(model)
        name = image.rsplit(":", 1)[0]
        for progress in builder.build(
            repo, sha, name, model, dockerfile=model_cfg.dockerfile, cancel=cancel
        ):
            yield ev(STEP_PROGRESS, "build", progress=progress, message=progress.message)
        return f"built {image}"

    def _push(self, model: str, image: str, cancel: CancelToken, ev: EventMaker) -> _Step:
        builder = self.workspace.image_builder(model)
        for progress in builder.push(image, cancel=cancel):
            yield ev(STEP_PROGRESS, "push", progress=progress, message=progress.message)
        return f"pushed {image}"

    def _rollout(
        self,
        tgt: Target,
        artifact: Artifact,
        reason: str,
        cancel: CancelToken,
        ev: EventMaker,
        seen: Seen,
    ) -> _Step:
        steps = self.workspace.run_rollout(
            tgt, artifact, reason=reason, cancel=cancel, expected=seen
        )
        for progress in steps:
            yield ev(STEP_PROGRESS, "rollout", progress=progress, message=progress.message)
        return f"rolled out {artifact.describe()}"

    def _wait(self, tgt: Target, cancel: CancelToken, ev: EventMaker) -> _Step:
        deadline = time.monotonic() + self.wait_timeout
        last = ""
        while True:
            try:
                state = tgt.status()
            except BackendUnavailable as exc:
                text = f"status unavailable: {exc}"
            else:
                text = f"{state.phase.value}: {state.ready}/{state.desired} ready"
                if state.phase is Phase.COMPLETE:
                    return f"revision {state.revision} complete ({state.ready}/{state.desired})"
                if state.phase in (Phase.FAILED, Phase.STOPPED):
                    raise _StepFailed(f"rollout did not complete: {state.message or text}")
            if text != last:
                yield ev(STEP_PROGRESS, "wait", message=text)
                last = text
            if time.monotonic() >= deadline:
                raise _StepFailed(f"rollout not complete after {self.wait_timeout:g}s ({text})")
            if cancel.wait(self.poll):
                raise Cancelled("cancelled while waiting for the rollout")

    def _verify(
        self, model: str, tgt: Target, since: datetime, cancel: CancelToken, ev: EventMaker
    ) -> _Step:
        guard = self.workspace.guard(model)
        if guard is None or not guard.settings.limits():
            return "no guard checks configured"
        production = self.workspace.target_config(model, tgt.name).production
        last: GuardEvent | None = None
        for item in guard.watch(model, tgt, since, cancel, production=production):
            last = item
            self.workspace.note_guard(item)
            yield ev(STEP_PROGRESS, "verify", guard=item, message=item.message)
        if last is None or last.kind == guard_mod.CANCELLED:
            raise Cancelled("cancelled during the verify window")
        ending = {
            guard_mod.ROLLED_BACK: ROLLED_BACK,
            guard_mod.ALERT: ALERTED,
            guard_mod.ROLLBACK_FAILED: FAILED,
            guard_mod.INCONCLUSIVE: INCONCLUSIVE,
        }
        if last.kind in ending:
            raise _StepFailed(last.message, ending[last.kind], guard=last)
        if last.kind != guard_mod.PASSED:  # a guard that ended without a verdict
            raise _StepFailed(f"guard ended without a verdict: {last.message}", INCONCLUSIVE)
        return last.message


# ---------------------------------------------------------------------- helpers


def quality_problems(minimums: dict[str, float], metrics: dict[str, float]) -> list[str]:
    """Return one line per quality minimum not met (a missing metric is not met)."""
    problems = []
    for name in sorted(minimums):
        limit = float(minimums[name])
        if name not in metrics:
            problems.append(f"{name} was not reported by the tests (minimum {limit:g})")
        elif float(metrics[name]) < limit:
            problems.append(f"{name} = {float(metrics[name]):g} is below the minimum {limit:g}")
    return problems


def live_state(target: Target) -> Seen:
    """Return the target's live state as the release's expectation; never raises.

    A target with nothing deployed (NotFound) gives "nothing live" (revision
    None); a status that cannot be read gives None (no expectation: the
    rollout then fails on its own if the backend is still unreachable).
    """
    try:
        return target.status()
    except NotFound:
        return ExpectedState(revision=None)
    except Exception:
        return None


def _quiet(fn: Callable[..., object], *args: Any) -> None:
    # The journal write that closes a row must not hide the error that ended the release.
    try:
        fn(*args)
    except Exception:
        pass


__all__ = [
    "STEPS",
    "EventMaker",
    "ReleaseEvent",
    "ReleasePipeline",
    "ReleaseRecord",
    "quality_problems",
]
