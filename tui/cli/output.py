"""What the scripting commands of ``mrc`` write, and the exit codes they return.

This docstring is the CLI's contract (status, history, test, release,
rollback, doctor). The commands drive the same core as the console. Progress
and prompts go to stderr, results to stdout; with ``--json`` stdout holds
exactly one JSON document (keys sorted, documented below) so scripts can
parse it.

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

The document also holds ``"drift": [{"model", "method", "value", "band",
"samples", "reference", "reason"}]``: per model with a prediction histogram,
its latest ``drift.window`` scored against the configured reference by the
same scorer as the guard and the Drift screen. ``value`` is null exactly when
``band`` is "not enough data"; ``reason`` then says why (too few samples, no
reference, source error). A ``scrape`` source samples one ``refresh`` period.

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

import dataclasses
import json
import sys
from datetime import datetime
from typing import Any, TextIO

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


#: Exception kinds and their exit codes; the first matching row wins.
_EXIT_CODES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], int], ...] = (
    ((UsageError, ConfigError), EXIT_USAGE),
    (BackendUnavailable, EXIT_UNAVAILABLE),
    (Conflict, EXIT_CONFLICT),
    ((PermissionDenied, ReadOnly), EXIT_PERMISSION),
    (NotFound, EXIT_NOT_FOUND),
    ((Cancelled, KeyboardInterrupt), EXIT_CANCELLED),
    (OperationFailed, EXIT_FAILED),
)


def exit_code_for(error: BaseException) -> int:
    """Return the documented exit code for an exception raised by a command (1 if unlisted)."""
    for kinds, code in _EXIT_CODES:
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
        """Return the process' stdout, stderr and stdin."""
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
    """Return ``value`` as JSON can hold it: datetimes in ISO 8601, anything else as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def iso(value: datetime | None) -> str | None:
    """Return ``value`` as an ISO 8601 string, or None."""
    return value.isoformat() if value is not None else None
