"""How the console shows the post-release guard's latest word on a target."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from tui.text import literal

_STYLE = {
    "started": "cyan",
    "check": "cyan",
    "passed": "green",
    "breach": "bold red",
    "alert": "bold red",
    "rollback_progress": "bold yellow",
    "rolled_back": "bold yellow",
    "rollback_failed": "bold red",
    "cancelled": "yellow",
}

_LABEL = {
    "started": "watching",
    "check": "watching",
    "passed": "passed",
    "breach": "BREACH",
    "alert": "ALERT: u rolls back",
    "rollback_progress": "rolling back",
    "rolled_back": "rolled back",
    "rollback_failed": "ROLLBACK FAILED",
    "cancelled": "cancelled",
}


def guard_text(event: Any) -> Text:
    """Return ``guard: <state>`` for a :class:`core.services.guard.GuardEvent` (empty for None)."""
    if event is None:
        return Text("")
    text = Text("guard: ", style="bold")
    text.append(_LABEL.get(event.kind, event.kind), style=_STYLE.get(event.kind, ""))
    if event.kind in ("started", "check") and event.remaining:
        text.append(f" ({event.remaining / 60:.0f}m left)")
    if event.message:
        text.append(" ")
        text.append_text(literal(event.message, max_len=160))
    return text
