"""``mrc retrain MODEL``: retrain a model on recent data; the result is a commit on a branch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core import durations
from core.cancel import CancelToken
from core.errors import OperationFailed
from tui.cli.output import EXIT_OK, Streams
from tui.cli.preflight import refuse_if_read_only, require_repository
from tui.cli.prompts import confirm

if TYPE_CHECKING:
    from core.retrain.base import Trigger
    from core.services.retrain import RetrainResult
    from core.services.workspace import Workspace


def cmd_retrain(
    ws: Workspace,
    streams: Streams,
    model: str,
    *,
    commit: str | None = None,
    window: float | None = None,
    reason: str = "",
    yes: bool = False,
    as_json: bool = False,
    cancel: CancelToken | None = None,
    interactive: bool | None = None,
) -> int:
    """Run ``model``'s ``[model.retrain] command``; stream its output to stderr.

    ``commit`` None starts from the deployed commit (else HEAD); ``window``
    None is the configured window. Asks ``y`` on a terminal (``yes``:
    ``--yes`` in scripts). Prints the new commit and branch (or the
    ``retrain --json`` document, see :mod:`tui.cli.output`) and returns 0.
    Raises, before anything runs or is journalled: ReadOnly, ConfigError
    (no ``[model.retrain]``), NotARepository, NotFound, UsageError (not
    confirmed); then OperationFailed (the command failed or changed
    nothing) and Cancelled (Ctrl-C), each after it was journalled.
    """
    from core.retrain.kinds import no_retrain
    from core.services.retrain import RetrainResult, trigger_for

    decision = refuse_if_read_only(ws, "retrain", model, None)
    config = ws.model(model).retrain
    if config is None:
        raise no_retrain(ws, model)
    require_repository(ws, model)
    if commit is not None:
        ws.resolve_commit(model, commit)  # NotFound before the question
    span = durations.format(window if window is not None else config.window)
    start = f"commit {commit}" if commit is not None else "the deployed commit"
    confirm(
        streams,
        f"Retrain {model} with `{config.command}` ({config.executor}) on {span} of data, "
        f"from {start}? The result is a commit on a retrain/ branch; nothing is released"
        + (" but auto_release is on" if config.auto_release else ""),
        decision,
        yes=yes,
        interactive=interactive,
    )
    cancel = cancel or CancelToken()
    trigger = trigger_for(ws, model, reason=reason or "retrain from the command line")
    score = "unknown" if trigger.score is None else f"{trigger.score:.3f}"
    streams.say(f"drift {score} ({trigger.method or 'no drift source'}); started by "
                f"{trigger.started_by}")  # fmt: skip
    result: RetrainResult | None = None
    warnings: list[str] = []
    for progress in ws.retrain(model, commit=commit, window=window, trigger=trigger, cancel=cancel):
        if progress.step == "output":
            streams.say(progress.message)
        elif isinstance(progress.result, RetrainResult):
            result = progress.result
        elif progress.message:
            prefix = "warning: " if progress.level == "warning" else ""
            prefix = "error: " if progress.level == "error" else prefix
            streams.say(f"{progress.step}: {prefix}{progress.message}")
            if progress.level in ("warning", "error"):
                warnings.append(progress.message)
    if result is None:
        raise OperationFailed("the retrain ended without a commit")
    if as_json:
        streams.json(_document(result, trigger_dict(trigger), warnings))
    else:
        streams.result(f"{model}: retrained {result.commit[:8]} on {result.branch}")
        streams.result(f"  from {result.base[:8]}; changed: {', '.join(result.files)}")
        for name in sorted(result.metrics):
            streams.result(f"  {name} = {result.metrics[name]:g}")
    return EXIT_OK


def trigger_dict(trigger: Trigger) -> dict[str, Any]:
    """Return the ``trigger`` object of the ``retrain --json`` document."""
    return {
        "score": trigger.score,
        "method": trigger.method,
        "reference": trigger.reference,
        "started_by": trigger.started_by,
        "reason": trigger.reason,
    }


def _document(
    result: RetrainResult, trigger: dict[str, Any], warnings: list[str]
) -> dict[str, Any]:
    """Return the ``retrain --json`` document of a finished retrain."""
    return {
        "model": result.model,
        "base": result.base,
        "commit": result.commit,
        "branch": result.branch,
        "metrics": dict(result.metrics),
        "files": list(result.files),
        "journal_id": result.entry,
        "trigger": trigger,
        "warnings": warnings,
    }
