"""``mrc doctor``: check that every configured backend answers."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from tui.cli.output import EXIT_OK, EXIT_UNAVAILABLE, Streams

if TYPE_CHECKING:
    from core.services.workspace import Workspace


def cmd_doctor(
    ws: Workspace, streams: Streams, *, as_json: bool = False, timeout: float = 5.0
) -> int:
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
