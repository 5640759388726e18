"""Progress view of a build, a release or a retrain: its steps, layers and log, live."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Log, ProgressBar, Static

from core.domain import Progress
from core.sanitize import clean_line
from tui.runs import LiveOperation
from tui.text import literal
from tui.widgets.footer import KeyFooter

LEVEL_STYLE = {"info": "", "warning": "yellow", "error": "bold red"}


def elapsed_text(op: LiveOperation, now: float | None = None) -> str:
    """Return how long ``op`` has run (``1:05``), "" when it has not started in a worker."""
    if op.started is None:
        return ""
    end = op.ended if op.ended is not None else (time.monotonic() if now is None else now)
    seconds = max(0, int(end - op.started))
    return f"{seconds // 60}:{seconds % 60:02d}"


def steps_text(op: LiveOperation) -> Text:
    """Return one line per step: a mark, the step, its message and fraction."""
    text = Text()
    title = f"{op.kind} of {op.model}" + (f" at {op.commit[:8]}" if op.commit else "")
    text.append_text(literal(title, style="bold"))
    state = "failed" if op.error else ("done" if op.finished else "running")
    text.append(f"  {state}", style={"failed": "bold red", "done": "green"}.get(state, "cyan"))
    elapsed = elapsed_text(op)
    if elapsed:
        text.append(f"  {elapsed}", style="dim")
    text.append("\n")
    steps: list[Progress] = list(op.steps)
    for index, step in enumerate(steps):
        last = index == len(steps) - 1
        mark = "✓"
        if step.level == "error":
            mark = "✗"
        elif last and not op.finished:
            mark = "▶"
        text.append(f" {mark} ", style=LEVEL_STYLE.get(step.level, "") or "green")
        text.append_text(literal(f"{step.step:<9}", style="bold"))
        if step.fraction is not None:
            text.append(f" {step.fraction * 100:5.1f}%")
        if step.message:
            text.append("  ")
            text.append_text(literal(step.message, style=LEVEL_STYLE.get(step.level, "")))
        if step.detail:
            text.append("  ")
            text.append_text(literal(step.detail, style="dim", max_len=40))
        text.append("\n")
    if op.error:
        text.append_text(literal(op.error, style="bold red", max_len=1000))
    return text


class OperationScreen(ModalScreen[None]):
    """Follows one :class:`LiveOperation`; ``esc`` hides it (it keeps running), ``x`` cancels.

    Shows its steps (with the time it has run), a progress bar and its output.

    A panel, not a dialog: the console's global keys (``1``…``5``, ``u``,
    ``m``, ``:``, ``?``) work here too; a screen key hides the panel first.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,q",
            "dismiss",
            "Hide",
            id="progress.hide",
            tooltip="Hide the progress (the operation keeps running)",
        ),
        Binding("x", "cancel_op", "Cancel", id="progress.cancel", tooltip="Cancel the operation"),
    ]

    #: The log takes the focus: arrows and page keys scroll it at once.
    AUTO_FOCUS = "#op-log"

    DEFAULT_CSS = """
    OperationScreen { background: $background; }
    OperationScreen #op-steps { height: auto; max-height: 12; padding: 0 1; }
    OperationScreen ProgressBar { padding: 0 1; }
    OperationScreen Log { height: 1fr; border-top: solid $panel; }
    """

    def __init__(self, op: LiveOperation, *, live: bool = True) -> None:
        super().__init__()
        self.op = op
        self.live = live
        self._seen = 0

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(steps_text(self.op), id="op-steps")
            yield ProgressBar(total=100, show_eta=False, id="op-bar")
            yield Log(id="op-log", max_lines=20_000)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.update_view()
        if self.live:
            self.set_interval(0.25, self.update_view)

    def update_view(self) -> None:
        """Redraw the steps and append new log lines."""
        self.query_one("#op-steps", Static).update(steps_text(self.op))
        steps = list(self.op.steps)
        fraction = steps[-1].fraction if steps else None
        bar = self.query_one("#op-bar", ProgressBar)
        if self.op.finished:
            bar.update(progress=100)
        elif fraction is not None:
            bar.update(progress=fraction * 100)
        lines, self._seen = self.op.since(self._seen)
        if lines:
            self.query_one("#op-log", Log).write_lines([clean_line(t) for t, _ in lines])

    def action_cancel_op(self) -> None:
        if self.op.finished:
            self.notify("it has already finished")
            return
        self.op.cancel.cancel()
        self.notify("cancelling…")
