"""``mrc release MODEL COMMIT``: test, build, push, roll out and verify a commit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.cancel import CancelToken
from core.errors import OperationFailed
from tui.cli.output import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    Streams,
    exit_code_for,
    short,
)
from tui.cli.preflight import refuse_if_read_only, require_repository
from tui.cli.prompts import confirm, confirmed_by_flags

if TYPE_CHECKING:
    from core.services.release import ReleaseEvent
    from core.services.workspace import Workspace
    from core.targets.base import Seen


def cmd_release(
    ws: Workspace,
    streams: Streams,
    model: str,
    commit: str,
    *,
    target: str | None = None,
    reason: str = "",
    yes: bool = False,
    confirm_name: str | None = None,
    as_json: bool = False,
    cancel: CancelToken | None = None,
    interactive: bool | None = None,
) -> int:
    """Run the release pipeline for ``commit``; progress to stderr, outcome to stdout.

    Confirmation as :func:`tui.cli.prompts.confirm` (production targets: the
    model's name typed on a terminal, ``confirm_name`` in scripts, never
    ``yes`` alone). Returns 0 when the release is live and passed its verify
    window, 1 when it failed or the guard found a breach (or rolled back an
    inconclusive window), 7 when it is live but the guard was inconclusive, 130 when cancelled,
    or the exit code of the error that ended it (e.g. 3, 4, 5). Raises what
    the pipeline raises before anything is journalled (NotFound, ReadOnly,
    ConfigError, NotARepository) and UsageError when not confirmed.
    """
    from core.services import release

    cancel = cancel or CancelToken()
    tcfg = ws.target_config(model, target)
    decision = refuse_if_read_only(ws, "release", model, tcfg.name)
    confirmed_by_flags(decision, yes=yes, confirm_name=confirm_name)
    require_repository(ws, model)
    sha = ws.resolve_commit(model, commit)
    prod = " (PRODUCTION)" if tcfg.production else ""
    # What the operator is shown is what the rollout step expects to replace.
    seen = release.live_state(ws.target(model, tcfg.name))
    confirm(
        streams,
        f"Release {model} {sha[:8]} to {tcfg.name}{prod} (live now: {live_text(seen)})?",
        decision,
        yes=yes,
        confirm_name=confirm_name,
        interactive=interactive,
    )
    step_results = {
        release.STEP_FINISHED: "done",
        release.STEP_SKIPPED: "skipped",
        release.STEP_FAILED: "failed",
    }
    steps: dict[str, dict[str, str]] = {}
    final: ReleaseEvent | None = None
    pipeline = release.ReleasePipeline(ws)
    for event in pipeline.run(model, sha, tcfg.name, reason=reason, cancel=cancel, expected=seen):
        if event.kind == release.STEP_STARTED:
            steps[event.step] = {"step": event.step, "result": "running", "message": ""}
            streams.say(f"==> {event.step}")
        elif event.kind == release.STEP_PROGRESS:
            text = event.line or event.message
            if text:
                streams.say(f"    {text}")
        elif event.kind in step_results:
            result = event.outcome or step_results[event.kind]
            steps[event.step] = {"step": event.step, "result": result, "message": event.message}
            streams.say(f"<== {event.step}: {result} {event.message}".rstrip())
        elif event.kind == release.RELEASE_FINISHED:
            final = event
    if final is None:
        raise OperationFailed("the release pipeline ended without an outcome")
    for item in steps.values():
        if item["result"] == "running":
            item["result"] = "cancelled" if final.outcome == release.CANCELLED else "failed"
    if as_json:
        streams.json(
            {
                "model": model,
                "target": tcfg.name,
                "commit": sha,
                "release_id": final.release_id,
                "outcome": final.outcome,
                "message": final.message,
                "steps": list(steps.values()),
            }
        )
    else:
        streams.result(f"release {final.release_id}: {final.outcome}: {final.message}")
    if final.outcome == release.DONE:
        return EXIT_OK
    if final.outcome == release.CANCELLED:
        return EXIT_CANCELLED
    if final.outcome == release.INCONCLUSIVE:
        return EXIT_INCONCLUSIVE
    if final.error is not None and not isinstance(final.error, OperationFailed):
        return exit_code_for(final.error)
    return EXIT_FAILED


def live_text(seen: Seen) -> str:
    """Return how the live state before a release is shown: "revision 3 (repo/m:v3)"."""
    if seen is None:
        return "unknown"
    if seen.revision is None:
        return "nothing deployed"
    what = seen.image or short(seen.commit, 12)
    return f"revision {seen.revision}" + (f" ({what})" if what else "")
