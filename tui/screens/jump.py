"""``:``: the k9s-style jump prompt (``:rollouts``, ``:drift``, ``:q``)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label

from tui.screens.base import Dialog


class JumpScreen(Dialog[str | None]):
    """A one-line prompt at the bottom; returns what was typed, or None on escape."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="jump.cancel"),
    ]

    DEFAULT_CSS = """
    JumpScreen {
        align: left bottom;
        background: $background 40%;
    }
    JumpScreen > Input {
        width: 1fr;
        border: tall $accent;
    }
    JumpScreen > Label {
        padding: 0 1;
        background: $panel;
        width: 1fr;
    }
    """

    def __init__(self, choices: list[str]) -> None:
        super().__init__()
        self.choices = choices

    def compose(self) -> ComposeResult:
        yield Label("jump to: " + "  ".join(self.choices), markup=False)
        yield Input(
            placeholder=":screen (tab completes)",
            suggester=SuggestFromList(self.choices, case_sensitive=False),
            id="jump-input",
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip().lstrip(":").lower() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
