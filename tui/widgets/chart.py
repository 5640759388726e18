"""A time chart with threshold lines and release markers (textual-plotext).

Imported only by the Drift screen when it is first shown: plotext is the
heaviest import of the console and the first frame must not wait for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from core.domain import Marker, Series

#: 16-colour-safe palette for series, in order.
PALETTE = ("cyan", "green", "magenta", "blue", "yellow", "white")


@dataclass(frozen=True)
class Threshold:
    """A horizontal line, e.g. the warn or alert band of a drift score."""

    value: float
    color: str
    label: str


class TimeChart(PlotextPlot):
    """Series over "minutes ago" with vertical release markers.

    The x axis is minutes relative to ``now`` (negative to the left) so the
    chart reads the same at any time of day and over SSH without a locale.
    """

    _last_built: str = ""

    DEFAULT_CSS = """
    TimeChart {
        height: 1fr;
        min-height: 6;
    }
    """

    def draw(
        self,
        title: str,
        series: Sequence[Series],
        now: datetime,
        start: datetime,
        *,
        markers: Sequence[Marker] = (),
        thresholds: Sequence[Threshold] = (),
        y_label: str = "",
    ) -> None:
        """Replace the chart's content and redraw it."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        span = (now - start).total_seconds() / 60.0
        plt.xlim(-span, 0)
        now_ts = now.timestamp()
        drawn = False
        values = [v for one in series for _, v in one.points] + [t.value for t in thresholds]
        top = max(values, default=1.0) or 1.0
        for index, one in enumerate(series):
            points = [((t - now_ts) / 60.0, v) for t, v in one.points if t <= now_ts]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            plt.plot(list(xs), list(ys), label=one.name, color=PALETTE[index % len(PALETTE)])
            drawn = True
        for threshold in thresholds:
            plt.hline(threshold.value, threshold.color)
        for marker in markers:
            x = (marker.time.timestamp() - now_ts) / 60.0
            if -span <= x <= 0:
                color = "red" if marker.kind == "rollback" else "yellow"
                plt.vline(x, color)
                plt.text(marker.label[:16], x=x, y=top, color=color)
        if not drawn:
            plt.text("no data yet", x=-span / 2, y=0.5)
        plt.xlabel("minutes ago")
        if y_label:
            plt.ylabel(y_label)
        self._refresh_if_changed()

    def _refresh_if_changed(self) -> None:
        """Repaint only when the built chart differs from what is on screen.

        At one point per column most one-second refreshes draw the same
        picture; skipping them keeps an idle screen from rewriting the terminal.
        """
        if not self.size.area:
            self.refresh()
            return
        built = self._build()
        if built != self._last_built:
            self._last_built = built
            self.refresh()

    def _build(self) -> str:
        width, height = self.size.width, self.size.height
        self._plot.plotsize(width, height)
        self._plot._set_size(width, height)
        self._plot.theme(self._get_plotext_theme_name(self.app.theme))
        return str(self._plot.build())

    def render(self) -> RenderResult:
        built = self._build()
        self._last_built = built
        return Text.from_ansi(built)
