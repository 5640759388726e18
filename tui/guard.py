"""How the console shows the post-release guard's latest word on a target.

One line, ``guard: <state>``: watching, passed, BREACH, ALERT (``u`` rolls
back), ``inconclusive (<reason>)`` with what follows it, rolling back,
rolled back, ROLLBACK FAILED or cancelled. Reasons and messages come from
outside (metric names, backend errors) and are shown literally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from tui.text import literal

if TYPE_CHECKING:
    from core.services.guard import GuardEvent

_STYLE = {
    "started": "cyan",
    "check": "cyan",
    "passed": "green",
    "breach": "bold red",
    "alert": "bold red",
    "inconclusive": "bold yellow",
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
    "inconclusive": "inconclusive",
    "rollback_progress": "rolling back",
    "rolled_back": "rolled back",
    "rollback_failed": "ROLLBACK FAILED",
    "cancelled": "cancelled",
}

#: What follows an inconclusive verdict, by GuardEvent.action.
_AFTER_INCONCLUSIVE = {
    "alert": "not verified: u rolls back",
    "accept": "accepted, not verified",
    "rollback": "rolling back",
}


def guard_text(event: GuardEvent | None) -> Text:
    """Return ``guard: <state>`` for a :class:`core.services.guard.GuardEvent` (empty for None).

    An inconclusive verdict reads ``guard: inconclusive (<reason>) <what follows>``.
    """
    if event is None:
        return Text("")
    text = Text("guard: ", style="bold")
    style = _STYLE.get(event.kind, "")
    text.append(_LABEL.get(event.kind, event.kind), style=style)
    if event.kind == "inconclusive":
        text.append(" (", style=style)
        text.append_text(literal(event.reason or "no verdict", style=style, max_len=160))
        text.append(")", style=style)
        after = _AFTER_INCONCLUSIVE.get(event.action, "")
        if after:
            text.append(f" {after}")
        return text
    if event.kind in ("started", "check") and event.remaining:
        text.append(f" ({event.remaining / 60:.0f}m left)")
    if event.message:
        text.append(" ")
        text.append_text(literal(event.message, max_len=160))
    return text
