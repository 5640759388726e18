"""Commits screen: the paged git log with test and deployment badges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input, Static

from core.domain import Commit, RunStatus, TestRun
from tui import data
from tui.screens.base import EmptyState, MrcScreen
from tui.text import literal
from tui.widgets.vtable import Column, VirtualTable

PAGE_SIZE = 200
MAX_PAGE_SIZE = 5000

_STATUS_BADGE = {
    RunStatus.PASSED: ("✓", "green"),
    RunStatus.FAILED: ("✗", "red"),
    RunStatus.ERROR: ("!", "red"),
    RunStatus.TIMEOUT: ("⏱", "red"),
    RunStatus.CANCELLED: ("-", "yellow"),
    RunStatus.RUNNING: ("…", "cyan"),
    RunStatus.QUEUED: ("…", "cyan"),
}


@dataclass
class Badges:
    """What the Commits screen knows about commits beyond git: tests and deployments."""

    tests: dict[str, TestRun] = field(default_factory=dict)  # sha -> last run
    deployed: dict[str, list[str]] = field(default_factory=dict)  # sha -> target names


def test_badge(run: TestRun | None) -> Text:
    """Return the compact test badge of a commit, e.g. ``✓ acc 0.91``."""
    if run is None:
        return Text("")
    symbol, style = _STATUS_BADGE.get(run.status, ("?", ""))
    badge = Text(symbol, style=style)
    if run.metrics:
        name, value = next(iter(sorted(run.metrics.items())))
        badge.append(f" {name[:3]} {value:.2f}", style=style)
    return badge


class CommitsScreen(MrcScreen):
    """``1``: what changed, does it pass, where is each version running."""

    AUTO_FOCUS = "#commits-table"
    TITLE_TEXT = "1 Commits"
    POLL_SECONDS = 5.0

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Diff", id="commits.diff", tooltip="Show the commit's diff"),
        Binding("t", "run_tests", "Test", id="commits.test", tooltip="Run the tests here"),
        Binding("b", "build", "Build", id="commits.build", tooltip="Build the image"),
        Binding("d", "release", "Release", id="commits.release", tooltip="Release this commit"),
        Binding("slash", "search", "Search", id="commits.search", tooltip="Search sha/text"),
        Binding("escape", "clear_search", "Clear", id="commits.clear", show=False),
    ]

    class Page(Message):
        """A page of commits arrived (``append`` for the next page of the same list)."""

        def __init__(self, commits: list[Commit], append: bool, complete: bool) -> None:
            super().__init__()
            self.commits = commits
            self.append = append
            self.complete = complete

    class Failed(Message):
        """Loading the log failed; ``error`` says why."""

        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    class BadgesLoaded(Message):
        """Fresh test/deployment badges."""

        def __init__(self, badges: Badges) -> None:
            super().__init__()
            self.badges = badges

    def __init__(self) -> None:
        super().__init__()
        self.badges = Badges()
        self.search_text = ""
        self._loaded_model: str | None = None
        self._cursor: Any = None  # core.git.LogCursor of the list on screen

    def compose_body(self) -> ComposeResult:
        yield EmptyState(id="commits-empty")
        yield Input(placeholder="search sha, subject or author; enter", id="commits-search")
        yield VirtualTable(
            [
                Column("sha", 8),
                Column("date", 10),
                Column("author", 12),
                Column("tests", 10),
                Column("deployed", 10),
                Column("subject"),
            ],
            self._cells,
            id="commits-table",
        )
        yield Static("", id="commits-hints", markup=False)

    def _cells(self, commit: Commit) -> list[Text]:
        deployed = self.badges.deployed.get(commit.sha, [])
        subject = literal(commit.subject, max_len=300)
        if commit.tags:
            subject = Text.assemble(
                literal(" ".join(commit.tags), style="bold yellow"), " ", subject
            )
        return [
            Text(commit.short, style="yellow"),
            Text(commit.date.strftime("%Y-%m-%d")),
            literal(commit.author, max_len=40),
            test_badge(self.badges.tests.get(commit.sha)),
            literal(",".join(deployed), style="bold magenta"),
            subject,
        ]

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#commits-table", VirtualTable)

    def current_commit(self) -> Commit | None:
        """The commit under the cursor."""
        row = self.table.current
        return row if isinstance(row, Commit) else None

    # -- loading -------------------------------------------------------------

    def on_shown(self) -> None:
        model = self.mrc.selected_model
        empty = self.query_one("#commits-empty", EmptyState)
        if not model:
            empty.update(
                "No model is configured, so there is no repository to show.\n"
                "Create mrc.toml (see examples/mrc.toml) with a [[model]] table whose "
                "`repo` is a git clone, or run `mrc demo`."
            )
            empty.display = True
            self.table.display = False
            return
        hints = [f"{key}: {reason}" for key, reason in self._disabled_reasons()]
        hint = self.query_one("#commits-hints", Static)
        hint.update(" · ".join(hints))
        hint.display = bool(hints)
        if self._loaded_model != model:
            self._loaded_model = model
            empty.update(f"Loading the history of {model}…")
            empty.display = True
            self.load_page(model, 0, self.search_text)
        self.table.focus()

    @work(thread=True, exclusive=True, group="git", exit_on_error=False)
    def load_page(self, model: str, skip: int, search: str) -> None:
        """Fetch one page of the log in a worker and post it as :class:`Page`.

        The first page is one bounded ``git log`` (as fast as git itself);
        scrolling further opens a streaming cursor after it whose pages grow,
        so reaching the end of a long history never re-walks it.
        """
        try:
            if skip == 0:
                if self._cursor is not None:
                    self._cursor.close()
                    self._cursor = None
                repo = self.mrc.workspace.repository(model)
                commits = repo.page(limit=PAGE_SIZE, search=search or None)
                size = PAGE_SIZE
            else:
                if self._cursor is None:
                    repo = self.mrc.workspace.repository(model)
                    self._cursor = repo.cursor(search=search or None, skip=skip)
                size = min(MAX_PAGE_SIZE, max(PAGE_SIZE, skip))
                commits = self._cursor.next_page(size)
        except Exception as error:
            self.post_message(self.Failed(str(error)))
            return
        self.post_message(self.Page(commits, append=skip > 0, complete=len(commits) < size))

    def poll(self) -> None:
        self.load_badges(self.mrc.selected_model)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def load_badges(self, model: str) -> None:
        """Read the last test run per commit from the journal and where each commit runs."""
        if not model:
            return
        badges = Badges()
        workspace = self.mrc.workspace
        for run in reversed(workspace.journal.test_runs(model=model, limit=1000)):
            badges.tests[run.commit] = run
        badges.deployed = data.deployed_commits(workspace, model)
        self.post_message(self.BadgesLoaded(badges))

    def on_commits_screen_page(self, message: Page) -> None:
        empty = self.query_one("#commits-empty", EmptyState)
        table = self.table
        if message.append:
            table.append_rows(message.commits, complete=message.complete)
        else:
            table.set_rows(message.commits, complete=message.complete)
        if not table.rows:
            empty.update(
                f"No commit matches {self.search_text!r}."
                if self.search_text
                else "The repository has no commits yet."
            )
            empty.display = True
        else:
            empty.display = False
        table.display = True

    def on_commits_screen_failed(self, message: Failed) -> None:
        empty = self.query_one("#commits-empty", EmptyState)
        empty.update(
            Text("Cannot read the repository: ", style="bold red") + literal(message.error)
        )
        empty.display = True
        self.table.display = False
        self._loaded_model = None

    def on_commits_screen_badges_loaded(self, message: BadgesLoaded) -> None:
        self.badges = message.badges
        self.table.refresh_rows()

    @on(VirtualTable.NearEnd, "#commits-table")
    def next_page(self) -> None:
        if not self.mrc.selected_model or not self.table.rows:
            return
        self.load_page(self.mrc.selected_model, len(self.table.rows), self.search_text)

    @on(VirtualTable.Selected, "#commits-table")
    def selected(self) -> None:
        self.action_open()

    # -- actions -------------------------------------------------------------

    def action_open(self) -> None:
        commit = self.current_commit()
        if commit is None:
            return
        from tui.screens.diff import CommitDiffScreen

        self.app.push_screen(CommitDiffScreen(self.mrc.selected_model, commit))

    def action_search(self) -> None:
        field_ = self.query_one("#commits-search", Input)
        field_.display = True
        field_.focus()

    def action_clear_search(self) -> None:
        field_ = self.query_one("#commits-search", Input)
        field_.value = ""
        field_.display = False
        if self.search_text:
            self.search_text = ""
            self.load_page(self.mrc.selected_model, 0, "")
        self.table.focus()

    @on(Input.Submitted, "#commits-search")
    def search_submitted(self, event: Input.Submitted) -> None:
        self.search_text = event.value.strip()
        self.load_page(self.mrc.selected_model, 0, self.search_text)
        self.table.focus()

    def _disabled_reasons(self) -> list[tuple[str, str]]:
        """(key, why) for the keys of this screen that cannot be used now."""
        reasons = []
        for key, action in (("b", "build"), ("d", "release")):
            reason = self.mrc.can(action)
            if reason is not None and not self.mrc.read_only:
                reasons.append((key, reason))
        return reasons

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("run_tests", "build", "release") and self.mrc.read_only:
            return False
        if action in ("build", "release"):
            return True if self.mrc.can(action) is None else None
        return True

    def action_run_tests(self) -> None:
        commit = self.current_commit()
        if commit is not None:
            self.mrc.start_tests(self.mrc.selected_model, commit.sha)

    def action_build(self) -> None:
        reason = self.mrc.can("build")
        commit = self.current_commit()
        if reason is not None:
            self.notify(reason, severity="warning", markup=False)
        elif commit is not None:
            self.mrc.start_build(self.mrc.selected_model, commit.sha)

    def action_release(self) -> None:
        reason = self.mrc.can("release")
        commit = self.current_commit()
        if reason is not None:
            self.notify(reason, severity="warning", markup=False)
        elif commit is not None:
            self.mrc.start_release(self.mrc.selected_model, commit.sha)
