"""``mrc rollback MODEL``: roll a model back to a previous revision."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.cancel import CancelToken
from tui.cli.output import EXIT_OK, Streams, short
from tui.cli.preflight import refuse_if_read_only, repository_problems
from tui.cli.prompts import confirm, confirmed_by_flags

if TYPE_CHECKING:
    from core.services.workspace import Workspace


def cmd_rollback(
    ws: Workspace,
    streams: Streams,
    model: str,
    *,
    target: str | None = None,
    to_revision: int | None = None,
    reason: str = "",
    yes: bool = False,
    confirm_name: str | None = None,
    as_json: bool = False,
    cancel: CancelToken | None = None,
    interactive: bool | None = None,
    wait: bool = True,
) -> int:
    """Roll the model back on ``target`` to ``to_revision`` (None: the previous one).

    Shows current -> target revision and asks for confirmation as
    :func:`tui.cli.prompts.confirm`: one "y" on a terminal even on production
    targets; in scripts ``yes``, or ``confirm_name`` (the model's name) which
    production targets require. A model repository that is missing is only
    warned about (the rollback does not need it). Returns 0 when rolled back
    (or already at that revision). On a target that
    :attr:`~core.targets.base.Target.acknowledges_first` (Kubernetes) the
    command then says it waits for the rollout to complete, unless ``wait`` is
    False (``--no-wait``): it returns once the API server accepted the
    rollback, and the document's ``waited`` is false. Raises ReadOnly before anything is
    journalled, what the target raises (Conflict, PermissionDenied, NotFound
    for an unknown revision, ...) and UsageError when not confirmed.
    """
    cancel = cancel or CancelToken()
    tcfg = ws.target_config(model, target)
    decision = refuse_if_read_only(ws, "rollback", model, tcfg.name)
    confirmed_by_flags(decision, yes=yes, confirm_name=confirm_name)
    warnings = repository_problems(ws, [model])
    for warning in warnings:
        streams.say(f"mrc: warning: {warning}")
    tgt = ws.target(model, tcfg.name)
    preview = tgt.preview_rollback(to_revision)
    doc: dict[str, Any] = {
        "model": model,
        "target": tcfg.name,
        "from_revision": preview.from_revision,
        "to_revision": preview.to_revision,
        "from_image": preview.from_image,
        "to_image": preview.to_image,
        "result": "",
        "message": "",
        "waited": False,
        "warnings": warnings,
    }
    frm = preview.from_image or short(preview.from_commit)
    to = preview.to_image or short(preview.to_commit)
    summary = (
        f"{model} on {tcfg.name}: revision {preview.from_revision} ({frm}) -> "
        f"{preview.to_revision} ({to})"
    )
    if preview.warning:
        streams.say(f"warning: {preview.warning}")
    if preview.noop:
        doc.update(
            result="skipped",
            message=f"already at revision {preview.to_revision}: nothing to roll back",
        )
    else:
        confirm(
            streams,
            f"Roll back {summary}?",
            decision,
            yes=yes,
            confirm_name=confirm_name,
            interactive=interactive,
        )
        streams.say(f"rolling back {summary}")
        follows = tgt.acknowledges_first  # after the first item the backend carries it out
        for index, progress in enumerate(
            ws.run_rollback(
                tgt,
                preview.to_revision,
                reason=reason or "rollback from the command line",
                cancel=cancel,
                expected=preview,
                wait=wait,
            )
        ):
            if progress.message:
                streams.say(f"    {progress.message}")
            if index == 0 and follows:
                streams.say(
                    "waiting for the rollout to complete (--no-wait to skip)"
                    if wait
                    else "not waiting for the rollout to complete (--no-wait)"
                )
        waited = wait or not follows
        message = f"rolled back to revision {preview.to_revision}"
        if not waited:
            message += " (accepted by the API server; the rollout goes on in the cluster)"
        doc.update(result="done", message=message, waited=waited)
    if as_json:
        streams.json(doc)
    else:
        streams.result(f"{summary}: {doc['result']}: {doc['message']}")
    return EXIT_OK
