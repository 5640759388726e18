"""What the scripting commands of ``mrc`` write, and the exit codes they return.

This docstring is the CLI's contract (status, history, test, release,
rollback, retrain, doctor); the README's exit-code table summarises it. The commands
drive the same core as the console. Progress and prompts go to stderr,
results to stdout; with ``--json`` stdout holds exactly one JSON document
(keys sorted, documented below) so scripts can parse it.

Text from outside (commit messages, change-causes, journal reasons, backend
error messages, test output, names from the configuration) is shown as
data: every text line on stdout and stderr passes
:func:`core.sanitize.clean_line`, so an escape sequence appears as ``␛`` and a
control character as its control picture, and no ESC or BEL byte reaches the
terminal. JSON documents keep the values unchanged but are written in ASCII:
control and non-ASCII characters are ``\\uXXXX`` escapes.

Exit codes
----------

One table for every command; when several problems occur, the first row
that applies (in the order 2, 3, 6 for ``status``, ``history`` and ``doctor``,
which still print what they could read) gives the code.

====  ==========================================================================
code  meaning
====  ==========================================================================
0     success (``status``/``doctor``: everything answered; ``test``: tests passed)
1     the operation ran and failed (tests failed, rollout failed, guard breach;
      ``retrain``: the command failed, timed out or changed no file)
2     usage or configuration error: bad arguments; invalid configuration; no
      configuration file found; a model's ``repo`` missing or not a git
      repository; confirmation needed but stdin is not a terminal; declined;
      ``--yes`` alone on a production target (scripts pass ``--confirm MODEL``);
      ``retrain`` of a model without a ``[model.retrain]`` table;
      ``serve`` on a non-loopback ``--host`` without ``--read-only`` or
      ``--allow-changes`` (said in red, with the reason)
3     a backend is unavailable (git, Docker, Kubernetes, Prometheus, journal;
      ``doctor``: a check failed; ``serve``: its port is in use or the address
      cannot be bound)
4     conflict: somebody else changed the target meanwhile; nothing was overwritten
5     permission denied: RBAC, or read-only (``--read-only``, ``[console]
      read_only`` or a read-only target) refused ``test``, ``release``,
      ``rollback`` or ``retrain`` before anything ran or was journalled
6     not found (model, target, commit or revision)
7     ``release``: the new revision is live but not verified: its guard was
      inconclusive (a check never had data, or its source kept failing) and
      ``on_inconclusive`` did not roll it back
130   cancelled (Ctrl-C)
====  ==========================================================================

Confirmation: ``release`` and ``rollback`` ask on a terminal (a production
release needs the model's name typed). In scripts ``--yes`` confirms on
non-production targets; on a production target only ``--confirm MODEL``
(the model's name) does, and ``--yes`` alone is refused (exit 2) before
anything is journalled or changed. ``retrain`` makes a commit on a branch and
releases nothing (unless ``auto_release``): ``y`` on a terminal, ``--yes`` in
scripts.

``watch`` and ``rules`` (the exporter and its alerting rules; see
:mod:`tui.cli.watch`, :mod:`tui.cli.rules` and the README for the metric
names) have no ``--json``. ``watch`` serves until Ctrl-C or SIGTERM and then
exits 0; it exits 3 when it cannot listen. ``rules`` writes nothing unless
``promtool check rules`` accepts the file: exit 1 when promtool rejects it,
3 when promtool cannot be run, 2 for an invalid configuration or ``--for``.

Problems with the configuration: no configuration file at all is an error
(exit 2) for every scripting command. A model whose ``repo`` is missing or
is not a git repository is an error for ``test`` and ``release``; ``status``,
``history`` and ``doctor`` still print what they could read, name the problem
on stderr (``mrc: warning: ...``) and in their document's ``warnings`` list,
and exit 2; ``rollback`` does not need the repository and only warns.

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
running, done, failed, cancelled, rolled_back, alerted, inconclusive or unknown
(its process died); a step's is running, done, failed, skipped, cancelled,
inconclusive (verify without a verdict) or unknown.

``mrc test MODEL [COMMIT] --json``::

    {"model", "commit", "status", "passed", "failed", "errors", "skipped",
     "duration", "metrics", "failures": [{"name", "kind", "message"}], "message"}

``mrc release MODEL COMMIT --json``::

    {"model", "target", "commit", "release_id", "outcome", "message",
     "steps": [{"step", "result", "message"}]}

``outcome`` is one of done, failed, cancelled, rolled_back, alerted,
inconclusive; a step's
``result`` is one of done, skipped, failed, cancelled.

``mrc rollback MODEL --json``::

    {"model", "target", "from_revision", "to_revision", "from_image", "to_image",
     "result", "message", "waited"}

``result`` is "done" or "skipped" (the target already runs that revision).
``waited`` is true when the command followed the rollback until it completed
(on Kubernetes: until the rollout completed, as ``kubectl rollout status``
says), false when it returned once the API server accepted it (``--no-wait``)
or nothing was rolled back.

``mrc retrain MODEL --json``::

    {"model", "base", "commit", "branch", "metrics", "files", "journal_id",
     "trigger": {"score", "method", "reference", "started_by", "reason"}, "warnings"}

``base`` is the commit the command started from, ``commit`` the retrained
one on ``branch`` (``retrain/<model>/<UTC time>``, with ``-2``... when that
name was taken: said in ``warnings``); ``metrics`` are what the command wrote
to ``$MRC_RETRAIN_OUTPUT/metrics.json``; ``trigger.score`` is null when the
drift was not known. The command's output goes to stderr as it runs.

``mrc doctor --json``::

    {"ok", "checks": [{"backend", "name", "ok", "detail"}]}

``status``, ``history``, ``doctor`` and ``rollback`` documents also hold
``"warnings": [str]`` (empty when there is nothing to say).

Times are ISO 8601 UTC strings (or null); revisions are integers (or null).
When a command ends with an error before it has a result (exit 2-6, 130),
stderr ends with ``mrc: <what went wrong>``; with ``--json`` stdout then holds
``{"error": "<what went wrong>"}`` (argparse's own usage errors, exit 2,
print no document).
"""

from __future__ import annotations

import dataclasses
import json
import re
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
from core.git import NotARepository
from core.sanitize import clean_line

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_CONFLICT = 4
EXIT_PERMISSION = 5
EXIT_NOT_FOUND = 6
EXIT_INCONCLUSIVE = 7
EXIT_CANCELLED = 130


class UsageError(MrcError):
    """Bad arguments, or a confirmation that cannot be asked, was declined or is missing."""


class MissingConfiguration(UsageError):
    """No configuration file was found where ``mrc`` looks for one."""


#: Exception kinds and their exit codes; the first matching row wins.
_EXIT_CODES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], int], ...] = (
    ((UsageError, ConfigError, NotARepository), EXIT_USAGE),
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


_LINE_BREAK = re.compile(r"\r?\n")


def inert(text: str) -> str:
    """Return ``text`` with each of its lines passed through :func:`core.sanitize.clean_line`.

    Line breaks are kept; everything a terminal would interpret (escape
    sequences, control characters, bidirectional overrides) is replaced by a
    visible mark and each line is bounded in length. Never raises.
    """
    return "\n".join(clean_line(line) for line in _LINE_BREAK.split(text))


def short(value: str, width: int = 8) -> str:
    """Return the first ``width`` characters of ``value`` once it is inert (sanitise, then cut)."""
    return clean_line(value)[:width]


@dataclasses.dataclass
class Streams:
    """Where a command writes: ``out`` results, ``err`` progress and prompts, ``inp`` answers.

    Every text written passes :func:`inert`; JSON is written in ASCII. This
    is the only place the scripting commands write.
    """

    out: TextIO
    err: TextIO
    inp: TextIO
    wrote_json: bool = False
    """True once :meth:`json` has written the command's document."""

    @classmethod
    def std(cls) -> Streams:
        """Return the process' stdout, stderr and stdin."""
        return cls(sys.stdout, sys.stderr, sys.stdin)

    def say(self, text: str) -> None:
        """Write progress (one line, or several separated by newlines) to stderr."""
        print(inert(text), file=self.err, flush=True)

    def ask(self, text: str) -> None:
        """Write a question to stderr, leaving the cursor after it for the answer."""
        self.err.write(inert(text))
        self.err.flush()

    def result(self, text: str) -> None:
        """Write one result line (or several separated by newlines) to stdout."""
        print(inert(text), file=self.out, flush=True)

    def json(self, document: Any) -> None:
        """Write one JSON document to stdout (keys sorted, stable, ASCII only).

        ``ensure_ascii`` escapes every control and non-ASCII character as
        ``\\uXXXX``: strings keep their value, the bytes hold no ESC or BEL.
        """
        text = json.dumps(
            document, sort_keys=True, indent=2, ensure_ascii=True, default=_json_default
        )
        self.out.write(text)
        self.out.write("\n")
        self.out.flush()
        self.wrote_json = True


def _json_default(value: Any) -> Any:
    """Return ``value`` as JSON can hold it: datetimes in ISO 8601, anything else as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def iso(value: datetime | None) -> str | None:
    """Return ``value`` as an ISO 8601 string, or None."""
    return value.isoformat() if value is not None else None
