"""A commit's message, per-file stat and diff (``enter`` on the Commits screen)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from core.domain import Commit, CommitDetail
from tui.screens.confirm import diff_text
from tui.text import literal, short_time
from tui.widgets.footer import KeyFooter


def detail_text(detail: CommitDetail) -> Text:
    """Return the header, message and stat of a commit as literal text."""
    commit = detail.commit
    text = Text()
    text.append(f"commit {commit.sha}\n", style="yellow")
    text.append("Author: ")
    text.append_text(literal(f"{commit.author} <{commit.email}>"))
    text.append(f"\nDate:   {short_time(commit.date)}\n")
    if commit.tags:
        text.append("Tags:   ")
        text.append_text(literal(", ".join(commit.tags), style="bold yellow"))
        text.append("\n")
    text.append("\n")
    for line in detail.message.splitlines()[:200]:
        text.append("    ")
        text.append_text(literal(line))
        text.append("\n")
    text.append("\n")
    for stat in detail.stats[:500]:
        text.append(f" {stat.insertions:>6}+ {stat.deletions:>6}-  ", style="dim")
        text.append_text(literal(stat.path))
        text.append("\n")
    return text


class CommitDiffScreen(ModalScreen[None]):
    """Full-screen view of one commit; ``esc`` goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Back", id="diff.back"),
    ]

    DEFAULT_CSS = """
    CommitDiffScreen {
        background: $background;
    }
    CommitDiffScreen > VerticalScroll {
        padding: 0 1;
    }
    """

    def __init__(self, model: str, commit: Commit) -> None:
        super().__init__()
        self.model = model
        self.commit = commit

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="diff-scroll"):
            yield Static(Text(f"Loading {self.commit.short}…"), id="diff-body")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#diff-scroll").focus()
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def load(self) -> None:
        """Read the commit detail in a worker and show it."""
        try:
            repo = self.app.workspace.repository(self.model)  # type: ignore[attr-defined]
            detail = repo.detail(self.commit.sha)
        except Exception as error:
            body = Text("Cannot read the commit: ", style="bold red") + literal(str(error))
        else:
            body = detail_text(detail) + diff_text(detail.diff)
            if detail.diff_truncated:
                body.append("\n… diff truncated", style="yellow")
        self.app.call_from_thread(self.query_one("#diff-body", Static).update, body)
