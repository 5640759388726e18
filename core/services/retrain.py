"""Retraining a model on recent data: the journalled operation every front end calls.

:func:`run_retrain` runs ``[model.retrain] command`` through the configured
executor (:mod:`core.retrain.kinds`) in a temporary worktree at the deployed
commit (or a chosen one; the user's own working tree is never touched, so a
dirty repository is fine), reads ``$MRC_RETRAIN_OUTPUT/metrics.json``,
commits the changed files on a ``retrain/<model>/<UTC timestamp>`` branch
(:mod:`core.retrain.result`) and, when ``auto_release`` is set, sends the
commit through the one release pipeline (tests, quality gate, rollout) to
the model's targets that are not marked ``production``, never to
production ones.

Journal: an ``intent`` row (action ``retrain``, no target, the operator's
reason, details: base commit, window, trigger, executor, command) is written
before anything runs; ``done`` with the branch, the new commit and the
training metrics, or ``failed`` with the error ("cancelled" when
cancelled), like every action of :mod:`core.services.actions`. A console
that dies meanwhile leaves the row in ``intent``:
:meth:`core.journal.Journal.mark_orphans` turns it into ``unknown`` with
what was running still in its details. The command's output is kept in
``<state dir>/retrain-output/retrain_<model>_<timestamp>-<random>.log`` (bounded),
also when it failed; the row's ``output`` detail names the file from the
start.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import audit, durations, paths
from core.cancel import CancelToken
from core.domain import Outcome, Progress
from core.errors import Cancelled, MrcError
from core.retrain.base import METRICS_FILE, RetrainJob, Trigger
from core.services import action_table
from core.services.actions import error_text, finish_entry

if TYPE_CHECKING:
    from core.git import Repository
    from core.retrain.base import Executor
    from core.retrain.result import Committed
    from core.services.workspace import Workspace
    from core.testing import OutputLog

#: Bound of a retrain's kept output on disk.
MAX_OUTPUT_BYTES = 5_000_000
#: Where the output logs live, under the state directory.
OUTPUT_DIR = "retrain-output"


@dataclass(frozen=True, slots=True)
class RetrainResult:
    """A finished retrain: the commit it made and where."""

    model: str
    base: str
    """Full sha of the commit the command started from."""
    commit: str
    """Full sha of the retrained commit."""
    branch: str
    """``retrain/<model>/<ts>`` (with a ``-N`` suffix when that name was taken)."""
    metrics: dict[str, float]
    """The training metrics the command wrote (empty when it wrote none)."""
    files: tuple[str, ...]
    """Paths the commit changed."""
    entry: int
    """Journal row id."""


def started_by() -> str:
    """Return who starts a retrain here: ``user@host`` (plus `` via browser`` when served)."""
    who = audit.whoami()
    user, _, via = who.user.partition(" via ")
    return f"{user}@{who.host}" + (f" via {via}" if via else "")


def trigger_for(
    workspace: Workspace, model: str, *, reason: str = "", who: str | None = None
) -> Trigger:
    """Return the trigger of a retrain of ``model`` started now.

    The drift score, method and reference kind come from the one scorer
    (:meth:`Workspace.drift_probe`, through
    :func:`core.services.views.current_drift`); the score is None when it is
    not known (no metrics source, too little data, a source that fails).
    ``who`` defaults to :func:`started_by`. Raises NotFound for an unknown
    model only; never for a missing or broken source.
    """
    workspace.model(model)
    by = who or started_by()
    try:
        from core.services.views import current_drift

        scorer = workspace.drift_probe(model)
        drift = current_drift(workspace, model) if scorer is not None else None
    except Exception:  # a broken source or reference never stops a retrain
        return Trigger(None, "", "", by, reason)
    if scorer is None or drift is None:
        return Trigger(None, "", "", by, reason)
    return Trigger(drift.score.value, drift.score.method, scorer.settings.reference, by, reason)


def _base_commit(workspace: Workspace, model: str, repo: Repository) -> tuple[str, str]:
    """Return (full sha, how it was chosen): the first target's deployed commit, else HEAD."""
    problems = []
    for target in workspace.model(model).targets:
        try:
            state = workspace.target(model, target.name).status()
            if state.commit:
                sha = repo.resolve(state.commit)
                return sha, f"starting from {sha[:8]}, deployed on {target.name}"
            problems.append(f"{target.name} reports no commit")
        except Exception as error:
            problems.append(f"{target.name}: {error_text(error)}")
    sha = repo.head()
    why = "; ".join(problems) if problems else "the model has no target"
    return sha, f"starting from HEAD ({sha[:8]}): no deployed commit is known ({why})"


def run_retrain(
    workspace: Workspace,
    model: str,
    *,
    commit: str | None = None,
    window: float | None = None,
    trigger: Trigger,
    cancel: CancelToken | None = None,
) -> Iterator[Progress]:
    """Retrain ``model`` on the last ``window`` seconds of data; yield its progress.

    ``commit`` None starts from the commit deployed on the model's first
    target whose status answers (else HEAD, said in a Progress); ``window``
    None is ``[model.retrain] window``. Yields ``Progress`` with step
    ``prepare``, ``executor``, ``output`` (one line the command printed, raw:
    front ends sanitise it), ``commit``, ``release`` (auto_release), and
    last ``done`` whose ``result`` is the :class:`RetrainResult`.

    Raises, before anything is journalled: ReadOnly, ConfigError (no
    ``[model.retrain]``), NotFound (model, commit), BackendUnavailable (the
    repository). After the journal row exists, raises OperationFailed (the
    command failed, timed out or changed nothing), Cancelled, and what the
    executor raises, each once recorded. An auto-release that fails does
    not fail the retrain: it is reported as a ``release`` Progress with
    level ``error``.
    """
    from core.retrain.kinds import executor_for, no_retrain
    from core.retrain.result import branch_name
    from core.sanitize import redact_url

    cancel = cancel or CancelToken()
    action_table.require(workspace, "retrain", model)
    model_cfg = workspace.model(model)
    config = model_cfg.retrain
    if config is None:
        raise no_retrain(workspace, model)
    executor = executor_for(workspace, model)
    repo = workspace.repository(model)
    if commit is not None:
        base = repo.resolve(commit)
        how = f"starting from {base[:8]} ({commit})"
    else:
        base, how = _base_commit(workspace, model, repo)
    yield Progress(step="prepare", message=how)
    cancel.raise_if_cancelled()
    seconds = window if window is not None else config.window
    now = datetime.now(UTC).replace(microsecond=0)
    job = RetrainJob(
        model=model,
        commit=base,
        command=config.command,
        workdir=Path(),  # replaced once the worktree exists
        output=Path(),
        window_start=now - timedelta(seconds=seconds),
        window_end=now,
        metrics_url=redact_url(model_cfg.metrics.url) if model_cfg.metrics else "",
        trigger=trigger,
        branch=branch_name(model, now),
        timeout=config.timeout,
        remote=repo.remote_url(),
    )
    env = job.environment()
    details: dict[str, Any] = {
        "commit": base,
        "window": f"{env['MRC_RETRAIN_WINDOW_START']}/{env['MRC_RETRAIN_WINDOW_END']}",
        "window_seconds": seconds,
        "trigger": {
            "score": trigger.score,
            "method": trigger.method,
            "reference": trigger.reference,
            "started_by": trigger.started_by,
        },
        "executor": executor.kind,
        "command": config.command,
    }
    # The log is named before the row is written, so a row left behind by a console
    # that died still says where the output went.
    out_dir = paths.ensure_dir(workspace.state_dir / OUTPUT_DIR)
    handle, name = tempfile.mkstemp(
        prefix=f"{job.branch.replace('/', '_')}-", suffix=".log", dir=out_dir
    )
    os.close(handle)
    log_path = Path(name)
    kept = {"output": str(log_path)}
    details.update(kept)
    journal = workspace.journal
    entry = journal.begin(model, "", "retrain", from_revision=base[:12], reason=trigger.reason,
                          details=details)  # fmt: skip
    from core.testing import OutputLog

    log = OutputLog(log_path, MAX_OUTPUT_BYTES)
    try:
        yield Progress(
            step="prepare",
            message=f"{executor.kind} executor, {durations.format(seconds)} of data up to "
            f"{env['MRC_RETRAIN_WINDOW_END']}; your working tree is not touched",
        )
        committed, metrics = yield from _run(repo, executor, job, cancel, log)
    except Cancelled:
        log.close()
        finish_entry(journal, entry, Outcome.FAILED, "cancelled", details=kept)
        raise
    except GeneratorExit:
        log.close()
        finish_entry(journal, entry, Outcome.FAILED, "stopped before it ended: nothing committed",
                details=kept)  # fmt: skip
        raise
    except Exception as error:
        log.close()
        finish_entry(journal, entry, Outcome.FAILED, error_text(error), details=kept)
        raise
    except BaseException as error:  # KeyboardInterrupt, SystemExit
        log.close()
        finish_entry(journal, entry, Outcome.UNKNOWN, f"interrupted ({type(error).__name__})",
                details=kept)  # fmt: skip
        raise
    log.close()
    problem = finish_entry(
        journal,
        entry,
        Outcome.DONE,
        details={**kept, "branch": committed.branch, "new_commit": committed.commit,
                 "metrics": metrics, "files": list(committed.files)},
    )  # fmt: skip
    if committed.note:
        yield Progress(step="commit", message=committed.note, level="warning")
    yield Progress(
        step="commit",
        message=f"commit {committed.commit[:8]} on {committed.branch} "
        f"({len(committed.files)} file{'s' if len(committed.files) != 1 else ''} changed)",
    )
    if problem:
        yield Progress(
            step="journal",
            message=f"retrain done, but the journal could not record it: {problem}",
            level="warning",
        )
    if config.auto_release:
        yield from _auto_release(workspace, model, committed.commit, cancel)
    result = RetrainResult(
        model, base, committed.commit, committed.branch, metrics, committed.files, entry
    )
    yield Progress(step="done", message=f"retrained {model}: {committed.commit[:8]}", result=result)


def _run(
    repo: Repository, executor: Executor, job: RetrainJob, cancel: CancelToken, log: OutputLog
) -> Generator[Progress, None, tuple[Committed, dict[str, float]]]:
    """Run ``job`` in a worktree and commit (or fetch) its result.

    A generator whose return value is (Committed, metrics). Raises what the
    executor and :mod:`core.retrain.result` raise.
    """
    import dataclasses

    from core.retrain.result import commit_result, fetch_result
    from core.testing import read_metrics

    with (
        tempfile.TemporaryDirectory(prefix="mrc-retrain-out-") as output,
        repo.worktree(job.commit) as tree,
    ):
        job = dataclasses.replace(job, workdir=tree, output=Path(output))
        yield Progress(step="prepare", message=f"worktree at {job.commit[:8]}: {tree}")
        for progress in executor.run(job, cancel):
            if progress.step == "output":
                log.write(progress.message)
            yield progress
        cancel.raise_if_cancelled()
        metrics, warnings = read_metrics(Path(output) / METRICS_FILE)
        for warning in warnings:
            yield Progress(step="commit", message=warning, level="warning")
        committed: Committed = (
            fetch_result(repo, job)
            if executor.publishes_branch
            else commit_result(repo, job, executor.kind, metrics)
        )
    return committed, metrics


def _auto_release(
    workspace: Workspace, model: str, commit: str, cancel: CancelToken
) -> Iterator[Progress]:
    """Release ``commit`` through the pipeline to each non-production target, in order.

    Stops at the first release that does not end ``done``. Never raises for
    a failed release: it is a ``release`` Progress with level ``error``.
    """
    from core.services.release import DONE, RELEASE_FINISHED, STEP_STARTED, ReleasePipeline

    targets = [t for t in workspace.model(model).targets if not t.production]
    skipped = [t.name for t in workspace.model(model).targets if t.production]
    if skipped:
        yield Progress(
            step="release",
            message=f"auto_release never releases to production: {', '.join(skipped)} skipped",
        )
    if not targets:
        yield Progress(step="release", message="auto_release: no non-production target")
        return
    pipeline = ReleasePipeline(workspace)
    for target in targets:
        yield Progress(step="release", message=f"releasing {commit[:8]} to {target.name}")
        try:
            for event in pipeline.run(
                model, commit, target.name, reason=f"auto-release of retrained {commit[:8]}",
                cancel=cancel,
            ):  # fmt: skip
                if event.kind == STEP_STARTED:
                    yield Progress(step="release", message=f"{target.name}: {event.step}")
                elif event.kind == RELEASE_FINISHED:
                    ok = event.outcome == DONE
                    yield Progress(
                        step="release",
                        message=f"{target.name}: {event.outcome}"
                        + (f": {event.message}" if event.message else ""),
                        level="info" if ok else "error",
                    )
                    if not ok:
                        return
        except MrcError as error:
            yield Progress(
                step="release", message=f"{target.name}: not released: {error}", level="error"
            )
            return
