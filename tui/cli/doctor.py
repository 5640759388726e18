"""``mrc doctor``: check that every configured backend answers."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from tui.cli.output import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, Streams
from tui.cli.preflight import repository_problems

if TYPE_CHECKING:
    from core.services.workspace import Workspace


def cmd_doctor(
    ws: Workspace, streams: Streams, *, as_json: bool = False, timeout: float = 5.0
) -> int:
    """Check every configured backend; return 0 when all answer, else 3.

    Returns 2 instead when a model's repository is missing or not a git
    repository (a configuration problem, named in ``warnings``).
    """
    from core.services.doctor import doctor

    warnings = repository_problems(ws, [m.name for m in ws.models])
    lines = doctor(ws.config, timeout=timeout)
    ok = all(line.ok for line in lines)
    if as_json:
        streams.json(
            {
                "ok": ok,
                "checks": [dataclasses.asdict(line) for line in lines],
                "warnings": warnings,
            }
        )
    else:
        for warning in warnings:
            streams.say(f"mrc: warning: {warning}")
        for line in lines:
            mark = "ok  " if line.ok else "FAIL"
            streams.result(f"{mark} {line.backend:<11} {line.name}: {line.detail}")
        if not lines:
            streams.result("no backends configured")
    if warnings:
        return EXIT_USAGE
    return EXIT_OK if ok else EXIT_UNAVAILABLE
