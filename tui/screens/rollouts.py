"""Rollouts screen: every model x target, live."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from core.cancel import CancelToken
from core.domain import Phase, TargetDetail
from tui import data
from tui.background import DaemonExecutor
from tui.data import Row, WatchUpdate
from tui.guard import guard_text
from tui.screens.base import EmptyState, MrcScreen
from tui.text import ago, literal
from tui.widgets.alerts import AlertsPanel
from tui.widgets.fit_table import Col, FitTable
from tui.widgets.footer import KeyFooter

PHASE_STYLE = {
    Phase.COMPLETE: "green",
    Phase.PROGRESSING: "cyan",
    Phase.PAUSED: "yellow",
    Phase.FAILED: "bold red",
    Phase.DEGRADED: "red",
    Phase.STOPPED: "yellow",
    Phase.UNKNOWN: "dim",
    Phase.DISCONNECTED: "bold red",
}

#: The table's columns. When they do not fit, "kind" goes first, the image is
#: shortened (then dropped), then age and revision: model, target, commit,
#: readiness and state stay whole.
FIT_COLUMNS = (
    Col("model", "model", min_width=8),
    Col("target", "target", min_width=8),
    Col("kind", "kind", priority=6),
    Col("rev", "rev", priority=3),
    Col("image", "image", priority=5, min_width=12, max_width=40),
    Col("commit", "commit", priority=1),
    Col("ready", "ready", priority=2),
    Col("state", "state"),
    Col("age", "age", priority=4),
)
COLUMNS = tuple(column.key for column in FIT_COLUMNS)


AGE_COLUMN = COLUMNS.index("age")


def row_cells(row: Row, now) -> list[Text]:  # type: ignore[no-untyped-def]
    """Return the table cells of one model x target."""
    state = row.state
    if state is None:
        phase = Phase.DISCONNECTED if "reach" in row.error else Phase.UNKNOWN
        return [
            literal(row.model),
            literal(row.target),
            literal(row.kind),
            Text("-"),
            literal(row.error, style="red", max_len=24),
            Text("-"),
            Text("-"),
            Text(phase.value, style=PHASE_STYLE[phase]),
            Text("-"),
        ]
    image = state.image.rsplit("/", 1)[-1]
    return [
        literal(row.model),
        literal(row.target),
        literal(row.kind),
        literal(state.revision if state.revision is not None else "-"),
        literal(image, max_len=60),
        literal(state.commit[:8], style="yellow"),
        Text(f"{state.ready}/{state.desired}"),
        Text(state.phase.value, style=PHASE_STYLE.get(state.phase, "")),
        Text(ago(state.since, now)),
    ]


def detail_text(detail: TargetDetail) -> Text:
    """Return the detail view: state message, pods, conditions, recent events."""
    state = detail.state
    text = Text()
    text.append_text(literal(f"{state.model} on {state.target} ({state.kind})  ", style="bold"))
    text.append(state.phase.value, style=PHASE_STYLE.get(state.phase, ""))
    text.append("\n")
    if state.message:
        text.append_text(literal(state.message))
        text.append("\n")
    text.append("\nPods / processes\n", style="bold underline")
    for pod in detail.pods:
        text.append_text(literal(pod.name))
        text.append_text(
            literal(
                f"  {pod.phase}  ready={'yes' if pod.ready else 'no'}  restarts={pod.restarts}  "
            )
        )
        text.append_text(literal(pod.image, style="dim"))
        text.append("\n")
    if not detail.pods:
        text.append("none\n", style="dim")
    text.append("\nConditions\n", style="bold underline")
    for condition in detail.conditions:
        text.append_text(literal(f"{condition.type}={condition.status} {condition.reason}"))
        if condition.message:
            text.append(": ")
            text.append_text(literal(condition.message, style="dim"))
        text.append("\n")
    text.append("\nRecent events\n", style="bold underline")
    for event in detail.events[-30:]:
        style = "red" if event.kind == "Warning" else ""
        text.append(event.time.strftime("%H:%M:%S "), style="dim")
        text.append_text(literal(f"{event.reason} {event.object}", style=style))
        text.append(" ")
        text.append_text(literal(event.message))
        text.append("\n")
    if not detail.events:
        text.append("none\n", style="dim")
    return text


class TargetDetailScreen(ModalScreen[None]):
    """Pods, conditions and events of one target, refreshed while open."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "Back")]

    DEFAULT_CSS = """
    TargetDetailScreen { background: $background; }
    TargetDetailScreen > VerticalScroll { padding: 0 1; }
    """

    def __init__(self, model: str, target: str) -> None:
        super().__init__()
        self.model = model
        self.target = target

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(f"Loading {self.model}/{self.target}…", id="detail-body", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.load()
        if self.app.live:  # type: ignore[attr-defined]
            self.set_interval(3, self.load)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def load(self) -> None:
        """Fetch the detail in a worker."""
        try:
            detail = self.app.workspace.target(self.model, self.target).detail()  # type: ignore[attr-defined]
            body = detail_text(detail)
        except Exception as error:
            body = Text("Cannot read the target: ", style="bold red") + literal(str(error))
        self.app.call_from_thread(self.query_one("#detail-body", Static).update, body)


class RolloutsScreen(MrcScreen):
    """``3``: revision, image, commit, readiness and state of every target.

    While visible, one background worker follows every target's watch
    (:func:`tui.data.watch_rows`) and only the rows that changed are updated.
    Rows whose watch failed are polled every ``POLL_SECONDS`` instead, and a
    badge says so ("polling: watch failed: <reason>") until their watch
    delivers again; the timer otherwise only refreshes the age column. A
    hidden screen neither watches nor polls.
    """

    AUTO_FOCUS = "#rollouts-table"
    TITLE_TEXT = "3 Rollouts"
    POLL_SECONDS = 3.0
    #: Seconds before a column narrows (a state column is not redrawn twice per rollout).
    NARROW_AFTER = 3.0

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "detail", "Detail", id="rollouts.detail", tooltip="Pods and events"),
        Binding("s", "set_image", "Set image", id="rollouts.set", tooltip="Roll out an image"),
        Binding("p", "pause_resume", "Pause/resume", id="rollouts.pause", tooltip="Pause/resume"),
        Binding("r", "restart", "Restart", id="rollouts.restart", tooltip="Restart pods"),
        Binding("a", "silence_alert", "Silence", id="rollouts.silence", tooltip="Silence an alert"),
        Binding("R", "retrain", "Retrain", id="rollouts.retrain", tooltip="Retrain on recent data"),
    ]

    class States(Message):
        """Fresh rows for the table."""

        def __init__(self, rows: list[Row]) -> None:
            super().__init__()
            self.rows = rows

    class Watched(Message):
        """News from the watch started with ``cancel``."""

        def __init__(self, update: WatchUpdate, cancel: CancelToken) -> None:
            super().__init__()
            self.update = update
            self.cancel = cancel

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, Row] = {}
        #: The age text shown per row, so the timer rewrites only ages that changed.
        self._ages: dict[str, str] = {}
        #: Rows whose watch failed, with the reason: these are polled.
        self._polled: dict[str, str] = {}
        #: The running watch's token (None while hidden) and the thread it runs in.
        self._watch: CancelToken | None = None
        self._watcher = DaemonExecutor("mrc-rollouts-watch")
        #: The row as it was when ``s`` was pressed: the rollout expects that state.
        self._set_image_row: Row | None = None

    def compose_body(self) -> ComposeResult:
        yield EmptyState(id="rollouts-empty")
        yield FitTable(
            FIT_COLUMNS, id="rollouts-table", cursor_type="row", narrow_after=self.NARROW_AFTER
        )
        yield Input(placeholder="image (or commit) to roll out; enter", id="rollouts-image")
        yield Static("", id="rollouts-badge", markup=False)
        yield Static("", id="rollouts-status", markup=False)
        yield AlertsPanel(id="rollouts-alerts")

    @property
    def table(self) -> FitTable:
        return self.query_one("#rollouts-table", FitTable)

    def on_mount(self) -> None:
        self.watch(self.table, "scroll_y", self._scrolled, init=False)

    def _scrolled(self) -> None:
        self.refresh_ages()

    def on_shown(self) -> None:
        pairs = data.target_pairs(self.mrc.workspace)
        empty = self.query_one("#rollouts-empty", EmptyState)
        if not pairs:
            empty.update(
                "No target is configured. Add [[model.target]] tables (kind kubernetes, "
                "docker or local) to the configuration: see examples/mrc.toml."
            )
        empty.display = not pairs
        self.table.display = bool(pairs)
        self._show_badge()
        if pairs:
            self.table.focus()
            self._start_watch(pairs)

    def on_screen_suspend(self) -> None:
        super().on_screen_suspend()
        self._stop_watch()

    def on_unmount(self) -> None:
        self._stop_watch()

    def _start_watch(self, pairs: list[tuple[str, str, str]]) -> None:
        """Follow ``pairs`` in one background thread until the screen is hidden.

        Not a Textual worker: it lives as long as the screen is visible, and
        waiting for the workers to complete (as tests and quitting do) must
        not wait for it. A daemon thread of :class:`DaemonExecutor`, it is
        abandoned, never joined, when the console quits.
        """
        self._stop_watch()
        self._watch = CancelToken()
        self._polled.clear()
        self._watcher.submit(self._follow, pairs, self._watch)

    def _stop_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def _follow(self, pairs: list[tuple[str, str, str]], cancel: CancelToken) -> None:
        """Post the watch's news about ``pairs`` until ``cancel`` is set (watch thread)."""
        for update in data.watch_rows(self.mrc.workspace, pairs, cancel):
            if cancel.cancelled:
                return
            self.post_message(self.Watched(update, cancel))

    def on_rollouts_screen_watched(self, message: Watched) -> None:
        if message.cancel is not self._watch:
            return  # from a watch stopped meanwhile
        update = message.update
        was_polling = bool(self._polled)
        reasons = set(self._polled.values())
        for key in update.up:
            self._polled.pop(key, None)
        self._polled.update(update.down)
        rows = [row for key, row in update.rows.items() if key not in self._polled]
        if rows:
            self.apply_rows(rows)
        if set(self._polled.values()) != reasons:
            self._show_badge()  # the badge names the reasons: unchanged, nothing to redo
        if self._polled and not was_polling:
            self._schedule(0.01)  # poll the rows whose watch failed now

    def _show_badge(self) -> None:
        badge = self.query_one("#rollouts-badge", Static)
        reasons = sorted(set(self._polled.values()))
        if reasons:
            text = f"polling: watch failed: {reasons[0]}"
            if len(reasons) > 1:
                text += f" (and {len(reasons) - 1} other reasons)"
            badge.update(literal(text, style="bold yellow", max_len=200))
        badge.display = bool(reasons)

    def poll(self) -> None:
        if self._polled:
            self.fetch_states(list(self._polled))
            return
        self.refresh_ages()  # the watch keeps the rest fresh
        if self.POLL_SECONDS is not None:
            self._schedule(self.POLL_SECONDS)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def fetch_states(self, keys: list[str]) -> None:
        """Read the targets of ``keys`` in parallel (each call has its own timeout)."""
        workspace = self.mrc.workspace
        wanted = set(keys)
        pairs = [p for p in data.target_pairs(workspace) if f"{p[0]}/{p[1]}" in wanted]
        if not pairs:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(pairs))) as pool:
            rows = list(pool.map(lambda pair: data.read_row(workspace, *pair), pairs))
        self.post_message(self.States(rows))

    def on_rollouts_screen_states(self, message: States) -> None:
        # A row whose watch came back meanwhile keeps the watch's (newer) state.
        self.apply_rows([row for row in message.rows if row.key in self._polled])

    def refresh_ages(self) -> None:
        """Rewrite the age cells, on screen or near it, whose text changed with the clock.

        Rows far from the view keep their last age until they scroll near it
        (scrolling calls this too): with 1,000 targets, every age changing at
        once each minute otherwise cost a redraw of the whole table.
        """
        now = self.mrc.clock()
        table = self.table
        with self.app.batch_update():
            for key in table.keys_near_view():
                row = self.rows.get(key)
                if row is None:
                    continue
                age = ago(row.state.since, now) if row.state is not None else "-"
                if self._ages.get(key) != age:
                    self._ages[key] = age
                    table.update_cell(key, "age", Text(age))

    def apply_rows(self, rows: list[Row]) -> None:
        """Update changed cells only; add new rows; never rebuild the table.

        The status line and the keys follow the selected row: they are
        refreshed only when that row is among ``rows`` or the selection moved.
        """
        table = self.table
        now = self.mrc.clock()
        selected = self._current()
        with self.app.batch_update():
            for row in rows:
                cells = row_cells(row, now)
                self._ages[row.key] = cells[AGE_COLUMN].plain
                old = self.rows.get(row.key)
                if old is None:
                    table.add_row(*cells, key=row.key)
                else:
                    previous = row_cells(old, now)
                    for column, cell, before in zip(COLUMNS, cells, previous, strict=True):
                        if cell != before:
                            table.update_cell(row.key, column, cell)
                self.rows[row.key] = row
        now_selected = self._current()
        if (
            selected is None
            or now_selected is None
            or now_selected.key != selected.key
            or any(row.key == selected.key for row in rows)
        ):
            self._sync_selection()

    def _current(self) -> Row | None:
        table = self.table
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(key) if key else None

    def _sync_selection(self) -> None:
        self.refresh_bindings()  # s/p/r depend on the selected row
        row = self._current()
        status = self.query_one("#rollouts-status", Static)
        if row is None:
            status.update("")
            return
        message = row.state.message if row.state else row.error
        line = literal(f"{row.key}: ")
        line.append_text(literal(message or ""))
        guard = self.mrc.workspace.guard_state(row.model, row.target)
        if guard is not None:
            line.append("\n")
            line.append_text(guard_text(guard))
        status.update(line)

    @on(DataTable.RowHighlighted, "#rollouts-table")
    def highlighted(self) -> None:
        row = self._current()
        if row is not None:
            self.mrc.select_model(row.model, row.target)
        self._sync_selection()

    @on(DataTable.RowSelected, "#rollouts-table")
    def row_selected(self) -> None:
        # The focused table takes `enter` for itself: it is still "detail".
        self.action_detail()

    def action_detail(self) -> None:
        row = self._current()
        if row is not None:
            self.app.push_screen(TargetDetailScreen(row.model, row.target))

    def disabled_reason(self, action: str) -> str | None:
        if action == "silence_alert":
            return self.mrc.silence_refusal() or None
        if action == "retrain":
            return self.mrc.retrain_refusal() or None
        row = self._current()
        if action not in ("set_image", "pause_resume", "restart") or row is None:
            return None
        refusal = self.mrc.refusal(action, row.model, row.target)  # the table's read-only rule
        return refusal or self.mrc.permission_reason(row.model, row.target, action) or None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "silence_alert" and self.mrc.silence_refusal():
            return False  # without Alertmanager, or read-only: removed; pressing it says why
        if action == "retrain":  # shown only where it can run (Drift dims it with the reason)
            return self.mrc.retrain_key() or False
        if action in ("set_image", "pause_resume", "restart"):
            row = self._current()
            if row is None:
                return None
            if self.mrc.refusal(action, row.model, row.target):
                return False  # read-only: the key is removed; pressing it says why
        return super().check_action(action, parameters)

    def action_silence_alert(self) -> None:
        self.mrc.silence_alert(self.query_one(AlertsPanel).selected())

    def action_retrain(self) -> None:
        reason = self.query_one(AlertsPanel).retrain_reason()
        self.mrc.start_retrain(self.mrc.selected_model, reason)

    def action_pause_resume(self) -> None:
        row = self._current()
        if row is None:
            return
        action = "resume" if row.state and row.state.phase is Phase.PAUSED else "pause"
        self.mrc.run_simple(row.model, row.target, action, row.state)

    def action_restart(self) -> None:
        row = self._current()
        if row is not None:
            self.mrc.run_simple(row.model, row.target, "restart", row.state)

    def action_set_image(self) -> None:
        field_ = self.query_one("#rollouts-image", Input)
        row = self._current()
        if row is None:
            return
        self._set_image_row = row
        field_.value = row.state.image if row.state else ""
        field_.display = True
        field_.focus()

    @on(Input.Submitted, "#rollouts-image")
    def image_submitted(self, event: Input.Submitted) -> None:
        event.input.display = False
        row = self._current()
        value = event.value.strip()
        self.table.focus()
        seen = self._set_image_row
        self._set_image_row = None
        if seen is None or row is None or seen.key != row.key:
            seen = row
        if seen is not None and value:
            self.mrc.request_rollout(seen.model, seen.target, value, seen.state)
