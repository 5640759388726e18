"""``mrc history MODEL``: revision history of a model's targets, its releases and journal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import BackendUnavailable, NotFound
from tui.cli.output import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, Streams, iso, short
from tui.cli.preflight import repository_problems

if TYPE_CHECKING:
    from core.domain import JournalEntry, Release, Revision
    from core.services.workspace import Workspace


def _entry_dict(entry: JournalEntry) -> dict[str, Any]:
    """Return the ``history --json`` form of one journal entry."""
    return {
        "id": entry.id,
        "time": iso(entry.time),
        "user": entry.user,
        "ssh_client": entry.ssh_client,
        "host": entry.host,
        "model": entry.model,
        "target": entry.target,
        "action": entry.action,
        "from_revision": entry.from_revision,
        "to_revision": entry.to_revision,
        "reason": entry.reason,
        "outcome": str(entry.outcome),
        "outcome_unknown": bool(entry.outcome_unknown),
        "error": entry.error,
        "finished_at": iso(entry.finished_at),
    }


def _release_dict(release: Release) -> dict[str, Any]:
    """Return the ``history --json`` form of one release with its steps."""
    return {
        "id": release.id,
        "commit": release.commit,
        "target": release.target,
        "status": release.status,
        "reason": release.reason,
        "user": release.user,
        "message": release.message,
        "started_at": iso(release.started_at),
        "finished_at": iso(release.finished_at),
        "steps": [
            {
                "step": st.step,
                "status": st.status,
                "message": st.message,
                "started_at": iso(st.started_at),
                "finished_at": iso(st.finished_at),
            }
            for st in release.steps
        ],
    }


def _revision_dict(revision: Revision) -> dict[str, Any]:
    """Return the ``history --json`` form of one target revision."""
    return {
        "revision": revision.number,
        "image": revision.image,
        "commit": revision.commit,
        "created": iso(revision.created),
        "change_cause": revision.change_cause,
        "current": bool(revision.current),
    }


def cmd_history(
    ws: Workspace,
    streams: Streams,
    model: str,
    *,
    target: str | None = None,
    as_json: bool = False,
) -> int:
    """Print the revision history of the model's targets and its journal entries.

    Returns 0; 2 when the model's repository is missing or not a git
    repository (``warnings`` says so; the rest is printed all the same); 3
    when a target could not be read (its revisions are then empty and
    ``error`` says why). Raises NotFound (exit 6) for an unknown model or target.
    """
    model_cfg = ws.model(model)
    warnings = repository_problems(ws, [model])
    names = [target] if target else [t.name for t in model_cfg.targets]
    targets = []
    code = EXIT_OK
    for name in names:
        tcfg = ws.target_config(model, name)
        item: dict[str, Any] = {"target": name, "kind": tcfg.kind, "error": "", "revisions": []}
        revisions: list[Revision] = []
        try:
            revisions = ws.target(model, name).history()
        except BackendUnavailable as exc:
            item["error"] = str(exc)
            code = EXIT_UNAVAILABLE
        except NotFound as exc:
            item["error"] = str(exc)
        item["revisions"] = [_revision_dict(r) for r in revisions]
        targets.append(item)
    entries = [_entry_dict(e) for e in ws.journal.entries(model=model, target=target)]
    releases = [_release_dict(x) for x in ws.journal.releases(model=model, target=target)]
    if warnings:
        code = EXIT_USAGE
    if as_json:
        streams.json(
            {
                "model": model,
                "targets": targets,
                "journal": entries,
                "releases": releases,
                "warnings": warnings,
            }
        )
        return code
    for warning in warnings:
        streams.say(f"mrc: warning: {warning}")
    for item in targets:
        streams.result(f"{model} on {item['target']} ({item['kind']}):")
        if item["error"]:
            streams.result(f"  error: {item['error']}")
        for r in item["revisions"]:
            mark = "*" if r["current"] else " "
            what = r["image"] or short(r["commit"])
            streams.result(f" {mark}{r['revision']:>4}  {what}  {r['change_cause']}")
    streams.result("releases:")
    for x in releases:
        steps = " ".join(f"{st['step']}:{st['status']}" for st in x["steps"])
        streams.result(
            f"  #{x['id']} {x['started_at']}  {x['target']:<12} {short(x['commit'])} "
            f"{x['status']:<11} {x['user']}  {steps}  {x['message']}"
        )
    streams.result("journal:")
    for e in entries:
        outcome = "outcome unknown — verify" if e["outcome_unknown"] else e["outcome"]
        revs = f"{e['from_revision'] or '?'} -> {e['to_revision'] or '?'}"
        who = e["user"] + (f" from {e['ssh_client']}" if e["ssh_client"] else "")
        streams.result(
            f"  {e['time']}  {e['target']:<12} {e['action']:<9} {revs:<12} {outcome:<10} "
            f"{who}  {e['reason']}"
        )
    return code
