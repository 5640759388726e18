"""The silence dialog: how long to silence an alert, and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input, Label, Static

from core import durations
from tui.screens.base import Dialog
from tui.text import literal

if TYPE_CHECKING:
    from core.alertmanager import Alert

#: The duration the dialog proposes.
DEFAULT_DURATION = "1h"


@dataclass(frozen=True)
class SilenceRequest:
    """What the operator asked for: a duration (seconds, and as typed) and a reason."""

    seconds: float
    duration: str
    reason: str


def alert_text(alert: Alert) -> Text:
    """Returns the alert's name, model and labels as literal text."""
    text = Text()
    text.append("alert  ", style="bold")
    text.append_text(literal(alert.name or "-", max_len=80))
    text.append("\nmodel  ", style="bold")
    text.append_text(literal(alert.model or "-", max_len=80))
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    text.append("\nlabels ", style="bold")
    text.append_text(literal(labels, max_len=300))
    return text


class SilenceDialog(Dialog[SilenceRequest | None]):
    """Asks for a duration (the grammar of :mod:`core.durations`) and a reason.

    ``enter`` in the duration field moves to the reason; ``enter`` in the
    reason field checks both and answers; ``esc`` cancels. The action table's
    confirmation follows (see ``MrcApp.silence_alert``).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="silence.cancel", tooltip="Do not silence"),
    ]

    AUTO_FOCUS = "#duration"

    DEFAULT_CSS = """
    SilenceDialog {
        align: center middle;
    }
    SilenceDialog > Vertical {
        width: 70;
        max-width: 100%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 0 1;
    }
    SilenceDialog #silence-error {
        color: $error;
    }
    """

    def __init__(self, alert: Alert) -> None:
        super().__init__()
        self.alert = alert

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Silence alert"
            yield Static(alert_text(self.alert), id="silence-alert")
            yield Label("for (30m, 2h, 1d):", markup=False)
            yield Input(DEFAULT_DURATION, id="duration", max_length=20)
            yield Label("reason (journalled, kept by Alertmanager):", markup=False)
            yield Input(placeholder="why", id="reason", max_length=500)
            yield Label("enter next/confirm · esc cancel", id="silence-error", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "duration":
            self.query_one("#reason", Input).focus()
            return
        error = self.query_one("#silence-error", Label)
        text = self.query_one("#duration", Input).value.strip()
        try:
            seconds = durations.parse(text)
        except ValueError as problem:
            error.update(f"duration: {problem}")
            self.query_one("#duration", Input).focus()
            return
        if seconds <= 0:
            error.update("duration: must be more than zero")
            self.query_one("#duration", Input).focus()
            return
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            error.update("reason: say why (Alertmanager keeps it with the silence)")
            return
        self.dismiss(SilenceRequest(seconds, text, reason))

    def action_cancel(self) -> None:
        self.dismiss(None)
