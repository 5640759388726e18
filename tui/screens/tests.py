"""Tests screen: recorded test runs, live output of a running one, results."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Log, Static

from core.domain import RunStatus, TestRun
from core.sanitize import clean_line
from tui.screens.base import EmptyState, MrcScreen
from tui.text import literal, short_time
from tui.widgets.fit_table import Col, FitTable
from tui.widgets.footer import KeyFooter

_STATUS_STYLE = {
    RunStatus.PASSED: "green",
    RunStatus.FAILED: "red",
    RunStatus.ERROR: "red",
    RunStatus.TIMEOUT: "red",
    RunStatus.CANCELLED: "yellow",
    RunStatus.RUNNING: "cyan",
    RunStatus.QUEUED: "cyan",
}

LOG_TAIL_BYTES = 2_000_000

#: The table's columns; at 80 columns "started" and then "took" give way to the metrics.
COLUMNS = (
    Col("id", "id"),
    Col("commit", "commit"),
    Col("status", "status"),
    Col("started", "started", priority=3),
    Col("took", "took", priority=2),
    Col("counts", "counts", priority=1),
    Col("metrics", "metrics", min_width=12, max_width=60),
)


def run_cells(run: TestRun) -> list[Text]:
    """Return the table cells of one run."""
    duration = f"{run.duration:.1f}s" if run.duration is not None else "-"
    counts = f"{run.passed}✓ {run.failed}✗ {run.errors}! {run.skipped}s"
    metrics = " ".join(f"{k}={v:.3g}" for k, v in sorted(run.metrics.items()))
    return [
        Text(str(run.id or "-")),
        Text(run.commit[:8], style="yellow"),
        Text(run.status.value, style=_STATUS_STYLE.get(run.status, "")),
        Text(short_time(run.started_at)),
        Text(duration),
        Text(counts),
        literal(metrics, max_len=60),
    ]


def results_text(run: TestRun) -> Text:
    """Return the summary and each failure's message of a finished run."""
    text = Text()
    text.append(f"run {run.id} of {run.model} at {run.commit[:8]}: ", style="bold")
    text.append(run.status.value, style=_STATUS_STYLE.get(run.status, ""))
    text.append(
        f"\npassed {run.passed}  failed {run.failed}  errors {run.errors}  skipped {run.skipped}\n"
    )
    if run.message:
        text.append_text(literal(run.message, style="yellow"))
        text.append("\n")
    for name, value in sorted(run.metrics.items()):
        text.append(f"{name} = {value:.4g}\n", style="cyan")
    for failure in run.failures:
        text.append("\n")
        text.append_text(literal(f"{failure.kind}: {failure.name}", style="bold red"))
        text.append("\n")
        for line in (failure.message or failure.details).splitlines()[:40]:
            text.append("  ")
            text.append_text(literal(line))
            text.append("\n")
    if not run.failures and run.status is RunStatus.PASSED:
        text.append("\nall tests passed\n", style="green")
    return text


class ResultsScreen(ModalScreen[None]):
    """The results of one run: counts, metrics, each failure's message."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "Back")]

    DEFAULT_CSS = """
    ResultsScreen { background: $background; }
    ResultsScreen > VerticalScroll { padding: 0 1; }
    """

    def __init__(self, run: TestRun) -> None:
        super().__init__()
        self.run = run

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(results_text(self.run))
        yield KeyFooter()


class TestsScreen(MrcScreen):
    """``2``: runs of the model's test suite, live output, results."""

    AUTO_FOCUS = "#tests-table"
    TITLE_TEXT = "2 Tests"
    POLL_SECONDS = 2.0

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "results", "Results", id="tests.results", tooltip="Failures and metrics"),
        Binding("x", "cancel_run", "Cancel", id="tests.cancel", tooltip="Cancel the running run"),
        Binding("t", "rerun", "Rerun", id="tests.rerun", tooltip="Run the tests again"),
        Binding("f", "follow", "Follow", id="tests.follow", tooltip="Follow the running output"),
    ]

    class Runs(Message):
        """Runs read from the journal."""

        def __init__(self, runs: list[TestRun]) -> None:
            super().__init__()
            self.runs = runs

    class Output(Message):
        """The stored output of a finished run."""

        def __init__(self, run_id: int, lines: list[str]) -> None:
            super().__init__()
            self.run_id = run_id
            self.lines = lines

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, TestRun] = {}
        self.shown_key: str | None = None  # which run's output the log shows
        self._seen = 0
        self.follow = True

    def compose_body(self) -> ComposeResult:
        yield EmptyState(id="tests-empty")
        yield FitTable(COLUMNS, id="tests-table", cursor_type="row", zebra_stripes=True)
        yield Log(id="tests-log", max_lines=100_000, auto_scroll=True)

    def on_mount(self) -> None:
        super().on_mount()
        if self.mrc.live:
            self.set_interval(0.2, self.flush_live_output)

    @property
    def table(self) -> FitTable:
        return self.query_one("#tests-table", FitTable)

    def on_shown(self) -> None:
        empty = self.query_one("#tests-empty", EmptyState)
        model = self.mrc.selected_model
        if not model:
            empty.update("No model is configured: there is no test suite to run.")
            empty.display = True
            return
        self.load_runs(model)
        self.flush_live_output()
        self.table.focus()

    def poll(self) -> None:
        self.load_runs(self.mrc.selected_model)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def load_runs(self, model: str) -> None:
        """Read the recorded runs of ``model`` from the journal."""
        if model:
            self.post_message(
                self.Runs(self.mrc.workspace.journal.test_runs(model=model, limit=200))
            )

    def on_tests_screen_runs(self, message: Runs) -> None:
        model = self.mrc.selected_model
        empty = self.query_one("#tests-empty", EmptyState)
        live = {op.run.id: op.run for op in self.mrc.operations("test") if op.run is not None}
        runs = [live.get(run.id, run) for run in message.runs]
        command = ""
        if model:
            command = self.mrc.workspace.config.model(model).test_command
        if not runs:
            empty.update(
                f"No test run of {model} yet: press t on a commit of the Commits screen."
                if command
                else f"{model} has no test_command in its configuration."
            )
        empty.display = not runs
        table = self.table
        with self.app.batch_update():
            for run in runs:
                key = str(run.id)
                cells = run_cells(run)
                if key in self.runs and key in table.rows:
                    for column, cell in zip(COLUMNS, cells, strict=True):
                        table.update_cell(key, column.key, cell)
                else:
                    table.add_row(*cells, key=key)
                self.runs[key] = run
            table.sort("id", key=lambda cell: -int(cell.plain) if cell.plain.isdigit() else 0)

    @on(DataTable.RowHighlighted, "#tests-table")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key else None
        if key is None or key == self.shown_key:
            return
        self.show_output(key)

    def show_output(self, key: str) -> None:
        """Show the output of run ``key``: live if it is running, else from its log file."""
        self.shown_key = key
        self._seen = 0
        log = self.query_one("#tests-log", Log)
        log.clear()
        if self._live_op(key) is not None:
            self.flush_live_output()
            return
        run = self.runs.get(key)
        if run is not None and run.id is not None:
            self.load_output(run)

    @work(thread=True, exclusive=True, group="output", exit_on_error=False)
    def load_output(self, run: TestRun) -> None:
        """Read the tail of a finished run's output file."""
        lines: list[str] = []
        if run.output_path:
            try:
                with open(run.output_path, "rb") as handle:
                    handle.seek(0, 2)
                    size = handle.tell()
                    handle.seek(max(0, size - LOG_TAIL_BYTES))
                    data = handle.read()
                lines = data.decode("utf-8", "replace").splitlines()
            except OSError as error:
                lines = [f"(output not available: {error})"]
        else:
            lines = ["(no output was recorded)"]
        assert run.id is not None
        self.post_message(self.Output(run.id, lines))

    def on_tests_screen_output(self, message: Output) -> None:
        if str(message.run_id) != self.shown_key:
            return
        log = self.query_one("#tests-log", Log)
        log.write_lines([clean_line(line) for line in message.lines])

    def _live_op(self, key: str | None):  # type: ignore[no-untyped-def]
        for op in self.mrc.operations("test"):
            if op.run is not None and str(op.run.id) == key:
                return op
        return None

    def flush_live_output(self) -> None:
        """Append what the running test wrote since the last flush (batched, 5 times a second)."""
        if not self._visible:
            return
        ops = [op for op in self.mrc.operations("test") if not op.finished]
        if self.follow and ops:
            running = ops[-1]
            if running.run is not None and str(running.run.id) != self.shown_key:
                self.shown_key = str(running.run.id)
                self._seen = 0
                self.query_one("#tests-log", Log).clear()
        op = self._live_op(self.shown_key)
        if op is None:
            return
        lines, self._seen = op.since(self._seen)
        if lines:
            self.query_one("#tests-log", Log).write_lines([clean_line(text) for text, _ in lines])

    def selected_run(self) -> TestRun | None:
        """The run under the cursor."""
        table = self.table
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.runs.get(key) if key else None

    @on(DataTable.RowSelected, "#tests-table")
    def row_selected(self) -> None:
        # The focused table takes `enter` for itself: it is still "results".
        self.action_results()

    def action_results(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.app.push_screen(ResultsScreen(run))

    def action_cancel_run(self) -> None:
        run = self.selected_run()
        op = self._live_op(str(run.id)) if run else None
        if op is None:
            ops = [o for o in self.mrc.operations("test") if not o.finished]
            op = ops[-1] if ops else None
        if op is None or op.finished:
            self.notify("no test run is running", severity="warning")
            return
        op.cancel.cancel()
        self.notify(f"cancelling the run at {op.commit[:8]}", markup=False)

    def action_rerun(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.mrc.start_tests(run.model, run.commit)

    def action_follow(self) -> None:
        self.follow = not self.follow
        self.notify("following the running output" if self.follow else "not following")
