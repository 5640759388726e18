"""A :class:`~core.metrics.base.MetricsSource` that scrapes a model server's /metrics itself.

This is the embedded default: no Prometheus needed. Every :meth:`ScrapeSource.scrape_once`
GETs the endpoint, parses the text exposition with prometheus-client's parser
and appends ``(time, samples)`` to a bounded ring buffer (``capacity``
scrapes; the oldest fall off). Queries are evaluated over that buffer.

Query vocabulary (a deliberately small subset of PromQL)::

    name                       a sample name, e.g. model_requests_total or
    name{k="v",...}            model_prediction_score_bucket{le="0.5"}: its raw values
    rate(name{...}[d])         per-second rate of a counter over the trailing window d,
                               summed from the increases between consecutive scrapes
                               (a decrease is a counter reset: the new value is the increase)
    histogram_quantile(q, name{...}[d])
                               the q quantile of histogram ``name`` (its ``_bucket`` samples
                               summed by ``le``) over the trailing window d (default 1m)
    sum(expr)                  one series: the sum of expr's series at each scrape
    expr / expr                point-wise division (series matched by labels, or a single
                               series on one side applies to all); division by 0 drops the point

``d`` is a positive duration in the grammar of :mod:`core.durations` (``250ms``,
``30s``, ``5m``, ``1h30m``, ``2d``, or a number of seconds). Anything else
raises :class:`~core.errors.InvalidQuery` naming the vocabulary.

Alerts are evaluated locally from the :class:`Threshold` list given to the
constructor: a threshold fires when the latest value of its query exceeds
``above`` (no ``for`` duration, no pending state).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core import durations
from core.domain import Alert, Histogram, Series
from core.errors import BackendUnavailable, InvalidQuery, InvalidResponse
from core.metrics import exposition
from core.metrics.base import MetricsSource, SourceHealth
from core.metrics.drift import histogram_delta, quantile
from core.metrics.prometheus import parse_selector, series_name, step_for
from core.sanitize import redact_url

if TYPE_CHECKING:
    import httpx

VOCABULARY = (
    'name{k="v"}, rate(name{k="v"}[d]), histogram_quantile(q, name{k="v"}[d]), '
    "sum(expr), expr / expr"
)

_NAME = r"[A-Za-z_:][A-Za-z0-9_:]*"
_SELECTOR = re.compile(rf"(?P<name>{_NAME})\s*(?:\{{(?P<labels>[^{{}}]*)\}})?")
_RATE = re.compile(r"rate\((?P<sel>[^\[\]()]+)\[(?P<d>[^\]]+)\]\)")
_QUANTILE = re.compile(
    r"histogram_quantile\((?P<q>[0-9.eE+-]+),(?P<sel>[^\[\]()]+)(?:\[(?P<d>[^\]]+)\])?\)"
)
_DEFAULT_QUANTILE_WINDOW = 60.0

Labels = tuple[tuple[str, str], ...]
#: One scrape: sample name -> [(sorted labels, value)].
Samples = dict[str, list[tuple[Labels, float]]]


def _window(text: str) -> float:
    """Return the seconds of the range selector duration ``text`` (:mod:`core.durations`).

    Raises InvalidQuery when it is not a duration or is zero.
    """
    try:
        seconds = durations.parse(text)
    except durations.DurationError as exc:
        raise InvalidQuery(f"{exc} in a range selector") from None
    if seconds <= 0:
        raise InvalidQuery(f'invalid duration "{text}" in a range selector: it must be positive')
    return seconds


@dataclass(frozen=True, slots=True)
class Threshold:
    """A locally evaluated alert: fires while the latest value of ``query`` exceeds ``above``."""

    name: str
    query: str
    above: float
    severity: str = "warning"
    summary: str = ""


@dataclass(frozen=True, slots=True)
class _Scrape:
    time: float
    samples: Samples
    # Values derived from this scrape alone (aggregated histograms), computed once.
    derived: dict[tuple[str, str], Histogram | None] = field(default_factory=dict, compare=False)


def parse_exposition(text: str) -> Samples:
    """Return the samples of a text exposition (Prometheus or OpenMetrics text).

    Counts must be counts: counters (and ``*_total`` samples), a histogram's
    ``_bucket`` and a histogram's or summary's ``_count`` must be finite and
    not negative, and cumulative buckets must not decrease as ``le`` grows
    (gauges may hold any value, NaN included). Empty text gives no samples.
    Raises ValueError when the text does not parse or breaks those rules.
    """
    out: Samples = {}
    bounds: dict[tuple[str, Labels], list[tuple[float, float]]] = {}
    for family_type, name, sample_labels, value in exposition.samples(text):
        key = (family_type, name, id(sample_labels))
        kind = _KINDS.get(key)
        if kind is None or kind[0] is not sample_labels:
            kind = _kind(family_type, name, sample_labels)
            if len(_KINDS) >= _MAX_KINDS:
                _KINDS.clear()
            _KINDS[key] = kind
        _, labels, is_count, bucket = kind
        if is_count and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}{dict(labels)}: {value!r} is not a count")
        if bucket is not None:
            rest, le = bucket
            bounds.setdefault((name, rest), []).append((le, value))
        out.setdefault(name, []).append((labels, value))
    for (name, rest), pairs in bounds.items():
        pairs.sort()
        for (le0, c0), (le1, c1) in itertools.pairwise(pairs):
            if c1 < c0:
                raise ValueError(
                    f"{name}{dict(rest)}: cumulative buckets decrease "
                    f"(le={le0:g}: {c0:g}, le={le1:g}: {c1:g})"
                )
    return out


#: (its labels dict, sorted labels, whether it is a count, (labels but ``le``, ``le``) of
#: a bucket else None) of one sample: see :func:`_kind`.
_Kind = tuple[dict[str, str], Labels, bool, tuple[Labels, float] | None]
#: The kinds of the samples read before, by (family type, name, id of the labels dict).
#: :func:`core.metrics.exposition.simple_samples` gives a line read before the same labels
#: dict, so a scrape works out each sample's kind once; the dict is kept in the entry and
#: compared, so an id used again by another dict is not taken for it. Emptied when full.
_KINDS: dict[tuple[str, str, int], _Kind] = {}
_MAX_KINDS = 4096


def _kind(family_type: str, name: str, sample_labels: dict[str, str]) -> _Kind:
    """Return what :func:`parse_exposition` checks and keeps of a sample (see :data:`_Kind`).

    Raises ValueError when a bucket's ``le`` is not a bound.
    """
    counted = family_type in ("counter", "histogram", "summary", "gaugehistogram")
    labels = tuple(sorted(sample_labels.items()))
    is_bucket = name.endswith("_bucket") and "le" in sample_labels
    is_count = (
        is_bucket
        or name.endswith("_total")
        or (counted and name.endswith("_count"))
        or (family_type == "counter" and not name.endswith("_created"))
    )
    bucket = None
    if is_bucket:
        bucket = tuple(kv for kv in labels if kv[0] != "le"), _le(sample_labels["le"], name)
    return sample_labels, labels, is_count, bucket


def _le(text: str, name: str) -> float:
    """Return a bucket's ``le`` bound; raises ValueError when it is not a number."""
    value = float(text)  # ValueError for a non-number; "+Inf" is float("inf")
    if math.isnan(value):
        raise ValueError(f"{name}: le={text!r} is not a bound")
    return value


def _split_top(expr: str, sep: str) -> list[str]:
    """Split ``expr`` on ``sep`` outside parentheses, braces, brackets and quotes."""
    parts, depth, quoted, last = [], 0, False, 0
    for i, ch in enumerate(expr):
        if ch == '"' and (i == 0 or expr[i - 1] != "\\"):
            quoted = not quoted
        elif quoted:
            continue
        elif ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(expr[last:i])
            last = i + 1
    parts.append(expr[last:])
    return parts


class ScrapeSource(MetricsSource):
    """Metrics scraped from one /metrics endpoint into a bounded ring buffer.

    ``interval`` is the period of the optional background scraper
    (:meth:`start`); the console's poller may call :meth:`scrape_once`
    itself instead. ``capacity`` is the number of scrapes kept, ``timeout``
    the seconds allowed per GET. ``selector`` (``{k="v"}``) is merged into
    the histogram metrics of :meth:`histogram_window`/:meth:`histogram_range`.
    ``clock`` gives the unix time recorded for each scrape.
    """

    def __init__(
        self,
        url: str,
        interval: float = 1.0,
        capacity: int = 3600,
        timeout: float = 2.0,
        thresholds: Iterable[Threshold] = (),
        headers: dict[str, str] | None = None,
        selector: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        # ``url`` is what messages show: a password or token in it is redacted.
        self.url = redact_url(url)
        self._endpoint = url
        self.clock = clock
        self.interval = interval
        self.timeout = timeout
        self.selector = selector
        self.thresholds = tuple(thresholds)
        self.headers = dict(headers or {})
        self.last_success: datetime | None = None
        self.last_error: str = ""
        self._buffer: deque[_Scrape] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None  # created on the first scrape
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- collection -----------------------------------------------------

    def scrape_once(self) -> float:
        """GET the endpoint once and append the result; return the scrape's unix time.

        Raises BackendUnavailable when the endpoint cannot be reached or answers
        an error status, InvalidResponse (a BackendUnavailable) when it serves
        text that does not parse or whose counts are not counts (an HTML page,
        NaN or negative counters, decreasing buckets; see
        :func:`parse_exposition`); the buffer keeps its data and
        :meth:`health` reports the error.
        """
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=httpx.Timeout(self.timeout), headers=self.headers)
        at = self.clock()
        try:
            response = self._client.get(self._endpoint)
            response.raise_for_status()
            samples = parse_exposition(response.text)
        except httpx.TimeoutException as exc:
            self.last_error = f"{self.url} did not answer within {self.timeout:g}s"
            raise BackendUnavailable(self.last_error) from exc
        except httpx.HTTPError as exc:
            self.last_error = redact_url(f"cannot scrape {self.url}: {exc}")
            raise BackendUnavailable(self.last_error) from exc
        except ValueError as exc:
            self.last_error = f"{self.url} served metrics that do not parse: {exc}"
            raise InvalidResponse(self.last_error) from exc
        self._append(at, samples)
        return at

    def ingest(self, text: str, at: float) -> None:
        """Append an exposition ``text`` observed at unix time ``at`` (no HTTP).

        A scrape at or before the latest one replaces it. Raises InvalidResponse
        when the text does not parse or its counts are not counts (see
        :func:`parse_exposition`); the buffer then keeps its data.
        """
        try:
            samples = parse_exposition(text)
        except ValueError as exc:
            raise InvalidResponse(f"exposition does not parse: {exc}") from exc
        self._append(at, samples)

    def _append(self, at: float, samples: Samples) -> None:
        with self._lock:
            if self._buffer and at <= self._buffer[-1].time:
                # Same (or, after a clock step back, earlier) time: the newer samples win.
                self._buffer[-1] = _Scrape(self._buffer[-1].time, samples)
            else:
                self._buffer.append(_Scrape(at, samples))
        self.last_success = datetime.fromtimestamp(at, UTC)
        self.last_error = ""

    def refresh(self) -> None:
        """Scrape once now (see :meth:`scrape_once`); raises BackendUnavailable."""
        self.scrape_once()

    def warm_up(self) -> None:
        """Make sure the buffer holds two scrapes, ``interval`` apart, so windows have an increase.

        Scrapes now when the buffer is empty, then once more after ``interval``
        seconds when it holds only one scrape. Raises BackendUnavailable.
        """
        if not self._buffer:
            self.scrape_once()
        if len(self._buffer) < 2:
            time.sleep(self.interval)
            self.scrape_once()

    def health(self) -> SourceHealth:
        """Return the latest scrape error ("" after a good one) and the last good scrape's time."""
        return SourceHealth(self.last_error, self.last_success)

    def collected_until(self, end: datetime) -> datetime | None:
        """Return the time of the latest scrape in the buffer at or before ``end`` (None: none)."""
        limit = end.timestamp()
        with self._lock:
            # Newest first: a live window ends at or just before the latest scrape.
            at = next((s.time for s in reversed(self._buffer) if s.time <= limit), None)
        return None if at is None else datetime.fromtimestamp(at, UTC)

    def start(self) -> None:
        """Scrape every ``interval`` seconds in a daemon thread until :meth:`stop`; idempotent."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.scrape_once()
                except BackendUnavailable:
                    pass  # recorded in last_error; old data stays queryable
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name=f"scrape {self.url}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background scraper (if running) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + self.interval + 1)
            self._thread = None

    def close(self) -> None:
        """Stop scraping and close the HTTP connection; the buffer stays readable."""
        self.stop()
        if self._client is not None:
            self._client.close()
            self._client = None

    def _snapshot(self) -> list[_Scrape]:
        with self._lock:
            return list(self._buffer)

    def clear_cache(self) -> None:
        """Forget the histograms aggregated per scrape (they are recomputed on demand)."""
        for scrape in self._snapshot():
            scrape.derived.clear()

    def __len__(self) -> int:
        return len(self._buffer)

    # -- query evaluation ----------------------------------------------

    def _select(self, scrapes: list[_Scrape], selector: str) -> dict[Labels, list[tuple]]:
        m = _SELECTOR.fullmatch(selector.strip())
        if not m:
            raise InvalidQuery(
                f"unsupported query {selector!r}: scrape sources understand {VOCABULARY}"
            )
        name, wanted = m.group("name"), parse_selector(m.group("labels") or "")
        out: dict[Labels, list[tuple]] = {}
        for s in scrapes:
            for labels, value in s.samples.get(name, ()):
                if wanted and any(dict(labels).get(k) != v for k, v in wanted.items()):
                    continue
                out.setdefault(labels, []).append((s.time, value))
        return out

    def _evaluate(self, query: str, scrapes: list[_Scrape]) -> dict[Labels, list[tuple]]:
        """Return labels -> [(time, value)] for ``query`` at every scrape of ``scrapes``."""
        expr = _strip_space(query)
        if not expr:
            raise InvalidQuery("empty query")
        parts = _split_top(expr, "/")
        if len(parts) == 2:
            return _divide(self._evaluate(parts[0], scrapes), self._evaluate(parts[1], scrapes))
        if len(parts) > 2:
            raise InvalidQuery(f"unsupported query {query!r}: only one division is understood")
        if expr.startswith("sum(") and expr.endswith(")") and _balanced(expr[4:-1]):
            return _sum(self._evaluate(expr[4:-1], scrapes))
        m = _RATE.fullmatch(expr)
        if m:
            window = _window(m.group("d"))
            return {k: _rate(v, window) for k, v in self._select(scrapes, m.group("sel")).items()}
        m = _QUANTILE.fullmatch(expr)
        if m:
            q = float(m.group("q"))
            window = _window(m.group("d")) if m.group("d") else _DEFAULT_QUANTILE_WINDOW
            hs = self._histograms(scrapes, m.group("sel"))
            points = []
            for t, h in _windows(hs, [t for t, _ in hs], window):
                value = quantile(q, h)
                if value is not None:
                    points.append((t, value))
            return {(): points} if points else {}
        if _SELECTOR.fullmatch(expr):
            return self._select(scrapes, expr)
        raise InvalidQuery(f"unsupported query {query!r}: scrape sources understand {VOCABULARY}")

    def _histograms(self, scrapes: list[_Scrape], metric: str) -> list[tuple[float, Histogram]]:
        """Return (time, cumulative histogram summed by le) of ``metric`` at every scrape.

        Each scrape's aggregate is kept with the scrape: a refresh after a new
        scrape only aggregates that one.
        """
        m = _SELECTOR.fullmatch(metric.strip())
        if not m:
            raise InvalidQuery(f"invalid histogram metric {metric!r}")
        key = (metric.strip(), self.selector)
        name = m.group("name")
        if name.endswith("_bucket"):
            name = name[: -len("_bucket")]
        # Like PromQL's h{model="b",model="a"}: the selector's and the metric's matchers all apply.
        wanted = [
            *parse_selector(self.selector).items(),
            *parse_selector(m.group("labels") or "").items(),
        ]
        matches: dict[Labels, float | None] = {}  # label set -> its le, None if not selected
        out = []
        for s in scrapes:
            if key in s.derived:
                h = s.derived[key]
            else:
                by_le: dict[float, float] = {}
                for labels, value in s.samples.get(f"{name}_bucket", ()):
                    le = matches.get(labels, -math.inf)
                    if le == -math.inf:
                        d = dict(labels)
                        selected = "le" in d and all(d.get(k) == v for k, v in wanted)
                        le = matches[labels] = float(d["le"]) if selected else None
                    if le is not None:
                        by_le[le] = by_le.get(le, 0.0) + value
                h = None
                if by_le:
                    bounds = tuple(sorted(by_le))
                    h = Histogram(bounds, tuple(by_le[b] for b in bounds))
                s.derived[key] = h
            if h is not None:
                out.append((s.time, h))
        return out

    def range_query(
        self, query: str, start: datetime, end: datetime, *, width: int = 120
    ) -> list[Series]:
        """Return the series of ``query`` (see the module vocabulary) over [start, end].

        At most about ``width`` points per series (the last point of each
        column's time slot). Raises InvalidQuery for a query outside the vocabulary.
        """
        t0, t1 = start.timestamp(), end.timestamp()
        # Scrapes up to the longest trailing window before the range feed rate and quantile;
        # older ones cannot change a point inside the range.
        lookback = max((_window(d) for d in re.findall(r"\[([^\]]+)\]", query)), default=0.0)
        lookback = max(lookback, _DEFAULT_QUANTILE_WINDOW)
        scrapes = self._snapshot()
        first = max(bisect.bisect_right([x.time for x in scrapes], t0 - lookback) - 1, 0)
        result = self._evaluate(query, [x for x in scrapes[first:] if x.time <= t1])
        out = []
        for labels, points in result.items():
            inside = [(t, v) for t, v in points if t0 <= t <= t1]
            out.append(_series(labels, _downsample(inside, t0, t1, width), query))
        return [s for s in out if s.points]

    def instant_query(self, query: str, at: datetime | None = None) -> list[Series]:
        """Return the latest value of each series of ``query`` at or before ``at`` (now).

        Raises InvalidQuery for a query outside the vocabulary.
        """
        limit = at.timestamp() if at is not None else float("inf")
        scrapes = [s for s in self._snapshot() if s.time <= limit]
        out = []
        for labels, points in self._evaluate(query, scrapes).items():
            if points:
                out.append(_series(labels, [points[-1]], query))
        return out

    def histogram_window(self, metric: str, start: datetime, end: datetime) -> Histogram:
        """Return the samples of histogram ``metric`` observed between the scrapes at the edges.

        The baseline is the last scrape at or before ``start`` (or the first
        scrape after it); counter resets inside the window are handled. An
        empty Histogram when fewer than two scrapes are available.
        """
        t0, t1 = start.timestamp(), end.timestamp()
        hs = self._histograms(_between(self._snapshot(), t0, t1), metric)
        result = _windows(hs, [t1], t1 - t0)
        return result[0][1] if result else Histogram((), ())

    def histogram_range(
        self, metric: str, start: datetime, end: datetime, window: float, *, width: int = 120
    ) -> list[tuple[float, Histogram]]:
        """Return ``(t, histogram of (t - window, t])`` for t stepping over [start, end].

        The step comes from :func:`~core.metrics.prometheus.step_for`; the
        times are its multiples (:func:`grid_times`), so a window keeps its
        time, and its value, from one refresh to the next. Times before the
        first scrape are left out.
        """
        times = grid_times(start, end, step_for(start, end, width))
        if not times:
            return []
        scrapes = _between(self._snapshot(), times[0] - window, times[-1])
        return _windows(self._histograms(scrapes, metric), times, window)

    def alerts(self) -> list[Alert]:
        """Return an Alert for every threshold whose query's latest value exceeds it."""
        out = []
        for th in self.thresholds:
            for s in self.instant_query(th.query):
                t, value = s.points[-1]
                if value > th.above:
                    out.append(
                        Alert(
                            name=th.name,
                            state="firing",
                            severity=th.severity,
                            summary=th.summary or f"{th.query} = {value:.4g} > {th.above:g}",
                            since=datetime.fromtimestamp(t, UTC),
                            labels=dict(s.labels),
                        )
                    )
        return out


# -- helpers --------------------------------------------------------------


def _strip_space(expr: str) -> str:
    """Remove whitespace outside double-quoted label values."""
    out, quoted = [], False
    for i, ch in enumerate(expr):
        if ch == '"' and (i == 0 or expr[i - 1] != "\\"):
            quoted = not quoted
        if quoted or not ch.isspace():
            out.append(ch)
    return "".join(out)


def _balanced(expr: str) -> bool:
    depth = 0
    for ch in expr:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def _series(labels: Labels, points: list[tuple[float, float]], query: str) -> Series:
    d = dict(labels)
    return Series(series_name(d, query), tuple(points), d)


def _rate(points: list[tuple[float, float]], window: float) -> list[tuple[float, float]]:
    """Per-second rate over the trailing ``window`` at each point, counter resets handled."""
    times = [t for t, _ in points]
    prefix = [0.0]
    for (_, prev), (_, cur) in itertools.pairwise(points):
        prefix.append(prefix[-1] + (cur - prev if cur >= prev else cur))
    out = []
    for i, t in enumerate(times):
        j = bisect.bisect_left(times, t - window)
        if j < i and times[i] > times[j]:
            out.append((t, (prefix[i] - prefix[j]) / (times[i] - times[j])))
    return out


def _sum(result: dict[Labels, list[tuple]]) -> dict[Labels, list[tuple]]:
    totals: dict[float, float] = {}
    for points in result.values():
        for t, v in points:
            totals[t] = totals.get(t, 0.0) + v
    return {(): sorted(totals.items())} if totals else {}


def _divide(
    num: dict[Labels, list[tuple]], den: dict[Labels, list[tuple]]
) -> dict[Labels, list[tuple]]:
    out = {}
    for labels, points in num.items():
        other = den.get(labels) or (next(iter(den.values())) if len(den) == 1 else None)
        if other is None:
            continue
        by_time = dict(other)
        out[labels] = [(t, v / by_time[t]) for t, v in points if by_time.get(t)]
    if len(num) == 1 and len(den) > 1:
        ((_, points),) = num.items()
        by_time = dict(points)
        for labels, dpoints in den.items():
            out[labels] = [(t, by_time[t] / d) for t, d in dpoints if d and t in by_time]
    return out


def grid_times(start: datetime, end: datetime, step: float) -> list[float]:
    """Return the multiples of ``step`` (unix seconds) in [start, end], oldest first.

    Anchored at the epoch rather than at ``start``: a range that moves on by
    a few seconds keeps the same times, so a refresh recomputes nothing it
    already had and a chart does not shift under the reader.
    """
    step = max(step, 1e-9)
    first = math.ceil(start.timestamp() / step - 1e-9)
    last = math.floor(end.timestamp() / step + 1e-9)
    return [k * step for k in range(first, last + 1)]


def _downsample(
    points: list[tuple[float, float]], t0: float, t1: float, width: int
) -> list[tuple[float, float]]:
    """Keep the last point of each time slot of [t0, t1]: at most ``width`` slots.

    The slots are ``(t1 - t0) / (width - 1)`` seconds long and anchored at the
    epoch, so the points kept do not change as the range moves on.
    """
    if len(points) <= width or t1 <= t0:
        return points
    slot = (t1 - t0) / max(width - 1, 1)
    kept: dict[int, tuple[float, float]] = {}
    for t, v in points:
        kept[math.floor(t / slot)] = (t, v)
    return [kept[k] for k in sorted(kept)]


@functools.lru_cache(maxsize=16384)
def _increase(later: Histogram, earlier: Histogram) -> tuple[float, ...]:
    """Return the cumulative counts observed between two snapshots of one histogram (see
    :func:`~core.metrics.drift.histogram_delta`).

    Cached by value: a refresh sums the same consecutive scrapes' increases again.
    """
    return histogram_delta(later, earlier).cumulative


def _between(scrapes: list[_Scrape], t0: float, t1: float) -> list[_Scrape]:
    """Return the scrapes windows over [t0, t1] need, oldest first: from the last one at
    or before ``t0`` (the first one when none is) to the last one at or before ``t1``."""
    stamps = [s.time for s in scrapes]
    first = max(bisect.bisect_right(stamps, t0) - 1, 0)
    return scrapes[first : bisect.bisect_right(stamps, t1)]


def _windows(
    hs: list[tuple[float, Histogram]], times: list[float], window: float
) -> list[tuple[float, Histogram]]:
    """Return (t, increase over (t - window, t]) for each t, from cumulative snapshots ``hs``.

    Increases are summed between consecutive snapshots (a decrease or a change
    of bounds counts as a reset). The baseline is the last snapshot at or
    before ``t - window``, or the first snapshot when the buffer starts later.
    """
    if len(hs) < 2:
        return []
    bounds = hs[-1][1].bounds
    stamps = [t for t, _ in hs]
    spans = []
    for t in times:
        end = bisect.bisect_right(stamps, t) - 1
        base = max(bisect.bisect_right(stamps, t - window) - 1, 0)
        if end > base:
            spans.append((t, base, end))
    if not spans:
        return []
    # Prefix sums of the increases, only over the snapshots some window needs.
    lo, hi = min(b for _, b, _ in spans), max(e for _, _, e in spans)
    prefix: list[list[float]] = [[0.0] * len(bounds)]
    for (_, prev), (_, cur) in itertools.pairwise(hs[lo : hi + 1]):
        if cur.bounds != bounds:
            inc: tuple[float, ...] | list[float] = [0.0] * len(bounds)
        elif prev.bounds != cur.bounds:
            inc = cur.cumulative
        else:
            inc = _increase(cur, prev)
        prefix.append([a + b for a, b in zip(prefix[-1], inc, strict=True)])
    out = []
    for t, base, end in spans:
        counts = tuple(a - b for a, b in zip(prefix[end - lo], prefix[base - lo], strict=True))
        out.append((t, Histogram(bounds, counts)))
    return out
