"""``mrc status``: the live state of every model on every target."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.domain import Phase
from core.errors import BackendUnavailable, MrcError
from tui.cli.output import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    Streams,
    short,
)
from tui.cli.preflight import repository_problems

if TYPE_CHECKING:
    from core.config import ModelConfig, TargetConfig
    from core.services.workspace import Workspace


def _state_row(ws: Workspace, model: ModelConfig, target_cfg: TargetConfig) -> dict[str, Any]:
    """Return the ``status --json`` row of ``model`` on ``target_cfg``; never raises MrcError.

    A target that cannot be read gives its row with ``error`` set (and
    ``phase`` "disconnected" when the backend is unavailable).
    """
    row: dict[str, Any] = {
        "model": model.name,
        "target": target_cfg.name,
        "kind": target_cfg.kind,
        "production": bool(target_cfg.production),
        "read_only": bool(ws.is_read_only(model.name, target_cfg.name)),
        "phase": Phase.UNKNOWN.value,
        "revision": None,
        "image": "",
        "commit": "",
        "desired": 0,
        "ready": 0,
        "updated": 0,
        "available": 0,
        "message": "",
        "error": "",
    }
    try:
        state = ws.target(model.name, target_cfg.name).status()
    except BackendUnavailable as exc:
        row.update(phase=Phase.DISCONNECTED.value, error=str(exc))
        return row
    except MrcError as exc:
        row.update(error=str(exc))
        return row
    row.update(
        phase=state.phase.value,
        revision=state.revision,
        image=state.image,
        commit=state.commit,
        desired=state.desired,
        ready=state.ready,
        updated=state.updated,
        available=state.available,
        message=state.message,
    )
    return row


def _drift_rows(ws: Workspace) -> list[dict[str, Any]]:
    """Return the ``status --json`` drift rows: each model's current drift, scored by the
    guard's scorer against the configured reference (models without metrics are left out)."""
    from core.services.views import current_drift

    out = []
    for model in ws.models:
        now = current_drift(ws, model.name)
        if now is not None:
            out.append(
                {
                    "model": now.model,
                    "method": now.score.method,
                    "value": now.score.value,
                    "band": now.score.band.value,
                    "samples": now.score.samples,
                    "reference": now.reference,
                    "reason": now.score.reason,
                }
            )
    return out


def cmd_status(ws: Workspace, streams: Streams, *, as_json: bool = False) -> int:
    """Print the live state of every model on every target.

    Returns 0 when every target answered; else, in this order, 2 when a
    model's repository is missing or not a git repository (named in
    ``warnings``), 3 when a target was unreachable, 6 when one does not exist
    (the other rows are printed all the same).
    """
    warnings = repository_problems(ws, [m.name for m in ws.models])
    rows = [_state_row(ws, m, t) for m in ws.models for t in m.targets]
    if as_json:
        streams.json({"targets": rows, "drift": _drift_rows(ws), "warnings": warnings})
    else:
        for warning in warnings:
            streams.say(f"mrc: warning: {warning}")
        streams.result(
            f"{'MODEL':<16} {'TARGET':<14} {'KIND':<10} {'PHASE':<12} {'REV':>4} READY  WHAT"
        )
        for r in rows:
            rev = "-" if r["revision"] is None else str(r["revision"])
            what = r["image"] or short(r["commit"])
            if r["error"]:
                what = f"error: {r['error']}"
            prod = " [production]" if r["production"] else ""
            streams.result(
                f"{r['model']:<16} {r['target']:<14} {r['kind']:<10} {r['phase']:<12} {rev:>4} "
                f"{r['ready']}/{r['desired']:<4} {what}{prod}"
            )
    if warnings:
        return EXIT_USAGE
    if any(r["phase"] == Phase.DISCONNECTED.value for r in rows):
        return EXIT_UNAVAILABLE
    if any(r["error"] for r in rows):
        return EXIT_NOT_FOUND
    return EXIT_OK
