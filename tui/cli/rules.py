"""``mrc rules``: write Prometheus alerting rules for every model, checked by ``promtool``.

The rules come from :func:`core.rules.alerting_rules`. They are written to a
temporary file beside ``--out`` (or in a temporary directory for stdout),
checked with ``promtool check rules``, and only then renamed into place (or
printed): a file ``promtool`` rejects is never written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import BackendUnavailable, OperationFailed
from tui.cli.output import EXIT_OK, Streams, UsageError

if TYPE_CHECKING:
    from core.services.workspace import Workspace

#: Where Debian's prometheus package installs promtool (used when it is not on PATH).
PROMTOOL_FALLBACK = "/usr/bin/promtool"


def promtool() -> str:
    """Return the path of ``promtool``; raises BackendUnavailable when there is none."""
    found = shutil.which("promtool") or (
        PROMTOOL_FALLBACK if os.access(PROMTOOL_FALLBACK, os.X_OK) else None
    )
    if not found:
        raise BackendUnavailable("promtool not found (install Prometheus' promtool)")
    return found


def check_rules(path: Path) -> None:
    """Run ``promtool check rules path``.

    Raises OperationFailed with promtool's output when it rejects the file,
    BackendUnavailable when promtool cannot be run.
    """
    try:
        proc = subprocess.run(
            [promtool(), "check", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendUnavailable(f"promtool failed to run: {exc}") from exc
    if proc.returncode != 0:
        detail = (proc.stdout + proc.stderr).strip()
        raise OperationFailed(f"promtool rejected the generated rules:\n{detail}")


def cmd_rules(ws: Workspace, streams: Streams, *, out: Path | None, for_: float) -> int:
    """Write the alerting rules of every model to ``out`` (stdout when None); return 0.

    Raises UsageError for a fractional ``for_``.

    Nothing is written unless promtool accepts the file. Raises
    OperationFailed (promtool rejected it), BackendUnavailable (no promtool,
    or ``out``'s directory is not writable).
    """
    from core.rules import alerting_rules

    try:
        text = alerting_rules(ws.config, for_=for_)
    except ValueError as exc:
        raise UsageError(f"--for: {exc}") from exc
    directory = out.resolve().parent if out is not None else None
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=".mrc-rules-", suffix=".yml", dir=str(directory) if directory else None
        )
    except OSError as exc:
        raise BackendUnavailable(f"cannot write in {directory}: {exc}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        check_rules(tmp)
        if out is None:
            streams.out.write(text)
            streams.out.flush()
        else:
            tmp.chmod(0o644)
            os.replace(tmp, out)
            streams.say(f"mrc rules: wrote {out} (promtool check rules: SUCCESS)")
    finally:
        tmp.unlink(missing_ok=True)
    return EXIT_OK
