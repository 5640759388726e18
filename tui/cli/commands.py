"""The scripting commands of ``mrc``: status, history, test, release, rollback, doctor.

They drive the same core as the console. Progress and prompts go to stderr,
results to stdout; with ``--json`` stdout holds exactly one JSON document
(keys sorted, documented below) so scripts can parse it.

Exit codes
----------

====  ==========================================================================
code  meaning
====  ==========================================================================
0     success (``status``/``doctor``: everything answered; ``test``: tests passed)
1     the operation ran and failed (tests failed, rollout failed, guard breach,
      a doctor check failed)
2     usage or configuration error (bad arguments, invalid config, confirmation
      needed but stdin is not a terminal and ``--yes`` was not given, declined)
3     a backend is unavailable (git, Docker, Kubernetes, Prometheus, journal)
4     conflict: somebody else changed the target meanwhile; nothing was overwritten
5     permission denied (RBAC, read-only mode or a read-only target)
6     not found (model, target, commit or revision)
130   cancelled (Ctrl-C)
====  ==========================================================================

JSON documents
--------------

``mrc status --json``::

    {"targets": [{"model", "target", "kind", "production", "read_only", "phase",
                  "revision", "image", "commit", "desired", "ready", "updated",
                  "available", "message", "error"}]}

``error`` is "" when the target answered, else why it could not be read
(``phase`` is then "disconnected" or "unknown").

``mrc history MODEL --json``::

    {"model", "targets": [{"target", "kind", "error",
                           "revisions": [{"revision", "image", "commit", "created",
                                          "change_cause", "current"}]}],
     "journal": [{"id", "time", "user", "ssh_client", "host", "model", "target",
                  "action", "from_revision", "to_revision", "reason", "outcome",
                  "outcome_unknown", "error", "finished_at"}],
     "releases": [{"id", "commit", "target", "status", "reason", "user", "message",
                   "started_at", "finished_at",
                   "steps": [{"step", "status", "message", "started_at", "finished_at"}]}]}

Journal entries and releases are newest first. A release's ``status`` is
running, done, failed, cancelled, rolled_back, alerted or unknown (its
process died); a step's is running, done, failed, skipped, cancelled or unknown.

``mrc test MODEL [COMMIT] --json``::

    {"model", "commit", "status", "passed", "failed", "errors", "skipped",
     "duration", "metrics", "failures": [{"name", "kind", "message"}], "message"}

``mrc release MODEL COMMIT --json``::

    {"model", "target", "commit", "release_id", "outcome", "message",
     "steps": [{"step", "result", "message"}]}

``outcome`` is one of done, failed, cancelled, rolled_back, alerted; a step's
``result`` is one of done, skipped, failed, cancelled.

``mrc rollback MODEL --json``::

    {"model", "target", "from_revision", "to_revision", "from_image", "to_image",
     "result", "message"}

``result`` is "done" or "skipped" (the target already runs that revision).

``mrc doctor --json``::

    {"ok", "checks": [{"backend", "name", "ok", "detail"}]}

Times are ISO 8601 UTC strings (or null); revisions are integers (or null).
When a command ends with an error before it has a result (exit 2-6, 130),
stdout is empty and stderr ends with ``mrc: <what went wrong>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TextIO

from core.cancel import CancelToken
from core.domain import Phase, RunStatus, TestRun
from core.errors import (
    BackendUnavailable,
    Cancelled,
    ConfigError,
    Conflict,
    MrcError,
    NotFound,
    OperationFailed,
    PermissionDenied,
    ReadOnly,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_CONFLICT = 4
EXIT_PERMISSION = 5
EXIT_NOT_FOUND = 6
EXIT_CANCELLED = 130


class UsageError(MrcError):
    """Bad arguments, or a confirmation that cannot be asked or was declined."""


def exit_code_for(error: BaseException) -> int:
    """Return the documented exit code for an exception raised by a command."""
    table: list[tuple[type[BaseException] | tuple[type[BaseException], ...], int]] = [
        ((UsageError, ConfigError), EXIT_USAGE),
        (BackendUnavailable, EXIT_UNAVAILABLE),
        (Conflict, EXIT_CONFLICT),
        ((PermissionDenied, ReadOnly), EXIT_PERMISSION),
        (NotFound, EXIT_NOT_FOUND),
        ((Cancelled, KeyboardInterrupt), EXIT_CANCELLED),
        (OperationFailed, EXIT_FAILED),
    ]
    for kinds, code in table:
        if isinstance(error, kinds):
            return code
    return EXIT_FAILED


@dataclasses.dataclass
class Streams:
    """Where a command writes: ``out`` results, ``err`` progress and prompts, ``inp`` answers."""

    out: TextIO
    err: TextIO
    inp: TextIO

    @classmethod
    def std(cls) -> Streams:
        """The process' stdout, stderr and stdin."""
        return cls(sys.stdout, sys.stderr, sys.stdin)

    def say(self, text: str) -> None:
        """Write one progress line to stderr."""
        print(text, file=self.err, flush=True)

    def result(self, text: str) -> None:
        """Write one result line to stdout."""
        print(text, file=self.out, flush=True)

    def json(self, document: Any) -> None:
        """Write one JSON document to stdout (keys sorted, stable)."""
        self.out.write(json.dumps(document, sort_keys=True, indent=2, default=_json_default))
        self.out.write("\n")
        self.out.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseException):
        return str(value)
    return str(value)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --------------------------------------------------------------------------
# Confirmation


def confirm(
    streams: Streams,
    question: str,
    *,
    yes: bool,
    typed: str = "",
    interactive: bool | None = None,
) -> None:
    """Ask ``question`` on stderr and read the answer; return when confirmed.

    With ``yes`` nothing is asked. ``typed`` (production targets) must be
    typed exactly instead of "y". Raises UsageError when stdin is not a
    terminal (scripts must pass ``--yes``) or the answer is not a yes.
    """
    if yes:
        return
    if interactive is None:
        interactive = bool(getattr(streams.inp, "isatty", lambda: False)())
    if not interactive:
        raise UsageError("confirmation needed but stdin is not a terminal: pass --yes")
    if typed:
        streams.err.write(f"{question}\nType the model name ({typed}) to confirm: ")
    else:
        streams.err.write(f"{question} [y/N] ")
    streams.err.flush()
    answer = streams.inp.readline().strip()
    if (typed and answer != typed) or (not typed and answer.lower() not in ("y", "yes")):
        raise UsageError("not confirmed: nothing was changed")


@contextmanager
def sigint_cancels(cancel: CancelToken) -> Iterator[None]:
    """While active, the first Ctrl-C sets ``cancel``; the second raises KeyboardInterrupt.

    Only in the main thread (signal handlers cannot be installed elsewhere).
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        print("cancelling… (Ctrl-C again to abort)", file=sys.stderr, flush=True)
        cancel.cancel()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------
# status


def _state_row(ws: Any, model: Any, target_cfg: Any) -> dict[str, Any]:
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


def cmd_status(ws: Any, streams: Streams, *, as_json: bool = False) -> int:
    """Print the live state of every model on every target.

    Returns 0 when every target answered, 3 when one was unreachable, 6 when
    one does not exist (the other rows are printed all the same).
    """
    rows = [_state_row(ws, m, t) for m in ws.models for t in m.targets]
    if as_json:
        streams.json({"targets": rows})
    else:
        streams.result(
            f"{'MODEL':<16} {'TARGET':<14} {'KIND':<10} {'PHASE':<12} {'REV':>4} READY  WHAT"
        )
        for r in rows:
            rev = "-" if r["revision"] is None else str(r["revision"])
            what = r["image"] or (r["commit"][:8] if r["commit"] else "")
            if r["error"]:
                what = f"error: {r['error']}"
            prod = " [production]" if r["production"] else ""
            streams.result(
                f"{r['model']:<16} {r['target']:<14} {r['kind']:<10} {r['phase']:<12} {rev:>4} "
                f"{r['ready']}/{r['desired']:<4} {what}{prod}"
            )
    if any(r["phase"] == Phase.DISCONNECTED.value for r in rows):
        return EXIT_UNAVAILABLE
    if any(r["error"] for r in rows):
        return EXIT_NOT_FOUND
    return EXIT_OK


# --------------------------------------------------------------------------
# history


def _entry_dict(entry: Any) -> dict[str, Any]:
    return {
        "id": entry.id,
        "time": _iso(entry.time),
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
        "finished_at": _iso(entry.finished_at),
    }


def _release_dict(release: Any) -> dict[str, Any]:
    return {
        "id": release.id,
        "commit": release.commit,
        "target": release.target,
        "status": release.status,
        "reason": release.reason,
        "user": release.user,
        "message": release.message,
        "started_at": _iso(release.started_at),
        "finished_at": _iso(release.finished_at),
        "steps": [
            {
                "step": st.step,
                "status": st.status,
                "message": st.message,
                "started_at": _iso(st.started_at),
                "finished_at": _iso(st.finished_at),
            }
            for st in release.steps
        ],
    }


def cmd_history(
    ws: Any, streams: Streams, model: str, *, target: str | None = None, as_json: bool = False
) -> int:
    """Print the revision history of the model's targets and its journal entries.

    Returns 0, 3 when a target could not be read (its revisions are then
    empty and ``error`` says why), 6 for an unknown model or target.
    """
    model_cfg = ws.model(model)
    names = [target] if target else [t.name for t in model_cfg.targets]
    targets = []
    code = EXIT_OK
    for name in names:
        tcfg = ws.target_config(model, name)
        item: dict[str, Any] = {"target": name, "kind": tcfg.kind, "error": "", "revisions": []}
        try:
            revisions = ws.target(model, name).history()
        except BackendUnavailable as exc:
            item["error"] = str(exc)
            code = EXIT_UNAVAILABLE
            revisions = []
        except NotFound as exc:
            item["error"] = str(exc)
            revisions = []
        item["revisions"] = [
            {
                "revision": r.number,
                "image": r.image,
                "commit": r.commit,
                "created": _iso(r.created),
                "change_cause": r.change_cause,
                "current": bool(r.current),
            }
            for r in revisions
        ]
        targets.append(item)
    entries = [_entry_dict(e) for e in ws.journal.entries(model=model, target=target)]
    releases = [_release_dict(x) for x in ws.journal.releases(model=model, target=target)]
    if as_json:
        streams.json({"model": model, "targets": targets, "journal": entries, "releases": releases})
        return code
    for item in targets:
        streams.result(f"{model} on {item['target']} ({item['kind']}):")
        if item["error"]:
            streams.result(f"  error: {item['error']}")
        for r in item["revisions"]:
            mark = "*" if r["current"] else " "
            what = r["image"] or (r["commit"][:8] if r["commit"] else "")
            streams.result(f" {mark}{r['revision']:>4}  {what}  {r['change_cause']}")
    streams.result("releases:")
    for x in releases:
        steps = " ".join(f"{st['step']}:{st['status']}" for st in x["steps"])
        streams.result(
            f"  #{x['id']} {x['started_at']}  {x['target']:<12} {x['commit'][:8]} "
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


# --------------------------------------------------------------------------
# test


def _run_dict(run: TestRun) -> dict[str, Any]:
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
    ws: Any,
    streams: Streams,
    model: str,
    commit: str = "HEAD",
    *,
    as_json: bool = False,
    cancel: CancelToken | None = None,
) -> int:
    """Run the model's tests at ``commit``; stream output to stderr, summary to stdout.

    Returns 0 when the tests passed, 1 when they failed or errored, 130 when cancelled.
    """
    cancel = cancel or CancelToken()
    sha = ws.resolve_commit(model, commit)
    run: TestRun | None = None
    streams.say(f"testing {model} at {sha[:8]}: {ws.model(model).test_command}")
    for item in ws.run_tests(model, sha, cancel=cancel):
        if hasattr(item, "text"):
            streams.say(item.text)
        elif getattr(item, "run", None) is not None:
            run = item.run
            if run is not None and run.status is RunStatus.RUNNING:
                streams.say(f"test run {run.id} started")
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


# --------------------------------------------------------------------------
# release


def cmd_release(
    ws: Any,
    streams: Streams,
    model: str,
    commit: str,
    *,
    target: str | None = None,
    reason: str = "",
    yes: bool = False,
    as_json: bool = False,
    cancel: CancelToken | None = None,
    interactive: bool | None = None,
) -> int:
    """Run the release pipeline for ``commit``; progress to stderr, outcome to stdout.

    Asks for confirmation unless ``yes`` (production targets: the model name
    must be typed). Returns 0 when the release is live and passed its verify
    window, 1 when it failed or the guard found a breach, 130 when cancelled.
    """
    from core.services import release

    cancel = cancel or CancelToken()
    tcfg = ws.target_config(model, target)
    ws.require_writable(model, tcfg.name)
    sha = ws.resolve_commit(model, commit)
    prod = " (PRODUCTION)" if tcfg.production else ""
    confirm(
        streams,
        f"Release {model} {sha[:8]} to {tcfg.name}{prod}?",
        yes=yes,
        typed=model if tcfg.production else "",
        interactive=interactive,
    )
    steps: dict[str, dict[str, str]] = {}
    final: Any = None
    pipeline = release.ReleasePipeline(ws)
    for event in pipeline.run(model, sha, tcfg.name, reason=reason, cancel=cancel):
        kind = event.kind
        if kind == release.STEP_STARTED:
            steps[event.step] = {"step": event.step, "result": "running", "message": ""}
            streams.say(f"==> {event.step}")
        elif kind == release.STEP_PROGRESS:
            text = event.line or event.message
            if text:
                streams.say(f"    {text}")
        elif kind in (release.STEP_FINISHED, release.STEP_SKIPPED, release.STEP_FAILED):
            result = {
                release.STEP_FINISHED: "done",
                release.STEP_SKIPPED: "skipped",
                release.STEP_FAILED: "failed",
            }[kind]
            steps[event.step] = {"step": event.step, "result": result, "message": event.message}
            streams.say(f"<== {event.step}: {result} {event.message}".rstrip())
        elif kind == release.RELEASE_FINISHED:
            final = event
    assert final is not None
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
    if final.error is not None and not isinstance(final.error, OperationFailed):
        return exit_code_for(final.error)
    return EXIT_FAILED


# --------------------------------------------------------------------------
# rollback


def cmd_rollback(
    ws: Any,
    streams: Streams,
    model: str,
    *,
    target: str | None = None,
    to_revision: int | None = None,
    reason: str = "",
    yes: bool = False,
    as_json: bool = False,
    cancel: CancelToken | None = None,
    interactive: bool | None = None,
) -> int:
    """Roll the model back on ``target`` to ``to_revision`` (None: the previous one).

    Shows current -> target revision and asks for confirmation unless ``yes``.
    Returns 0 when rolled back (or already at that revision), else the exit
    code of the error (4 conflict, 5 permission, 6 unknown revision, ...).
    """
    cancel = cancel or CancelToken()
    tcfg = ws.target_config(model, target)
    ws.require_writable(model, tcfg.name)
    tgt = ws.target(model, tcfg.name)
    preview = tgt.preview_rollback(to_revision)
    doc = {
        "model": model,
        "target": tcfg.name,
        "from_revision": preview.from_revision,
        "to_revision": preview.to_revision,
        "from_image": preview.from_image,
        "to_image": preview.to_image,
        "result": "",
        "message": "",
    }
    frm = preview.from_image or preview.from_commit[:8]
    to = preview.to_image or preview.to_commit[:8]
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
        # Rollback stays one confirmation even on production targets.
        confirm(streams, f"Roll back {summary}?", yes=yes, interactive=interactive)
        streams.say(f"rolling back {summary}")
        for progress in ws.run_rollback(
            tgt, preview.to_revision, reason=reason or "rollback from the command line",
            cancel=cancel, expected=preview,
        ):  # fmt: skip
            if progress.message:
                streams.say(f"    {progress.message}")
        doc.update(result="done", message=f"rolled back to revision {preview.to_revision}")
    if as_json:
        streams.json(doc)
    else:
        streams.result(f"{summary}: {doc['result']}: {doc['message']}")
    return EXIT_OK


# --------------------------------------------------------------------------
# doctor


def cmd_doctor(ws: Any, streams: Streams, *, as_json: bool = False, timeout: float = 5.0) -> int:
    """Check every configured backend; return 0 when all answer, else 3."""
    from core.services.doctor import doctor

    lines = doctor(ws.config, timeout=timeout)
    ok = all(line.ok for line in lines)
    if as_json:
        streams.json({"ok": ok, "checks": [dataclasses.asdict(line) for line in lines]})
    else:
        for line in lines:
            mark = "ok  " if line.ok else "FAIL"
            streams.result(f"{mark} {line.backend:<11} {line.name}: {line.detail}")
        if not lines:
            streams.result("no backends configured")
    return EXIT_OK if ok else EXIT_UNAVAILABLE


# --------------------------------------------------------------------------
# argparse wiring


def _open_workspace(args: argparse.Namespace) -> Any:
    from core.services.workspace import Workspace

    return Workspace.open(
        getattr(args, "config", None), read_only=bool(getattr(args, "read_only", False))
    )


def run_command(
    body: Callable[[Any, Streams, CancelToken], int],
    args: argparse.Namespace,
    *,
    streams: Streams | None = None,
    workspace: Any = None,
) -> int:
    """Open the workspace, run ``body(ws, streams, cancel)``, map errors to exit codes.

    Errors are printed on stderr as ``mrc: <message>``. Returns the exit code.
    """
    streams = streams or Streams.std()
    cancel = CancelToken()
    ws = workspace
    try:
        if ws is None:
            ws = _open_workspace(args)
        with sigint_cancels(cancel):
            return body(ws, streams, cancel)
    except (MrcError, KeyboardInterrupt) as exc:
        code = exit_code_for(exc)
        text = "cancelled" if isinstance(exc, KeyboardInterrupt) else str(exc)
        streams.say(f"mrc: {text}")
        return code
    finally:
        if ws is not None and workspace is None:
            ws.close()


def add_script_commands(subparsers: Any) -> None:
    """Add status, history, test, release, rollback and doctor to ``mrc``'s subparsers.

    Each subcommand sets ``func``: ``main`` calls ``args.func(args)`` and
    exits with the integer it returns (see the exit code table above).
    """

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    p = subparsers.add_parser("status", help="live state of every model on every target")
    json_flag(p)
    p.set_defaults(
        func=lambda a: run_command(lambda ws, s, c: cmd_status(ws, s, as_json=a.json), a)
    )

    p = subparsers.add_parser("history", help="revision history and audit trail of a model")
    p.add_argument("model")
    p.add_argument("--target", "-t", default=None)
    json_flag(p)
    p.set_defaults(
        func=lambda a: run_command(
            lambda ws, s, c: cmd_history(ws, s, a.model, target=a.target, as_json=a.json), a
        )
    )

    p = subparsers.add_parser("test", help="run a model's tests at a commit")
    p.add_argument("model")
    p.add_argument("commit", nargs="?", default="HEAD")
    json_flag(p)
    p.set_defaults(
        func=lambda a: run_command(
            lambda ws, s, c: cmd_test(ws, s, a.model, a.commit, as_json=a.json, cancel=c), a
        )
    )

    p = subparsers.add_parser("release", help="test, build, push, roll out and verify a commit")
    p.add_argument("model")
    p.add_argument("commit")
    p.add_argument("--target", "-t", default=None)
    p.add_argument("--reason", default="", help="why (recorded in the journal)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    json_flag(p)
    p.set_defaults(
        func=lambda a: run_command(
            lambda ws, s, c: cmd_release(
                ws, s, a.model, a.commit, target=a.target, reason=a.reason, yes=a.yes,
                as_json=a.json, cancel=c,
            ),
            a,
        )
    )  # fmt: skip

    p = subparsers.add_parser("rollback", help="roll a model back to a previous revision")
    p.add_argument("model")
    p.add_argument("--target", "-t", default=None)
    p.add_argument("--to", type=int, default=None, metavar="REVISION", dest="to_revision")
    p.add_argument("--reason", default="", help="why (recorded in the journal)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    json_flag(p)
    p.set_defaults(
        func=lambda a: run_command(
            lambda ws, s, c: cmd_rollback(
                ws, s, a.model, target=a.target, to_revision=a.to_revision, reason=a.reason,
                yes=a.yes, as_json=a.json, cancel=c,
            ),
            a,
        )
    )  # fmt: skip

    p = subparsers.add_parser("doctor", help="check that every configured backend answers")
    json_flag(p)
    p.set_defaults(
        func=lambda a: run_command(lambda ws, s, c: cmd_doctor(ws, s, as_json=a.json), a)
    )
