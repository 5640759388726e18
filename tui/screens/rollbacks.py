"""Rollbacks screen: revision history per target merged with the audit journal."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from core.domain import JournalEntry, Outcome, Revision, RolloutState
from tui.screens.base import EmptyState, MrcScreen
from tui.screens.confirm import diff_text
from tui.text import literal, short_time
from tui.widgets.fit_table import Col, FitTable
from tui.widgets.footer import KeyFooter

OUTCOME_STYLE = {
    Outcome.DONE: "green",
    Outcome.FAILED: "red",
    Outcome.INTENT: "bold yellow",
    Outcome.UNKNOWN: "bold yellow",
}


#: Revision history columns: the change-cause shrinks last, the image first.
HISTORY_COLUMNS = (
    Col("rev", "rev"),
    Col("live", "live"),
    Col("image", "image", priority=3, min_width=10, max_width=40),
    Col("commit", "commit", priority=1),
    Col("created", "created", priority=2),
    Col("cause", "change-cause", min_width=12),
)
#: Journal columns: who and when give way before what was done and why.
JOURNAL_COLUMNS = (
    Col("when", "when", priority=2),
    Col("who", "who", priority=3, min_width=6, max_width=40),
    Col("action", "action", min_width=8),
    Col("revisions", "from→to"),
    Col("outcome", "outcome"),
    Col("why", "why", min_width=10),
)


def revision_document(revision: Revision) -> str:
    """Return a stable, diffable text form of a revision (image, commit, cause, template)."""
    doc = {
        "revision": revision.number,
        "image": revision.image,
        "commit": revision.commit,
        "change-cause": revision.change_cause,
        **{str(k): v for k, v in revision.extra.items()},
    }
    return json.dumps(doc, indent=2, sort_keys=True, default=str)


def revision_diff(old: Revision, new: Revision) -> str:
    """Return a unified diff between two revisions."""
    return "".join(
        difflib.unified_diff(
            revision_document(old).splitlines(keepends=True),
            revision_document(new).splitlines(keepends=True),
            fromfile=f"revision {old.number}",
            tofile=f"revision {new.number}",
        )
    )


def outcome_text(entry: JournalEntry) -> Text:
    """Return the outcome cell; a missing outcome asks the operator to verify."""
    if entry.outcome_unknown:
        return Text("unknown: verify", style=OUTCOME_STYLE[Outcome.UNKNOWN])
    return Text(entry.outcome.value, style=OUTCOME_STYLE.get(entry.outcome, ""))


@dataclass(frozen=True)
class Snapshot:
    """History, journal and live state of one target."""

    model: str
    target: str
    revisions: list[Revision]
    entries: list[JournalEntry]
    state: RolloutState | None
    error: str = ""


class TextScreen(ModalScreen[None]):
    """A scrollable page of text (diffs, "what was live when")."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "Back")]
    DEFAULT_CSS = """
    TextScreen { background: $background; }
    TextScreen > VerticalScroll { padding: 0 1; }
    """

    def __init__(self, body: Text) -> None:
        super().__init__()
        self.body = body

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self.body)
        yield KeyFooter()


class RollbacksScreen(MrcScreen):
    """``4``: who did what, when and why; roll back to any kept revision."""

    AUTO_FOCUS = "#rollbacks-history"
    TITLE_TEXT = "4 Rollbacks"
    POLL_SECONDS = 5.0

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "rollback_to", "Roll back to", id="rollbacks.to", tooltip="Roll back"),
        Binding("space", "mark", "Mark", id="rollbacks.mark", tooltip="Mark a revision to diff"),
        Binding("D", "diff", "Diff", id="rollbacks.diff", tooltip="Diff marked vs selected"),
        Binding("w", "live_when", "Live when", id="rollbacks.when", tooltip="What was live when"),
        Binding("n", "next_target", "Next target", id="rollbacks.next", tooltip="Next target"),
    ]

    class Loaded(Message):
        """A fresh snapshot of the selected target."""

        def __init__(self, snapshot: Snapshot) -> None:
            super().__init__()
            self.snapshot = snapshot

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: Snapshot | None = None
        self.marked: int | None = None

    def compose_body(self) -> ComposeResult:
        yield EmptyState(id="rollbacks-empty")
        yield Static("", id="rollbacks-title", markup=False)
        yield FitTable(HISTORY_COLUMNS, id="rollbacks-history", cursor_type="row")
        yield FitTable(JOURNAL_COLUMNS, id="rollbacks-journal", cursor_type="row")

    def on_shown(self) -> None:
        empty = self.query_one("#rollbacks-empty", EmptyState)
        has_target = bool(self.mrc.current_target_name())
        if not has_target:
            empty.update(
                "No target is configured for the selected model, so there is no revision "
                "history. Add a [[model.target]] table: see examples/mrc.toml."
            )
        empty.display = not has_target
        self.query_one("#rollbacks-history").focus()

    def poll(self) -> None:
        self.load(self.mrc.selected_model, self.mrc.current_target_name())

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def load(self, model: str, target: str) -> None:
        """Read history, journal and live state of one target."""
        if not model or not target:
            return
        workspace = self.mrc.workspace
        entries = workspace.journal.entries(model=model, target=target, limit=200)
        try:
            handle = workspace.target(model, target)
            revisions = handle.history()
            state: RolloutState | None = handle.status()
            error = ""
        except Exception as exc:
            revisions, state, error = [], None, str(exc)
        self.post_message(self.Loaded(Snapshot(model, target, revisions, entries, state, error)))

    def on_rollbacks_screen_loaded(self, message: Loaded) -> None:
        snap = message.snapshot
        self.snapshot = snap
        title = Text()
        title.append_text(literal(f"{snap.model} / {snap.target}", style="bold"))
        if snap.state is not None:
            title.append_text(literal(f"  live: revision {snap.state.revision}  "))
            title.append_text(literal(snap.state.image, style="dim"))
        if snap.error:
            title.append("  ")
            title.append_text(literal(snap.error, style="red"))
        unknown = [e for e in snap.entries if e.outcome_unknown]
        if unknown:
            title.append(
                f"\n{len(unknown)} action(s) with unknown outcome: the console stopped before "
                "recording it; compare with the live state above",
                style="bold yellow",
            )
        self.query_one("#rollbacks-title", Static).update(title)
        self._fill_history(snap.revisions)
        self._fill_journal(snap.entries)

    def _fill_history(self, revisions: list[Revision]) -> None:
        table = self.query_one("#rollbacks-history", DataTable)
        cursor = table.cursor_row
        table.clear()
        for revision in revisions:
            marker = "●" if revision.current else ("◆" if revision.number == self.marked else "")
            table.add_row(
                literal(revision.number),
                Text(marker, style="green"),
                literal(revision.image.rsplit("/", 1)[-1], max_len=60),
                literal(revision.commit[:8], style="yellow"),
                Text(short_time(revision.created)),
                literal(revision.change_cause, max_len=200),
                key=str(revision.number),
            )
        if revisions:
            table.move_cursor(row=min(cursor, len(revisions) - 1))

    def _fill_journal(self, entries: list[JournalEntry]) -> None:
        table = self.query_one("#rollbacks-journal", DataTable)
        table.clear()
        for entry in entries:
            who = entry.user + (f"@{entry.ssh_client}" if entry.ssh_client else "")
            table.add_row(
                Text(short_time(entry.time)),
                literal(who, max_len=40),
                literal(entry.action),
                literal(f"{entry.from_revision or '-'}→{entry.to_revision or '-'}"),
                outcome_text(entry),
                literal(entry.reason or entry.error, max_len=200),
                key=str(entry.id),
            )

    def selected_revision(self) -> Revision | None:
        """The revision under the history cursor."""
        if self.snapshot is None:
            return None
        table = self.query_one("#rollbacks-history", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        for revision in self.snapshot.revisions:
            if str(revision.number) == key:
                return revision
        return None

    @on(DataTable.RowSelected, "#rollbacks-history")
    def history_selected(self) -> None:
        # The focused table takes `enter` for itself: it is still "roll back to".
        self.action_rollback_to()

    def action_rollback_to(self) -> None:
        revision = self.selected_revision()
        if revision is None or self.snapshot is None:
            return
        if revision.current:
            self.notify(f"revision {revision.number} is already live", severity="warning")
            return
        self.mrc.open_rollback(self.snapshot.model, self.snapshot.target, revision.number)

    def action_mark(self) -> None:
        revision = self.selected_revision()
        if revision is not None and self.snapshot is not None:
            self.marked = revision.number
            self._fill_history(self.snapshot.revisions)
            self.notify(f"marked revision {revision.number}; select another and press D")

    def action_diff(self) -> None:
        selected = self.selected_revision()
        if selected is None or self.snapshot is None:
            return
        base = next((r for r in self.snapshot.revisions if r.number == self.marked), None)
        if base is None:
            base = next((r for r in self.snapshot.revisions if r.current), None)
        if base is None or base.number == selected.number:
            self.notify("mark another revision with space first", severity="warning")
            return
        old, new = sorted((base, selected), key=lambda r: r.number)
        body = diff_text(revision_diff(old, new)) or Text("no difference")
        self.app.push_screen(TextScreen(body))

    def action_live_when(self) -> None:
        if self.snapshot is None:
            return
        text = Text()
        text.append_text(
            literal(f"What was live when: {self.snapshot.model} / {self.snapshot.target}")
        )
        text.append("\n\n")
        done = [e for e in self.snapshot.entries if e.action in ("rollout", "rollback")]
        for entry in reversed(done):
            text.append(short_time(entry.finished_at or entry.time))
            text.append("  ")
            text.append_text(literal(f"revision {entry.to_revision or '?'}"))
            text.append("  ")
            text.append_text(outcome_text(entry))
            text.append("  ")
            text.append_text(literal(f"{entry.action} by {entry.user}: {entry.reason}"))
            text.append("\n")
        if not done:
            text.append("no rollout or rollback was journalled for this target\n", style="dim")
        self.app.push_screen(TextScreen(text))

    def action_next_target(self) -> None:
        model = self.mrc.selected_model
        if not model:
            return
        names = [t.name for t in self.mrc.workspace.config.model(model).targets]
        if len(names) < 2:
            self.notify(f"{model} has no other target", severity="warning", markup=False)
            return
        current = self.mrc.current_target_name()
        index = names.index(current) if current in names else -1
        self.mrc.select_model(model, names[(index + 1) % len(names)])
        self.poll()
