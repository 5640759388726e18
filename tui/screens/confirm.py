"""Confirmation dialogs: the one-key rollback and typed confirmation for production."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Label, Static

from core.domain import RollbackPreview
from tui.screens.base import Dialog
from tui.text import literal


@dataclass(frozen=True)
class Decision:
    """The operator's answer: confirmed, with an optional reason for the journal."""

    reason: str = ""


def preview_text(preview: RollbackPreview) -> Text:
    """Return the summary lines of a rollback preview: revisions, images, commits."""
    text = Text()
    text.append("model   ", style="bold")
    text.append_text(literal(f"{preview.model} on {preview.target}"))
    text.append("\nrevision ", style="bold")
    text.append(f"{preview.from_revision if preview.from_revision is not None else '?'}")
    text.append("  ->  ", style="bold")
    text.append(str(preview.to_revision), style="bold green")
    if preview.from_image or preview.to_image:
        text.append("\nimage   ", style="bold")
        text.append_text(literal(preview.from_image or "-"))
        text.append("  ->  ")
        text.append_text(literal(preview.to_image or "-", style="green"))
    text.append("\ncommit  ", style="bold")
    text.append_text(literal(preview.from_commit[:8] or "-"))
    text.append("  ->  ")
    text.append_text(literal(preview.to_commit[:8] or "-", style="green"))
    if preview.noop:
        text.append("\nnothing to do: the target already runs this template", style="yellow")
    if preview.warning:
        text.append("\n")
        text.append_text(literal(preview.warning, style="yellow"))
    return text


def diff_text(diff: str) -> Text:
    """Colour a unified diff line by line, each line literal."""
    text = Text()
    for line in diff.splitlines()[:400]:
        style = ""
        if line.startswith("+") and not line.startswith("+++"):
            style = "green"
        elif line.startswith("-") and not line.startswith("---"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        text.append_text(literal(line, style=style))
        text.append("\n")
    return text


def keys_hint(verb: str, *, typing: bool) -> str:
    """Return a reason dialog's hint line: what its keys do right now."""
    if typing:
        return f"typing the reason · enter {verb} · esc leave the field"
    return f"y {verb} · n/esc cancel · r type a reason (journalled)"


#: The rollback dialog's hint line in each state.
KEYS_HINT = keys_hint("roll back", typing=False)
REASON_KEYS_HINT = keys_hint("roll back", typing=True)


class ReasonDialog(Dialog[Decision | None]):
    """A dialog that one key confirms, with an optional reason for the journal.

    Outside the reason field (``#reason``) ``y`` confirms, ``n``/``esc``
    cancel and ``r`` moves into the field. In the field letters are text:
    ``enter`` confirms with the reason, ``esc`` leaves the field. The hint
    line (``#keys``) always says which of the two applies. Subclasses bind
    the keys and set :attr:`verb`.
    """

    #: What confirming does, as the hint line says it ("roll back", "restart", ...).
    verb = "confirm"

    def on_descendant_focus(self) -> None:
        self._show_keys()

    def on_descendant_blur(self) -> None:
        self._show_keys()

    def _show_keys(self) -> None:
        typing = isinstance(self.focused, Input)
        self.query_one("#keys", Label).update(keys_hint(self.verb, typing=typing))

    def action_confirm(self) -> None:
        self.dismiss(Decision(reason=self.query_one("#reason", Input).value.strip()))

    def action_cancel(self) -> None:
        if isinstance(self.focused, Input):  # esc in the reason field leaves it
            focus = self.query("#diff")
            self.set_focus(focus.first() if focus else None)
            self._show_keys()
            return
        self.dismiss(None)

    def action_reason(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_confirm()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While the reason field has focus, letters are text, not commands.
        return not (action in ("confirm", "reason") and isinstance(self.focused, Input))


class RollbackConfirm(ReasonDialog):
    """Shows current -> target revision, image, commit and template diff.

    Outside the reason field ``y`` confirms, ``n``/``esc`` cancel and ``r``
    moves into the field. In the field letters are text: ``enter`` confirms
    with the reason, ``esc`` leaves the field. The hint line under the
    field always says which of the two applies.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Roll back", id="confirm.yes", tooltip="Confirm the rollback"),
        Binding(
            "n,escape",
            "cancel",
            "Cancel",
            id="confirm.no",
            tooltip="Cancel (esc in the reason field: leave the field)",
        ),
        Binding("r", "reason", "Reason", id="confirm.reason", tooltip="Type why (journalled)"),
    ]

    verb = "roll back"

    #: Focus starts on the diff (if any), never in the reason field: keys are commands.
    AUTO_FOCUS = "#diff"

    #: What ``?`` lists for the dialog: its bindings and the reason field's ``enter``.
    HELP_BINDINGS: ClassVar[list[BindingType]] = [
        *BINDINGS,
        Binding("enter", "confirm", "Roll back", tooltip="In the reason field: roll back with it"),
    ]

    DEFAULT_CSS = """
    RollbackConfirm {
        align: center middle;
    }
    RollbackConfirm > Vertical {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $error;
        background: $surface;
        padding: 0 1;
    }
    RollbackConfirm #diff {
        height: auto;
        max-height: 8;
        border: round $panel;
    }
    RollbackConfirm #keys {
        color: $text-muted;
    }
    RollbackConfirm Input {
        border: tall $panel;
    }
    """

    def __init__(self, preview: RollbackPreview, *, stale: str = "") -> None:
        super().__init__()
        self.preview = preview
        self.stale = stale

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Roll back?"
            yield Static(preview_text(self.preview), id="summary")
            if self.stale:
                yield Label(self.stale, markup=False, id="stale")
            if self.preview.diff:
                with VerticalScroll(id="diff"):
                    yield Static(diff_text(self.preview.diff))
            yield Input(placeholder="reason (optional, press r)", id="reason", max_length=500)
            yield Label(KEYS_HINT, id="keys")


class TypedConfirm(Dialog[Decision | None]):
    """Production safety: the operator types ``expected`` to go ahead."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    TypedConfirm {
        align: center middle;
    }
    TypedConfirm > Vertical {
        width: 70;
        max-width: 100%;
        height: auto;
        border: thick $error;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, title: str, summary: Text, expected: str) -> None:
        super().__init__()
        self.title_text = title
        self.summary = summary
        self.expected = expected

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield Static(self.summary)
            yield Label(f"Type {self.expected!r} to confirm, esc to cancel:", markup=False)
            yield Input(id="typed")
            yield Input(placeholder="reason (optional)", id="reason")
            yield Label("", id="error", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.query_one("#typed", Input).value.strip() != self.expected:
            self.query_one("#error", Label).update(f"that is not {self.expected!r}")
            self.query_one("#typed", Input).focus()
            return
        self.dismiss(Decision(reason=self.query_one("#reason", Input).value.strip()))

    def action_cancel(self) -> None:
        self.dismiss(None)


class YesConfirm(ReasonDialog):
    """One key confirms an action (``y``), as :mod:`core.services.action_table` asks.

    Keys as in :class:`RollbackConfirm`: ``y`` goes ahead, ``n``/``esc``
    cancel, ``r`` moves into the reason field, where ``enter`` goes ahead
    with the reason and ``esc`` leaves the field.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Confirm", id="yes.yes", tooltip="Go ahead"),
        Binding("n,escape", "cancel", "Cancel", id="yes.no", tooltip="Cancel"),
        Binding("r", "reason", "Reason", id="yes.reason", tooltip="Type why (journalled)"),
    ]

    AUTO_FOCUS = ""  # nothing: keys are commands until `r` (None would focus the field)

    DEFAULT_CSS = """
    YesConfirm {
        align: center middle;
    }
    YesConfirm > Vertical {
        width: 70;
        max-width: 100%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 0 1;
    }
    YesConfirm #keys {
        color: $text-muted;
    }
    """

    def __init__(self, title: str, summary: Text, verb: str) -> None:
        super().__init__()
        self.title_text = title
        self.summary = summary
        self.verb = verb

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield Static(self.summary)
            yield Input(placeholder="reason (optional, press r)", id="reason", max_length=500)
            yield Label(keys_hint(self.verb, typing=False), id="keys", markup=False)
