"""A time chart with threshold lines and release markers (textual-plotext).

Imported only by the Drift screen when it is first shown: plotext is the
heaviest import of the console and the first frame must not wait for it.

plotext decodes ANSI in every string it is given (labels, legends, titles),
so each string from outside passes :func:`core.sanitize.clean_line` first.
Marker labels are placed in character cells so that they never overlap each
other or the legend: a label that does not fit is shortened, moved one row
down, or dropped (its vertical line stays).

A live chart is a strip chart: its window ``[start, end]`` is given by the
screen and stays put while new points are added on the right of the data, up
to ``end`` (the Drift screen moves it on in jumps, see :mod:`tui.screens.drift`). The x
axis is labelled with UTC clock times at fixed multiples of a tick interval,
and the y limits are stable: a chart with thresholds (drift) shows fixed
bands (0 to twice the highest threshold, doubled while a value is above), the
others "nice" limits (1, 2, 2.5 or 5 times a power of ten) that grow at once
and shrink only when the data fill less than a third of them. So a new point
changes only the cells around it, and a chart whose picture would not change
is neither plotted nor repainted.

Textual writes a repainted cell with everything left of it on the same line of
the same widget. A chart is therefore covered by :data:`SLICES` narrow widgets
side by side (:class:`_Slice`, each showing its columns of the same picture): a
new point rewrites its line from the left edge of its slice only, and a jump
of the window rewrites the slices whose cells changed, not every line whole
from the y axis on.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from rich.ansi import AnsiDecoder
from rich.style import Style
from rich.text import Span, Text
from textual.app import ComposeResult, RenderResult
from textual.geometry import Region
from textual.widget import Widget
from textual_plotext import PlotextPlot

from core.domain import Marker, Series
from core.sanitize import clean_line
from tui.clock_steps import CLOCK_STEPS

#: 16-colour-safe palette for series, in order.
PALETTE = ("cyan", "green", "magenta", "blue", "yellow", "white")
#: Longest marker label, legend entry and title drawn (characters).
MAX_LABEL = 24
MAX_LEGEND = 32
MAX_TITLE = 80
#: Rows of the plot area above and below it taken by title, frame, ticks and x label.
CHROME_ROWS = 5
#: Columns of the frame and of the y tick labels, left of the plot area (estimate).
Y_AXIS_COLUMNS = 7
#: Free columns kept between two labels on the same row.
LABEL_GAP = 1
#: Side-by-side widgets a chart is drawn by, of equal width (see the module docstring): a
#: changed cell is written with at most a slice's width of unchanged cells left of it.
SLICES = 8


@dataclass(frozen=True)
class Threshold:
    """A horizontal line, e.g. the warn or alert band of a drift score."""

    value: float
    color: str
    label: str


@dataclass(frozen=True)
class Placed:
    """A marker label placed at plot ``row`` (0 = top), starting at plot ``column``."""

    index: int
    row: int
    column: int
    text: str


def label_forms(label: str) -> list[str]:
    """Return ``label`` (sanitised) and shorter forms of it, longest first.

    ``"rollout → 3 (failed)"`` gives ``["rollout → 3 (failed)", "rollout→3",
    "→3"]``: the kind is also told by the line's colour.
    """
    full = clean_line(label, max_len=MAX_LABEL)
    forms = [full]
    head = full.split(" (", 1)[0]
    if "→" in head:
        kind, _, rev = head.partition("→")
        forms += [f"{kind.strip()}→{rev.strip()}", f"→{rev.strip()}"]
    elif " " in head:
        forms.append(head.rsplit(" ", 1)[-1])
    unique: list[str] = []
    for form in forms:
        if form and form not in unique:
            unique.append(form)
    return unique


def place_labels(
    columns: Sequence[int],
    labels: Sequence[str],
    width: int,
    rows: int,
    blocked: Sequence[tuple[int, int, int]] = (),
) -> list[Placed]:
    """Place one label per marker so that no two overlap; return the placed ones.

    ``columns`` are the markers' plot columns, ``width`` and ``rows`` the
    plot area's size, ``blocked`` (row, first column, end column) spans
    already used (the legend). Each label starts at its marker's column (or
    ends there when it would leave the plot on the right); its forms
    (:func:`label_forms`) are tried longest first on the top row, then on the
    rows below it (at most 3, and half the plot). A marker whose label fits nowhere
    is left out of the result.
    """
    used: dict[int, list[tuple[int, int]]] = {}
    for row, start, end in blocked:
        used.setdefault(row, []).append((start, end))
    depth = max(1, min(3, rows // 2))
    placed: list[Placed] = []
    order = sorted(range(len(columns)), key=lambda i: columns[i])
    for index in order:
        column = columns[index]
        spot = _find_spot(column, label_forms(labels[index]), width, depth, used)
        if spot is None:
            continue
        row, start, text = spot
        used.setdefault(row, []).append((start - LABEL_GAP, start + len(text) + LABEL_GAP))
        placed.append(Placed(index, row, start, text))
    return placed


def _find_spot(
    column: int, forms: list[str], width: int, depth: int, used: dict[int, list[tuple[int, int]]]
) -> tuple[int, int, str] | None:
    """Return (row, start column, text) of the first free place for one of ``forms``."""
    for text in forms:
        for row in range(depth):
            for start in (column, column - len(text) + 1):
                end = start + len(text)
                if start < 0 or end > width:
                    continue
                if all(end <= a or start >= b for a, b in used.get(row, [])):
                    return row, start, text
    return None


#: Tick intervals of the x axis (seconds), shortest first: the first that gives
#: at most one label per :data:`TICK_COLUMNS` plot columns is used.
TICK_STEPS = CLOCK_STEPS
TICK_COLUMNS = 9


def time_ticks(
    start: float, end: float, columns: int, jump: float = 0.0
) -> list[tuple[float, str]]:
    """Return the x ticks of a window [start, end] (unix seconds) ``columns`` wide.

    Each tick is (minutes before ``end``, UTC clock label): the multiples of a
    tick interval from :data:`TICK_STEPS`, so a window that stays put keeps
    its ticks. Of the intervals that are not too dense, the shortest that
    divides ``jump`` (seconds the window moves on by, 0 for none) is used, else
    the shortest: a window that jumps on by ``jump`` has its ticks in the same
    columns. Labels are ``HH:MM``, or ``MM-DD`` for intervals of a day or more.
    """
    most = max(2, columns // TICK_COLUMNS)
    fits = [s for s in TICK_STEPS if (end - start) / s <= most] or [TICK_STEPS[-1]]
    step = next((s for s in fits if jump > 0 and jump % s == 0), fits[0])
    fmt = "%m-%d" if step >= 86400 else "%H:%M"
    first = math.ceil(start / step) * step
    return [
        ((t - end) / 60.0, datetime.fromtimestamp(t, UTC).strftime(fmt))
        for t in range(first, math.floor(end) + 1, step)
    ]


def nice_ceil(value: float) -> float:
    """Return the smallest 1, 2, 2.5 or 5 times a power of ten that is >= ``value`` (0 for <= 0)."""
    if value <= 0:
        return 0.0
    power = 10.0 ** math.floor(math.log10(value))
    if power == 0.0:
        return value  # below the smallest normal float: nothing nicer to show
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= factor * power * (1 + 1e-9):
            return factor * power
    return 10.0 * power  # pragma: no cover - rounding at the top of a decade


def band_limits(values: Sequence[float], levels: Sequence[float]) -> tuple[float, float]:
    """Return fixed y limits for a chart with threshold ``levels`` (e.g. warn, alert).

    From 0 (or below, for a negative value) to twice the highest level, doubled
    until every value fits: the bands stay where they are while the data move.
    """
    top = 2 * max(levels) if levels and max(levels) > 0 else 1.0
    high = max(values, default=0.0)
    while top < high:
        top *= 2
    return min(0.0, min(values, default=0.0)), top


def nice_limits(
    values: Sequence[float], previous: tuple[float, float] | None
) -> tuple[float, float]:
    """Return "nice" y limits for ``values``, keeping ``previous`` while they still fit.

    The limits are 0 (or minus a nice value below a negative minimum) to the
    nice value above the maximum (:func:`nice_ceil`). ``previous`` limits are
    kept while every value fits in them and the new top would not be under a
    third of theirs: the scale grows at once and shrinks only when the data
    fill little of it. (0, 1) without values.
    """
    if not values:
        return previous or (0.0, 1.0)
    low, high = min(values), max(values)
    bottom = -nice_ceil(-low) if low < 0 else 0.0
    top = nice_ceil(high)
    if top <= bottom:
        top = bottom + 1.0
    if previous is not None:
        was_bottom, was_top = previous
        if was_bottom == bottom and high <= was_top and top * 3 > was_top:
            return previous
    return bottom, top


@dataclass
class _Spec:
    """What :meth:`TimeChart.draw` was asked to draw, plotted at render time.

    ``end`` is the window's right edge (unix seconds), ``span`` its width in
    minutes, ``series`` only the points inside it, ``ylim`` the y limits,
    ``jump`` how far the window moves on at a time (seconds, 0 for unknown).
    """

    title: str = ""
    series: Sequence[Series] = ()
    end: float = 0.0
    span: float = 1.0
    ylim: tuple[float, float] = (0.0, 1.0)
    markers: Sequence[Marker] = ()
    thresholds: Sequence[Threshold] = ()
    y_label: str = ""
    jump: float = 0.0
    placed: list[Placed] = field(default_factory=list, compare=False)


class TimeChart(PlotextPlot):
    """Series over a fixed time window, with threshold lines and vertical release markers.

    The x axis shows UTC clock times (the same on every machine, no locale);
    see the module docstring for how the window and the y limits stay put.
    """

    _last_built: str = ""
    _picture: _Picture | None = None

    DEFAULT_CSS = """
    TimeChart {
        height: 1fr;
        min-height: 6;
        layout: horizontal;
    }
    TimeChart > _Slice {
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._spec: _Spec | None = None
        self._ylim: tuple[float, float] | None = None
        #: How many times the chart was plotted (plotext build), for tests.
        self.builds = 0

    def compose(self) -> ComposeResult:
        for _ in range(SLICES):
            yield _Slice()

    @property
    def placed_labels(self) -> list[Placed]:
        """The marker labels drawn by the last render (for tests and screens)."""
        return list(self._spec.placed) if self._spec else []

    def draw(
        self,
        title: str,
        series: Sequence[Series],
        end: datetime,
        start: datetime,
        *,
        markers: Sequence[Marker] = (),
        thresholds: Sequence[Threshold] = (),
        y_label: str = "",
        jump: float = 0.0,
    ) -> None:
        """Show ``series`` in the window [start, end] and redraw (when the picture changed).

        Points outside the window are left out; the y limits follow the rules
        of the module docstring. ``jump`` is how far (seconds) the window moves
        on at a time: the x ticks are chosen to stay in their columns when it does.
        """
        end_ts, start_ts = end.timestamp(), start.timestamp()
        inside = tuple(
            replace(one, points=tuple(p for p in one.points if start_ts <= p[0] <= end_ts))
            for one in series
        )
        values = [v for one in inside for _, v in one.points if math.isfinite(v)]
        if thresholds:
            ylim = band_limits(values, [t.value for t in thresholds])
        else:
            ylim = nice_limits(values, self._ylim)
        self._ylim = ylim
        spec = _Spec(
            title=clean_line(title, max_len=MAX_TITLE),
            series=inside,
            end=end_ts,
            span=max((end_ts - start_ts) / 60.0, 1e-6),
            ylim=ylim,
            markers=tuple(markers),
            thresholds=tuple(thresholds),
            y_label=clean_line(y_label, max_len=MAX_LEGEND),
            jump=jump,
        )
        picture = self._picture
        if spec == self._spec and picture is not None and picture.size == self._picture_key():
            return  # the same data at the same size: the same picture
        self._spec = spec
        self._refresh_if_changed()

    def _plot_spec(self, width: int, height: int) -> None:
        """Plot the stored spec for a widget of ``width`` x ``height`` cells."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        spec = self._spec
        if spec is None:
            return
        plt.title(spec.title)
        span, end_ts = spec.span, spec.end
        plt.xlim(-span, 0)
        ticks = time_ticks(end_ts - span * 60.0, end_ts, max(1, width - Y_AXIS_COLUMNS), spec.jump)
        plt.xticks([x for x, _ in ticks], [label for _, label in ticks])
        names: list[str] = []
        for index, one in enumerate(spec.series):
            if not one.points:
                continue
            xs = [(t - end_ts) / 60.0 for t, _ in one.points]
            ys = [v for _, v in one.points]
            name = clean_line(one.name, max_len=MAX_LEGEND)
            names.append(name)
            plt.plot(xs, ys, label=name, color=PALETTE[index % len(PALETTE)])
        bottom, top = spec.ylim
        plt.ylim(bottom, top)
        for threshold in spec.thresholds:
            plt.hline(threshold.value, threshold.color)
        self._plot_markers(spec, width, height, names, bottom, top)
        if not names:
            plt.text("no data yet", x=-span / 2, y=(bottom + top) / 2)
        plt.xlabel("time (UTC)")
        if spec.y_label:
            plt.ylabel(spec.y_label)

    def _plot_markers(
        self, spec: _Spec, width: int, height: int, names: list[str], bottom: float, top: float
    ) -> None:
        """Draw each marker's line, and its label where it fits (see :func:`place_labels`)."""
        plt = self.plt
        plot_width = max(1, width - Y_AXIS_COLUMNS)
        plot_rows = max(1, height - CHROME_ROWS)
        visible: list[tuple[float, Marker]] = []
        for marker in spec.markers:
            x = (marker.time.timestamp() - spec.end) / 60.0
            if -spec.span <= x <= 0:
                visible.append((x, marker))
                plt.vline(x, "red" if marker.kind == "rollback" else "yellow")
        columns = [round((x + spec.span) / spec.span * (plot_width - 1)) for x, _ in visible]
        legend = [(row, 0, len(name) + 6) for row, name in enumerate(names)]
        spec.placed = place_labels(
            columns, [m.label for _, m in visible], plot_width, plot_rows, legend
        )
        step = (top - bottom) / max(1, plot_rows - 1)
        per_column = spec.span / max(1, plot_width - 1)
        for label in spec.placed:
            marker = visible[label.index][1]
            plt.text(
                label.text,
                x=-spec.span + label.column * per_column,
                y=top - label.row * step,
                color="red" if marker.kind == "rollback" else "yellow",
                alignment="left",
            )

    def _refresh_if_changed(self) -> None:
        """Repaint only the cells that differ from what is on screen.

        Plots the spec at the widget's size and compares the picture with the
        one on screen, row by row: unchanged rows are not repainted, and a
        changed row only from its first to its last changed cell. Nothing is repainted when
        the picture is the same, so an idle screen does not rewrite the
        terminal; before the first layout the whole widget is refreshed.
        """
        if not self.size.area:
            self._picture = None
            self.refresh()
            return
        old = self._picture
        built = self._build()
        if built == self._last_built and old is not None and old.size == self._picture_key():
            return
        picture = _Picture.of(built, self._picture_key(), old)
        self._last_built = built
        self._picture = picture
        slices = [(one, one.region.x - self.region.x, one.size.width) for one in self._slices()]
        if old is None or old.size != picture.size:
            self.refresh()
            for one, _, _ in slices:
                one.refresh()
            return
        # One region per row and slice, from its first to its last changed cell: a
        # terminal update writes a widget's line from its left edge to the end of the
        # region, so two regions on one row of a widget would write its start twice.
        spans: dict[tuple[int, int], tuple[int, int]] = {}  # (slice, row): columns in it
        for row, start, end in old.changes(picture):
            for index, (_, offset, width) in enumerate(slices):
                first, last = max(start, offset) - offset, min(end, offset + width) - offset
                if first < last:
                    was = spans.get((index, row), (first, last))
                    spans[index, row] = (min(was[0], first), max(was[1], last))
        regions: dict[int, list[Region]] = {}
        for (index, row), (first, last) in spans.items():
            regions.setdefault(index, []).append(Region(first, row, last - first, 1))
        for index, dirty in regions.items():
            slices[index][0].refresh(*dirty)

    def _slices(self) -> list[_Slice]:
        """Return the slices the chart is drawn by, left to right."""
        return [child for child in self.children if isinstance(child, _Slice)]

    def _build(self) -> str:
        """Plot the spec at the widget's size and return plotext's ANSI picture."""
        width, height = self.size.width, self.size.height
        self.builds += 1
        self._plot_spec(width, height)
        self._plot.plotsize(width, height)
        self._plot._set_size(width, height)
        self._plot.theme(self._get_plotext_theme_name(self.app.theme))
        return str(self._plot.build())

    def _picture_key(self) -> tuple[int, int, str]:
        """Return what a built picture depends on besides the spec: size and theme."""
        return self.size.width, self.size.height, self.app.theme

    def render(self) -> RenderResult:
        size = self._picture_key()
        picture = self._picture
        if picture is None or picture.size != size:
            built = self._build()
            self._last_built = built
            picture = self._picture = _Picture.of(built, size)
        return picture.text


class _Slice(Widget):
    """Some columns of a :class:`TimeChart`, showing the same cells as the chart under them."""

    def render(self) -> RenderResult:
        chart = self.parent
        if not isinstance(chart, TimeChart) or not self.size.width:
            return Text()
        chart.render()  # the picture of the chart's current size
        picture = chart._picture
        if picture is None:  # pragma: no cover - render makes one
            return Text()
        first = self.region.x - chart.region.x
        last = first + self.size.width
        return Text("\n").join(line[first:last] for line in picture.texts)


#: Changed cells closer than this on one row are repainted as one span.
MERGE_GAP = 4


def _blanks_merged(plain: str, styles: list[object]) -> Text:
    """Return ``plain`` styled by ``styles`` (one per character, ``None`` for none), each
    blank taking the style of the cell before it (the first blanks: after them) when
    that style differs only in the colour of the text.

    A blank looks the same in either style, and a terminal update writes the
    colours again at every change of style: plotext gives each label, line and
    gap its own style. ``styles`` is updated in place.
    """
    # A blank that takes a neighbour's style keeps its look, so the looks are read once.
    looks = [_blank_look(style) for style in styles]
    for order in (range(1, len(plain)), range(len(plain) - 2, -1, -1)):
        step = -1 if order.step > 0 else 1
        for column in order:
            near = styles[column + step]
            if (
                plain[column] == " "
                and near != styles[column]
                and looks[column + step] == looks[column]
            ):
                styles[column] = near
    text = Text(plain)
    start = 0
    for column in range(1, len(plain) + 1):
        if column == len(plain) or styles[column] != styles[start]:
            style = styles[start]
            if isinstance(style, Style):
                text.spans.append(Span(start, column, style))
            start = column
    return text


@functools.lru_cache(maxsize=1024)
def _blank_look(style: object) -> object:
    """Return what a blank in ``style`` looks like: its background colour (``None`` for
    the widget's), or the style itself when it has an attribute (reverse, underline...)
    that may show on a blank. A blank without a style looks like one without a background.

    Cached by style: a chart's picture has a few styles over thousands of cells.
    """
    if style is None:
        return None
    if isinstance(style, Style) and style.without_color == Style():
        return style.bgcolor
    return style


def _look(cell: tuple[str, object]) -> object:
    """Return what a cell (character, style) looks like: a blank by its background."""
    char, style = cell
    return (" ", _blank_look(style)) if char == " " else cell


@dataclass(frozen=True)
class _Picture:
    """A built chart: its text, and each row's cells (character and style) to compare.

    ``size`` is what it was built for: (width, height, theme).
    """

    size: tuple[int, int, str]
    text: Text
    rows: tuple[tuple[tuple[str, object], ...], ...]
    #: plotext's ANSI lines and their decoded texts, to reuse in the next picture.
    lines: tuple[str, ...] = ()
    texts: tuple[Text, ...] = ()

    @classmethod
    def of(
        cls, built: str, size: tuple[int, int, str], previous: _Picture | None = None
    ) -> _Picture:
        """Return the picture of plotext's ANSI output ``built`` drawn at ``size``.

        A line equal to the same line of ``previous`` (drawn at the same size)
        reuses its decoding: a new point changes a few lines of a chart.
        """
        lines = tuple(built.split("\n"))
        reuse = previous if previous is not None and previous.size == size else None
        texts: list[Text] = []
        rows: list[tuple[tuple[str, object], ...]] = []
        for index, line in enumerate(lines):
            if reuse is not None and index < len(reuse.lines) and reuse.lines[index] == line:
                texts.append(reuse.texts[index])
                rows.append(reuse.rows[index])
                continue
            # Each line on its own: plotext closes every style it opens on a line.
            text = AnsiDecoder().decode_line(line)
            styles: list[object] = [None] * len(text.plain)
            for span in text.spans:
                for column in range(span.start, min(span.end, len(styles))):
                    styles[column] = span.style
            text = _blanks_merged(text.plain, styles)
            texts.append(text)
            rows.append(tuple(zip(text.plain, styles, strict=True)))
        return cls(size, Text("\n").join(texts), tuple(rows), lines, tuple(texts))

    def changes(self, other: _Picture) -> list[tuple[int, int, int]]:
        """Return (row, first column, end column) of each run of cells that look different
        in ``other`` (a blank whose text colour alone changed looks the same)."""
        out: list[tuple[int, int, int]] = []
        empty: tuple[tuple[str, object], ...] = ()
        for row in range(max(len(self.rows), len(other.rows))):
            mine = self.rows[row] if row < len(self.rows) else empty
            theirs = other.rows[row] if row < len(other.rows) else empty
            if mine is theirs or mine == theirs:
                continue
            longest = max(len(mine), len(theirs))
            start = end = -1
            for column in range(longest):
                a = mine[column] if column < len(mine) else None
                b = theirs[column] if column < len(theirs) else None
                if a == b or (a is not None and b is not None and _look(a) == _look(b)):
                    continue
                if start >= 0 and column - end <= MERGE_GAP:
                    end = column + 1
                    continue
                if start >= 0:
                    out.append((row, start, end))
                start, end = column, column + 1
            if start >= 0:
                out.append((row, start, end))
        return out
