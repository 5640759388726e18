"""Drift screen: drift score, prediction distribution, service health, release markers.

Live, the screen polls every second (a source that stops answering turns the
status line STALE within a second), but what it shows moves on in fixed steps
of the clock, so that an idle look at it costs little and the numbers do not
flicker:

* the scores ("drift now" and the features) are those of the drift window
  ending at the latest multiple of :data:`SCORE_SECONDS` (15 s, a
  Prometheus scrape interval) once the model has a score and a mark has
  passed since; until then every poll asks as of now, so the first score
  shows as soon as there is data enough for it, not up to a mark later. From
  then on, until the next mark passes, every poll asks as of that first
  score's time: its view stays on screen unchanged instead of being redrawn
  every second (and the mark before it, with too little data, is never asked
  for: the score would flip to "not enough data" and back at every poll);
* each chart is a strip chart over a fixed window of the range plus one jump
  (:func:`jump_seconds`: a quarter of the range or a little more, rounded up
  to a clock interval): new points are added on its right until they reach
  its right edge, then the window jumps on. The chart always shows at least
  the whole range, the x axis shows UTC clock times whose ticks stay in their
  columns across a jump, and a new point repaints only the cells around it
  (see :mod:`tui.widgets.chart`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.geometry import Region
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from core.domain import DriftBand, DriftScore
from tui import data
from tui.clock_steps import CLOCK_STEPS
from tui.guard import guard_text
from tui.screens.base import EmptyState, MrcScreen
from tui.text import literal
from tui.widgets.alerts import AlertsPanel
from tui.widgets.fit_table import Col, FitTable

if TYPE_CHECKING:
    from tui.widgets.chart import TimeChart

#: Selectable time ranges, shortest first (``[`` shorter, ``]`` longer).
RANGES = (
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(hours=24),
    timedelta(days=7),
)

BAND_STYLE = {
    DriftBand.OK: "green",
    DriftBand.WARN: "yellow",
    DriftBand.ALERT: "bold red",
    DriftBand.NOT_ENOUGH_DATA: "dim",
}


#: Top drifting features: the name shrinks, the score and band never do.
FEATURE_COLUMNS = (
    Col("feature", "feature", min_width=6, max_width=30),
    Col("score", "score"),
    Col("band", "band"),
)


#: Below this screen height the charts are shown one at a time (``c`` shows the
#: next): three stacked charts would be too short to show the warn/alert lines.
ALL_CHARTS_MIN_HEIGHT = 34
#: The charts, in the order ``c`` shows them; the drift chart first.
CHART_IDS = ("chart-drift", "chart-prediction", "chart-service")
#: The scores shown are those of the window ending at the latest multiple of this (seconds).
SCORE_SECONDS = 15.0
#: The charts' window moves on in jumps of at least 1/JUMPS of the range.
JUMPS = 4


def score_time(now: datetime) -> datetime:
    """Return the time the screen's scores are computed at: ``now`` rounded down to a
    multiple of :data:`SCORE_SECONDS`."""
    return datetime.fromtimestamp(
        math.floor(now.timestamp() / SCORE_SECONDS) * SCORE_SECONDS, now.tzinfo
    )


def jump_seconds(span: timedelta) -> float:
    """Return how far (seconds) the charts' window jumps on for a range ``span``.

    The shortest clock interval (:data:`tui.clock_steps.CLOCK_STEPS`) of at least
    ``span / JUMPS``: the charts label their x axis at multiples of an interval
    that divides it, so a jump leaves the ticks in their columns and rewrites
    only their labels' digits.
    """
    least = span.total_seconds() / JUMPS
    return float(next((step for step in CLOCK_STEPS if step >= least), least))


def chart_window(now: datetime, span: timedelta) -> tuple[datetime, datetime]:
    """Return the (start, end) of the charts' window for a range ``span`` at ``now``.

    The end is the first multiple of a jump (:func:`jump_seconds`) at or after
    ``now``, the start a range and a jump before it: the window holds at least
    the last ``span`` and stays put until ``now`` passes its end.
    """
    jump = jump_seconds(span)
    end = datetime.fromtimestamp(math.ceil(now.timestamp() / jump) * jump, now.tzinfo)
    return end - span - timedelta(seconds=jump), end


def advice_text(advice: Any) -> Text:
    """Return the advice line(s) under the score: the key that fits and why ("" for none)."""
    text = Text()
    if advice is None or not advice.action:
        return text
    text.append("\nadvice: ", style="bold")
    if advice.action == "rollback":
        text.append("u roll back", style="bold yellow")
        text.append("\ndrift began at ", style="dim")
        marker = advice.marker
        text.append_text(literal(f"{marker.kind} {marker.label}", style="dim", max_len=60))
    else:
        text.append("R retrain", style="bold yellow")
        text.append("\ndrift began without a release: the data moved", style="dim")
    return text


def same_shape(old: Text, new: Text, width: int) -> bool:
    """Return True when ``new`` has as many lines as ``old`` and no line of either is
    wider than ``width`` cells (neither wraps: both are as tall)."""
    old_lines, new_lines = old.plain.split("\n"), new.plain.split("\n")
    return len(old_lines) == len(new_lines) and all(
        cell_len(line) <= width for line in (*old_lines, *new_lines)
    )


def changed_ends(old: Text, new: Text) -> list[int]:
    """Return, for each line of ``new``, the cell after its last cell that differs from the
    same line of ``old`` (character or style; 0 for an unchanged line)."""
    old_lines = old.split("\n", allow_blank=True)
    ends: list[int] = []
    for row, line in enumerate(new.split("\n", allow_blank=True)):
        was = old_lines[row] if row < len(old_lines) else Text()
        mine, theirs = _cells(line), _cells(was)
        last = next(
            (
                i + 1
                for i in range(max(len(mine), len(theirs)) - 1, -1, -1)
                if (mine[i] if i < len(mine) else None) != (theirs[i] if i < len(theirs) else None)
            ),
            0,
        )
        ends.append(cell_len(line.plain[:last]) + max(0, last - len(line.plain)))
    return ends


def _cells(line: Text) -> list[tuple[str, tuple[object, ...]]]:
    """Return each character of ``line`` with the styles that apply to it."""
    styles: list[tuple[object, ...]] = [(line.style,)] * len(line.plain)
    for span in line.spans:
        for i in range(span.start, min(span.end, len(styles))):
            styles[i] = (*styles[i], span.style)
    return list(zip(line.plain, styles, strict=True))


class Lines(Widget):
    """Lines of text that, when a new text has the same shape, repaint each line only up to
    its last changed cell (not the blanks after it)."""

    DEFAULT_CSS = """
    Lines {
        height: auto;
    }
    """

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self.text = Text()

    def render(self) -> Text:
        return self.text

    def show(self, text: Text, *, layout: bool) -> None:
        """Show ``text``: with ``layout``, as a new shape; else repaint the changed cells."""
        old, self.text = self.text, text
        if layout:
            self.refresh(layout=True)
            return
        regions = [Region(0, row, end, 1) for row, end in enumerate(changed_ends(old, text)) if end]
        if regions:
            self.refresh(*regions)


def range_label(span: timedelta) -> str:
    """Return ``15m``, ``6h`` or ``7d`` for a range."""
    minutes = int(span.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


class DriftScreen(MrcScreen):
    """``5``: is the model's input or output shifting, and did it start with a release?"""

    AUTO_FOCUS = "#drift-features"
    TITLE_TEXT = "5 Drift"
    POLL_SECONDS = 1.0

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left_square_bracket", "range(-1)", "Shorter", id="drift.shorter", tooltip="Range"),
        Binding("right_square_bracket", "range(1)", "Longer", id="drift.longer", tooltip="Range"),
        Binding("space", "pause", "Pause", id="drift.pause", tooltip="Pause live updates"),
        Binding("c", "next_chart", "Chart", id="drift.chart", tooltip="Show the next chart"),
        Binding(
            "S", "toggle_shift", "Data shift", id="drift.shift", tooltip="Demo: shift the inputs"
        ),
        Binding("a", "silence_alert", "Silence", id="drift.silence", tooltip="Silence an alert"),
        Binding("R", "retrain", "Retrain", id="drift.retrain", tooltip="Retrain on recent data"),
    ]

    class Fetched(Message):
        """A fresh view of the model's metrics, or the error that prevented it."""

        def __init__(self, model: str, view: Any | None, error: str) -> None:
            super().__init__()
            self.model = model
            self.view = view
            self.error = error

    def __init__(self) -> None:
        super().__init__()
        self.range_index = 1
        self.paused = False
        self.last_success: datetime | None = None
        self.last_error = ""
        self._charts_ready = False
        self._charts: dict[str, TimeChart] = {}  # by id, once mounted
        self._features: tuple[tuple[str, str, DriftBand], ...] = ()
        self._shown: dict[str, Text] = {}
        self.chart_index = 0  # the chart shown when only one fits
        self.advice: Any = None  # core.services.views.DriftAdvice of the view on screen
        self._drawn: Any = None  # the DriftView on screen
        self._scored = ""  # the model whose view on screen has a score (polls go by marks)
        self._scored_since: datetime | None = None  # the time of its first view with a score

    def compose_body(self) -> ComposeResult:
        yield EmptyState(id="drift-empty")
        yield Static("", id="drift-status")
        yield Static("", id="drift-errors")
        yield Horizontal(
            Vertical(id="drift-charts"),
            Vertical(
                Lines(id="drift-score"),
                Static("Alerts", classes="panel-title"),
                Static("", id="drift-alerts"),
                AlertsPanel(id="drift-am-alerts"),
                Static("Top drifting features", classes="panel-title"),
                Vertical(  # the table is as tall as its rows (see app.tcss)
                    FitTable(
                        FEATURE_COLUMNS, id="drift-features", cursor_type="row", show_cursor=False
                    ),
                    id="drift-features-box",
                ),
                id="drift-side",
            ),
            id="drift-body",
        )

    def _ensure_charts(self) -> None:
        if self._charts_ready:
            return
        from tui.widgets.chart import TimeChart

        self._charts = {chart_id: TimeChart(id=chart_id) for chart_id in CHART_IDS}
        self.query_one("#drift-charts", Vertical).mount_all(list(self._charts.values()))
        self._charts_ready = True
        self._layout_charts()

    @property
    def one_chart(self) -> bool:
        """True when the screen is too short for every chart: one is shown at a time."""
        return self.size.height < ALL_CHARTS_MIN_HEIGHT

    def _layout_charts(self) -> None:
        """Show every chart, or only the selected one on a short screen."""
        if not self._charts_ready:
            return
        one = self.one_chart
        for index, chart_id in enumerate(CHART_IDS):
            self.query_one(f"#{chart_id}").display = not one or index == self.chart_index

    def on_resize(self) -> None:
        self._layout_charts()
        self._status()

    def action_next_chart(self) -> None:
        """Show the next chart (on a screen too short for all of them)."""
        if not self.one_chart:
            self.notify(
                f"every chart is shown; c shows one at a time on a screen shorter than "
                f"{ALL_CHARTS_MIN_HEIGHT} rows",
                markup=False,
            )
            return
        self.chart_index = (self.chart_index + 1) % len(CHART_IDS)
        self._layout_charts()
        self._status()

    @property
    def span(self) -> timedelta:
        return RANGES[self.range_index]

    def on_shown(self) -> None:
        model = self.mrc.selected_model
        empty = self.query_one("#drift-empty", EmptyState)
        body = self.query_one("#drift-body")
        metrics = self.mrc.workspace.config.model(model).metrics if model else None
        if metrics is None:
            empty.update(
                "No metrics are configured for "
                + (repr(model) if model else "any model")
                + '. Add a [model.metrics] table with source = "scrape" (the model server\'s '
                '/metrics) or "prometheus" (url): see examples/mrc.toml.'
            )
            empty.display = True
            body.display = False
            return
        empty.display = False
        body.display = True
        self._ensure_charts()
        self._status()

    def chart_width(self) -> int:
        """Return the charts' width in cells (the screen's width before they are laid out)."""
        widths = [chart.size.width for chart in self._charts.values()]
        return max([*widths, 0]) or self.size.width or 120

    def poll(self) -> None:
        """Fetch the view of the charts' window (see :func:`chart_window`) as of
        :func:`score_time`, as of now before the first score, and as of the first
        score until a mark passes it (see the module docstring)."""
        if self.mrc.selected_model:
            # A range and a jump before ``at``: the same length, so the same step and grid,
            # at every poll; it covers the charts' window, whose start is no earlier.
            span = self.span + timedelta(seconds=jump_seconds(self.span))
            model, now = self.mrc.selected_model, self.mrc.clock()
            mark = score_time(now)
            since = self._scored_since
            at = max(mark, since) if self._scored == model and since is not None else now
            self.fetch(model, span, at, self.chart_width())

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def fetch(self, model: str, span: timedelta, now: datetime, width: int = 120) -> None:
        """Query the metrics source and compute drift over the ``span`` before ``now``
        for charts ``width`` cells wide, in a worker."""
        try:
            view = data.drift_view(self.mrc.workspace, model, span, now, width)
        except Exception as error:
            self.post_message(self.Fetched(model, None, str(error)))
            return
        self.post_message(self.Fetched(model, view, ""))

    def on_drift_screen_fetched(self, message: Fetched) -> None:
        if message.model != self.mrc.selected_model:
            return
        if message.view is None:
            self.last_error = message.error
        else:
            self.last_error = ""
            self.last_success = self.mrc.clock()
            scored = message.view.current.value is not None
            if not scored:
                self._scored, self._scored_since = "", None
            elif self._scored != message.model:
                self._scored, self._scored_since = message.model, message.view.now
            self.render_view(message.view)
        self._status()

    def _status(self) -> None:
        text = Text()
        text.append(f"range {range_label(self.span)}", style="bold")
        text.append("  [ ] change  space pause")
        if self.one_chart:
            text.append(f"  c chart {self.chart_index + 1}/{len(CHART_IDS)}")
        if self.paused:
            text.append("  PAUSED", style="bold yellow")
        if self.last_error:
            text.append("  STALE", style="bold reverse red")
            when = self.last_success.strftime("%H:%M:%S") if self.last_success else "never"
            text.append(f" last success {when}: ", style="red")
            text.append_text(literal(self.last_error, style="red", max_len=160))
        self._update_static("#drift-status", text)

    def render_view(self, view: Any) -> None:
        """Draw one DriftView: charts, current score, alerts, features.

        The view drawn last (the same object: nothing new, see
        :meth:`DriftModel.refresh`) only refreshes the score's guard line.
        """
        from tui.widgets.chart import Threshold

        if view is self._drawn:
            self._show_score(view)
            return
        self._drawn = view
        # A fixed window: new points fill it on the right until it jumps on.
        step = view.step if view.step > 0 else 1.0
        start, now = chart_window(view.now, self.span)
        jump = jump_seconds(self.span)
        drift_cfg = self.mrc.workspace.config.model(self.mrc.selected_model).drift
        charts = self._charts  # kept: a query of the DOM each second costs more than a draw
        charts["chart-drift"].draw(
            f"drift ({drift_cfg.method})",
            view.drift_series,
            now,
            start,
            markers=view.markers,
            thresholds=[
                Threshold(drift_cfg.warn, "yellow", "warn"),
                Threshold(drift_cfg.alert, "red", "alert"),
            ],
            jump=jump,
        )
        charts["chart-prediction"].draw(
            "prediction p10/p50/p90",
            view.quantile_series,
            now,
            start,
            markers=view.markers,
            jump=jump,
        )
        # The service series are sampled at every scrape: their point of the step
        # still being collected would change the picture every second. They end at
        # the last whole step, as the drift and prediction series do.
        edge = math.floor(view.now.timestamp() / step) * step
        service = [
            replace(one, points=tuple(p for p in one.points if p[0] <= edge))
            for one in view.service_series
        ]
        charts["chart-service"].draw(
            "errors / latency / throughput", service, now, start, markers=view.markers, jump=jump
        )
        self.advice = self._advise(view)
        self._show_score(view)
        alerts = Text()
        for alert in view.alerts:
            alerts.append_text(literal(f"{alert.state} {alert.name}", style="bold red"))
            if alert.summary:
                alerts.append(" ")
                alerts.append_text(literal(alert.summary))
            alerts.append("\n")
        if not view.alerts:
            alerts.append("none", style="dim")
        self._update_static("#drift-alerts", alerts)
        problems = Text()
        for panel, message in sorted(view.panel_errors.items()):
            problems.append(f"{panel}: ", style="bold yellow")
            problems.append_text(literal(message, style="yellow", max_len=200))
            problems.append("\n")
        self._update_static("#drift-errors", problems)
        self.query_one("#drift-errors").display = bool(view.panel_errors)
        self._show_features(view.features[:10])

    def _show_score(self, view: Any) -> None:
        """Show the current score of ``view``, the guard's state and :attr:`advice`."""
        score = view.current
        text = Text()
        text.append("drift now: ", style="bold")
        if score.value is None:
            text.append(f"not enough data ({score.samples:.0f} samples)", style="dim")
        else:
            text.append(f"{score.value:.3f} {score.band.value}", style=BAND_STYLE[score.band])
        target = self.mrc.current_target_name()
        guard = self.mrc.workspace.guard_state(self.mrc.selected_model, target) if target else None
        if guard is not None:
            text.append("\n")
            text.append_text(guard_text(guard))
        text.append_text(advice_text(self.advice))
        self._update_static("#drift-score", text)

    def _advise(self, view: Any) -> Any:
        """Return which action fits ``view``'s drift (see :func:`core.services.views.drift_advice`).

        A release shows in the score within one drift window (plus a step or two).
        """
        from core.services.views import drift_advice

        lead = view.window + 2 * max(view.step, 1.0)
        points = view.drift.points
        return drift_advice(points, view.markers, view.current, view.warn, lead, view.step)

    def _show_features(self, features: Sequence[tuple[str, DriftScore]]) -> None:
        """Show the top features, touching only the cells whose text changed.

        The rows are the ranks: a new order or score updates the changed cells
        in place (only they are repainted); a different number of features
        rebuilds the table.
        """
        shown = tuple(
            (
                name,
                "-" if score.value is None else f"{score.value:.3f}",
                score.band,
            )
            for name, score in features
        )
        if shown == self._features:
            return
        table = self.query_one("#drift-features", FitTable)
        if len(shown) != len(self._features):
            table.clear()
            for rank, (name, value, band) in enumerate(shown):
                table.add_row(
                    literal(name, max_len=30),
                    Text(value),
                    Text(band.value, style=BAND_STYLE[band]),
                    key=str(rank),
                )
        else:
            for rank, ((name, value, band), (old_name, old_value, old_band)) in enumerate(
                zip(shown, self._features, strict=True)
            ):
                if name != old_name:
                    table.update_cell(str(rank), "feature", literal(name, max_len=30))
                if value != old_value:
                    table.update_cell(str(rank), "score", Text(value))
                if band != old_band:
                    table.update_cell(str(rank), "band", Text(band.value, style=BAND_STYLE[band]))
        self._features = shown

    def _update_static(self, selector: str, text: Text) -> None:
        """Update a Static (or :class:`Lines`) only when its text changed (no needless repaint).

        A text of the same shape (as many lines, none wider than the widget)
        keeps the widget's height: it is repainted without redoing the layout.
        """
        widget = self.query_one(selector)
        old = self._shown.get(selector)
        if old != text:
            self._shown[selector] = text
            width = widget.content_size.width
            layout = old is None or not same_shape(old, text, width)
            if isinstance(widget, Lines):
                widget.show(text, layout=layout)
            elif isinstance(widget, Static):
                widget.update(text, layout=layout)

    def action_range(self, delta: int) -> None:
        self.range_index = max(0, min(len(RANGES) - 1, self.range_index + delta))
        self._status()
        self.poll()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.mrc.set_paused(self, self.paused)
        self._status()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_shift":
            return self.mrc.data_shift is not None  # only the demo has traffic to shift
        if action == "retrain":
            return self.mrc.retrain_key()
        # without Alertmanager, or read-only: the key is removed; pressing it says why
        return not (action == "silence_alert" and self.mrc.silence_refusal())

    def disabled_reason(self, action: str) -> str | None:
        if action == "toggle_shift" and self.mrc.data_shift is None:
            return "the data shift is a control of the demo (mrc demo)"
        if action == "silence_alert":
            return self.mrc.silence_refusal() or None
        if action == "retrain":
            return self.mrc.retrain_refusal() or None
        return None

    def action_retrain(self) -> None:
        reason = self.query_one(AlertsPanel).retrain_reason()
        self.mrc.start_retrain(self.mrc.selected_model, reason)

    def action_silence_alert(self) -> None:
        self.mrc.silence_alert(self.query_one(AlertsPanel).selected())

    def action_toggle_shift(self) -> None:
        self.mrc.toggle_data_shift()
