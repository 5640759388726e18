"""``mrc test MODEL [COMMIT]``: run a model's tests at a commit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.cancel import CancelToken
from core.domain import OutputLine, RunStatus, TestRun
from core.errors import OperationFailed
from tui.cli.output import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, Streams
from tui.cli.preflight import refuse_if_read_only, require_repository

if TYPE_CHECKING:
    from core.services.workspace import Workspace


def _run_dict(run: TestRun) -> dict[str, Any]:
    """Return the ``test --json`` document of a finished run."""
    return {
        "model": run.model,
        "commit": run.commit,
        "status": run.status.value,
        "passed": run.passed,
        "failed": run.failed,
        "errors": run.errors,
        "skipped": run.skipped,
        "duration": run.duration,
        "metrics": dict(run.metrics),
        "failures": [{"name": f.name, "kind": f.kind, "message": f.message} for f in run.failures],
        "message": run.message,
    }


def cmd_test(
    ws: Workspace,
    streams: Streams,
    model: str,
    commit: str = "HEAD",
    *,
    as_json: bool = False,
    cancel: CancelToken | None = None,
) -> int:
    """Run the model's tests at ``commit``; stream output to stderr, summary to stdout.

    Returns 0 when the tests passed, 1 when they failed or errored, 130 when
    cancelled. Raises ReadOnly in read-only mode and NotARepository when the
    model's repository is missing, both before anything runs or is
    journalled; OperationFailed when the runner ends without a result.
    """
    from core.testing import RunFinished, RunStarted

    refuse_if_read_only(ws, "test", model, None)
    require_repository(ws, model)
    cancel = cancel or CancelToken()
    sha = ws.resolve_commit(model, commit)
    run: TestRun | None = None
    streams.say(f"testing {model} at {sha[:8]}: {ws.model(model).test_command}")
    for event in ws.run_tests(model, sha, cancel=cancel):
        if isinstance(event, OutputLine):
            streams.say(event.text)
        elif isinstance(event, RunStarted):
            streams.say(f"test run {event.run.id} started")
        elif isinstance(event, RunFinished):
            run = event.run
    if run is None:
        raise OperationFailed("the test runner ended without a result")
    if as_json:
        streams.json(_run_dict(run))
    else:
        duration = f" in {run.duration:.1f}s" if run.duration is not None else ""
        streams.result(
            f"{model} {sha[:8]}: {run.status.value}: {run.passed} passed, {run.failed} failed, "
            f"{run.errors} errors, {run.skipped} skipped{duration}"
        )
        for name in sorted(run.metrics):
            streams.result(f"  {name} = {run.metrics[name]:g}")
        for f in run.failures:
            streams.result(f"  {f.kind}: {f.name}: {f.message}")
        if run.message:
            streams.result(f"  {run.message}")
    if run.status is RunStatus.PASSED:
        return EXIT_OK
    if run.status is RunStatus.CANCELLED:
        return EXIT_CANCELLED
    return EXIT_FAILED
