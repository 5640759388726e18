"""Commits screen: the paged git log with test and deployment badges.

Retrained commits (the tips of ``retrain/`` branches, which are not on the
checked-out branch) are listed first, newest first, marked ``retrained``, so
``t``/``d`` test and release them like any other commit; then the history of
HEAD. A finished retrain bumps :attr:`MrcApp.history_version` and the list is
read again when the screen is next shown.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input

from core.domain import Commit, RunStatus, TestRun
from tui import data
from tui.screens.base import EmptyState, MrcScreen
from tui.text import literal
from tui.widgets.vtable import Column, VirtualTable

if TYPE_CHECKING:
    from core.git import Repository

PAGE_SIZE = 200
#: Retrained commits listed above the history at most (newest first).
MAX_RETRAINED = 20
#: The badge of a commit on a ``retrain/`` branch.
RETRAINED_BADGE = "retrained"
#: The largest page read in one go (well under the rows the table keeps around its screen).
MAX_PAGE_SIZE = 1000
#: CPU priority (nice) of the walk that reads the oldest commits ahead of ``end``.
TAIL_NICE = 10

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


def is_retrained(commit: Commit) -> bool:
    """True when a ``retrain/`` branch (local or a remote's) points at ``commit``."""
    from core.retrain.base import BRANCH_PREFIX

    return any(
        branch.startswith(BRANCH_PREFIX) or f"/{BRANCH_PREFIX}" in branch
        for branch in commit.branches
    )


def retrained_tips(repo: Repository) -> list[Commit]:
    """Return the commits ``retrain/`` branches (local or remote) point at, newest first.

    Each commit once. Raises what reading the repository raises.
    """
    from core.retrain.base import BRANCH_PREFIX

    shas: list[str] = []
    for ref in repo.branches():
        name = ref.name if ref.kind == "branch" else ref.name.partition("/")[2]
        if name.startswith(BRANCH_PREFIX) and ref.sha not in shas:
            shas.append(ref.sha)
    tips = [commit for sha in shas for commit in repo.page(start=sha, limit=1)]
    tips.sort(key=lambda commit: commit.date, reverse=True)
    return tips


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
        """Commits read from the log, to place at row ``start`` of the table.

        ``reset``: they replace the list (first page of a new list).
        ``complete``: nothing comes after them. ``search``: the list is
        filtered by a search. ``pinned``: how many of them (first) are
        retrained commits listed above the history (first page only).
        """

        def __init__(
            self,
            generation: int,
            commits: list[Commit],
            start: int,
            *,
            reset: bool = False,
            complete: bool = False,
            search: bool = False,
            pinned: int = 0,
        ) -> None:
            super().__init__()
            self.generation = generation
            self.commits = commits
            self.start = start
            self.reset = reset
            self.complete = complete
            self.search = search
            self.pinned = pinned

    class Failed(Message):
        """Loading the log failed; ``error`` says why."""

        def __init__(self, generation: int, error: str) -> None:
            super().__init__()
            self.generation = generation
            self.error = error

    class Tail(Message):
        """The oldest commits of the history of ``key`` (model, newest sha) and its length.

        ``error`` is set (and ``commits`` empty) when reading them failed.
        """

        def __init__(
            self, key: tuple[str, str], total: int, commits: list[Commit], error: str = ""
        ) -> None:
            super().__init__()
            self.key = key
            self.total = total
            self.commits = commits
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
        self._loaded_version = -1  # MrcApp.history_version of the list on screen
        self._pinned: list[Commit] = []  # retrained commits above the history (rows 0..)
        self._cursor: Any = None  # core.git.LogCursor of the list on screen
        self._cursor_at = 0  # the commit of HEAD's history the streaming cursor reads next
        self._generation = 0  # bumped when the list is reloaded: older pages are dropped
        self._loading = False  # one page at a time; what keys ask meanwhile waits for it
        self._want_last = False  # `end` was pressed: count and read the last page
        self._head: tuple[str, str] | None = None  # (model, newest sha) of the list on screen
        self._tail: dict[tuple[str, str], tuple[int, list[Commit]]] = {}  # read ahead for `end`
        self._tail_reading: tuple[str, str] | None = None

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

    def _cells(self, commit: Commit) -> list[Text]:
        deployed = self.badges.deployed.get(commit.sha, [])
        subject = literal(commit.subject, max_len=300)
        if commit.tags:
            subject = Text.assemble(
                literal(" ".join(commit.tags), style="bold yellow"), " ", subject
            )
        if is_retrained(commit):
            subject = Text.assemble((RETRAINED_BADGE, "bold cyan"), " ", subject)
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
        version = self.mrc.history_version
        if self._loaded_model != model or self._loaded_version != version:
            self._loaded_model = model
            self._loaded_version = version
            empty.update(f"Loading the history of {model}…")
            empty.display = True
            self.load_page(model, 0, self.search_text)
        self.table.focus()

    def load_page(self, model: str, skip: int, search: str) -> None:
        """Load the list from its newest commit (``skip`` 0), or what the cursor needs next.

        Reloading drops pages still arriving for the previous list. Other
        requests are coalesced: one page is read at a time and, when it
        arrives, the next one the cursor needs (if any) is read.
        """
        if skip == 0:
            self._generation += 1
            self._loading = True
            self._want_last = False
            self._fetch(model, self._generation, "first", 0, PAGE_SIZE, search)
        else:
            self._request()

    def _request(self) -> None:
        """Start reading the page the cursor needs now, unless one is being read."""
        model = self.mrc.selected_model
        table = self.table
        if self._loading or not model or not table.rows:
            return
        search = self.search_text
        cursor = table.cursor
        pinned = len(self._pinned)
        kind, start, size = "", 0, PAGE_SIZE
        if self._want_last and not table.complete and not search:
            self._read_tail(model)  # lands on the last row when the tail is there
            return
        if self._want_last and not table.complete:
            kind = "next"  # a search cannot be counted: read on to its end
            start = table.loaded_prefix()
            size = min(MAX_PAGE_SIZE, max(PAGE_SIZE, start))
        elif table.rows[cursor] is None:
            if cursor < pinned:  # scrolled back up to the retrained commits: place them again
                table.put_rows(0, self._pinned)
                if table.rows[cursor] is not None:
                    return
            if self._from_tail(cursor):
                return
            first = cursor
            while first > max(pinned, cursor - PAGE_SIZE) and table.rows[first - 1] is None:
                first -= 1
            end = cursor
            limit = min(len(table.rows), cursor + PAGE_SIZE)
            while end < limit and table.rows[end] is None:
                end += 1
            start = max(first, pinned, min(cursor - PAGE_SIZE // 2, end - PAGE_SIZE))
            size = min(PAGE_SIZE, end - start)
            streaming = start - pinned == self._cursor_at and self._cursor is not None
            kind = "next" if streaming else "skip"
        elif not table.complete and cursor >= len(table.rows) - max(PAGE_SIZE // 4, 1):
            kind = "next"
            start = len(table.rows)
            size = min(MAX_PAGE_SIZE, max(PAGE_SIZE, start))
        if kind:
            self._loading = True
            self._fetch(model, self._generation, kind, start, size, search)

    @work(thread=True, group="git", exit_on_error=False)
    def _fetch(
        self, model: str, generation: int, kind: str, start: int, size: int, search: str
    ) -> None:
        """Read commits in a worker and post them as :class:`Page` (or :class:`Failed`).

        ``first``: one bounded ``git log`` of the newest commits (as fast as
        git itself). ``next``: the streaming cursor after the loaded rows,
        so scrolling to the end of a long history never re-walks it.
        ``skip``: ``size`` commits from row ``start``. The last page is read
        by :meth:`_read_tail`. ``start`` is a row of the table: the
        retrained commits listed first (``first`` without a search reads
        them) come before the history's first commit.
        """
        pinned: list[Commit] = []
        skip = max(0, start - len(self._pinned))  # rows -> commits of HEAD's history
        try:
            repo = self.mrc.workspace.repository(model)
            if kind == "first":
                if self._cursor is not None:
                    self._cursor.close()
                    self._cursor = None
                if search:
                    commits = repo.page(limit=size, search=search)
                else:  # the retrained tips are looked up while git log runs
                    with ThreadPoolExecutor(max_workers=1) as pool:
                        tips = pool.submit(retrained_tips, repo)
                        commits = repo.page(limit=size)
                        shown = {c.sha for c in commits}
                        pinned = [c for c in tips.result() if c.sha not in shown]
                        pinned = pinned[:MAX_RETRAINED]
            elif kind == "next":
                if self._cursor is None or self._cursor_at != skip:
                    if self._cursor is not None:
                        self._cursor.close()
                    self._cursor = repo.cursor(search=search or None, skip=skip)
                commits = self._cursor.next_page(size)
                self._cursor_at = skip + len(commits)
            else:
                commits = repo.page(limit=size, skip=skip, search=search or None)
        except Exception as error:
            self.post_message(self.Failed(generation, str(error)))
            return
        self.post_message(
            self.Page(
                generation,
                pinned + commits,
                start,
                reset=kind == "first",
                complete=kind in ("first", "next") and len(commits) < size,
                search=bool(search),
                pinned=len(pinned),
            )
        )

    def _read_tail(self, model: str) -> None:
        """Make the oldest commits of the list on screen available to ``end``.

        Applies them at once when they were read ahead; otherwise starts one
        walk of the history (unless it is running) whose :class:`Tail`
        applies them if ``end`` is still wanted when it arrives.
        """
        key = self._head
        if key is None or key[0] != model:
            return
        if key in self._tail:
            self._apply_tail(key)
        else:
            self._start_tail(key, ahead=False)

    def _start_tail(self, key: tuple[str, str], ahead: bool = True) -> None:
        """Start reading the tail of ``key`` unless it is read or being read.

        ``ahead``: nobody waits for it yet, so the walk runs at low CPU priority.
        """
        if key not in self._tail and self._tail_reading != key:
            self._tail_reading = key
            self._tail_worker(key, TAIL_NICE if ahead else 0)

    @work(thread=True, group="git-tail", exit_on_error=False)
    def _tail_worker(self, key: tuple[str, str], nice: int) -> None:
        """Count the history of ``key`` and read its oldest page; post a :class:`Tail`."""
        try:
            repo = self.mrc.workspace.repository(key[0])
            total, commits = repo.tail(PAGE_SIZE, start=key[1], nice=nice)
        except Exception as error:
            self.post_message(self.Tail(key, 0, [], str(error)))
            return
        self.post_message(self.Tail(key, total, commits))

    def _apply_tail(self, key: tuple[str, str]) -> None:
        """Place the tail read for ``key`` at the end of the table; declare the total."""
        total, commits = self._tail[key]
        total += len(self._pinned)
        self._want_last = False
        table = self.table
        table.put_rows(total - len(commits), commits)
        table.set_total(total)

    def _from_tail(self, index: int) -> bool:
        """Place the tail rows again if row ``index`` is one of them; return whether it was."""
        if self._head is None or self._head not in self._tail or self.search_text:
            return False
        total, commits = self._tail[self._head]
        total += len(self._pinned)
        if total != len(self.table.rows) or index < total - len(commits):
            return False
        self.table.put_rows(total - len(commits), commits)
        return True

    def on_commits_screen_tail(self, message: Tail) -> None:
        if self._tail_reading == message.key:
            self._tail_reading = None
        if message.error:
            if self._want_last and message.key == self._head:
                self.on_commits_screen_failed(self.Failed(self._generation, message.error))
            return
        self._tail = {message.key: (message.total, message.commits)}
        if self._want_last and message.key == self._head and not self.search_text:
            self._apply_tail(message.key)
            self._request()

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
        if message.generation != self._generation:
            return  # a page of a list that has been reloaded since
        self._loading = False
        empty = self.query_one("#commits-empty", EmptyState)
        table = self.table
        if message.reset:
            self._pinned = message.commits[: message.pinned]
            table.set_rows(message.commits, complete=message.complete)
            history = message.commits[message.pinned :]
            if history and not message.search:
                self._head = (self.mrc.selected_model, history[0].sha)
                if not message.complete and self._head not in self._tail:
                    # Read the oldest page ahead (niced), once per history, for `end`.
                    self.call_after_refresh(self._start_tail, self._head)
        elif message.start == table.loaded_prefix() and not table.complete:
            table.append_rows(message.commits, complete=message.complete)
            if table.complete:
                self._want_last = False
        else:
            table.put_rows(message.start, message.commits)
        if not table.rows:
            empty.update(
                literal(f"No commit matches {self.search_text!r}.")
                if self.search_text
                else "The repository has no commits yet."
            )
            empty.display = True
        else:
            empty.display = False
        table.display = True
        self._request()

    def on_commits_screen_failed(self, message: Failed) -> None:
        if message.generation != self._generation:
            return
        self._loading = False
        self._want_last = False
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
    @on(VirtualTable.Wanted, "#commits-table")
    def next_page(self) -> None:
        self._request()

    @on(VirtualTable.WantLast, "#commits-table")
    def last_page(self) -> None:
        self._want_last = True
        self._request()

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

    def disabled_reason(self, action: str) -> str | None:
        if action in ("run_tests", "build", "release"):
            return self.mrc.can(action)
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        mrc = self.mrc
        if mrc.refusal(action, mrc.selected_model, mrc.current_target_name()):
            return False  # read-only: the key is removed; pressing it says why
        return super().check_action(action, parameters)

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
