"""The MetricsSource interface every metrics backend implements.

Sources are blocking and called from worker threads. An unreachable backend
raises :class:`~core.errors.BackendUnavailable` (the screen then marks its
data stale); a query the backend rejects raises
:class:`~core.errors.InvalidQuery` carrying the backend's own error text.

The five abstract methods are what every source must answer. The optional
capabilities (:meth:`MetricsSource.start`, :meth:`MetricsSource.refresh`,
:meth:`MetricsSource.warm_up`, :meth:`MetricsSource.histogram_range`,
:meth:`MetricsSource.health`) have documented defaults here, so a caller
calls them on any source and never asks whether a source has them.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.domain import Alert, Histogram, Series


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """How a source's own data collection is doing.

    ``last_error`` is the message of the latest failed collection ("" when
    the latest one worked); ``last_success`` is when data was last collected
    (None: never, or a source that collects nothing in the background).
    """

    last_error: str = ""
    last_success: datetime | None = None


class MetricsSource(abc.ABC):
    """Where a model's live metrics come from."""

    # -- what every source answers ------------------------------------------

    @abc.abstractmethod
    def range_query(
        self, query: str, start: datetime, end: datetime, *, width: int = 120
    ) -> list[Series]:
        """Return the series of ``query`` between ``start`` and ``end``.

        ``width`` is the chart width in columns; the source picks a step of
        about one point per column (never more than 11,000 points).
        """

    @abc.abstractmethod
    def instant_query(self, query: str, at: datetime | None = None) -> list[Series]:
        """Return the value of ``query`` at ``at`` (now when None), one point per series."""

    @abc.abstractmethod
    def histogram_window(self, metric: str, start: datetime, end: datetime) -> Histogram:
        """Return the samples of classic histogram ``metric`` observed in [start, end).

        The result's cumulative counts are increases over the window.
        """

    @abc.abstractmethod
    def alerts(self) -> list[Alert]:
        """Return the alerts firing or pending for this model."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and stop background scrapers."""

    # -- optional capabilities, with their defaults -----------------------------

    def start(self) -> None:
        """Start collecting in the background; idempotent.

        Default: nothing (the backend keeps its own history). Sources with a
        background scraper start it here; they only have data while it runs.
        """
        return None

    def refresh(self) -> None:
        """Collect new data now, before a query.

        Default: nothing (every query asks the backend). A source that buffers
        scrapes scrapes once. Raises BackendUnavailable when that fails (the
        data already buffered stays queryable).
        """
        return None

    def warm_up(self) -> None:
        """Make window queries answerable in a process that just opened the source.

        Default: nothing (the backend keeps its own history). A source that
        buffers scrapes makes sure it holds at least two, one collection
        interval apart, so that a window has an increase. Blocks for up to that
        interval. Raises BackendUnavailable when a scrape fails.
        """
        return None

    def health(self) -> SourceHealth:
        """Return how background collection is doing.

        Default: ``SourceHealth()`` — no background collection, so nothing to
        report (errors are raised by each query instead).
        """
        return SourceHealth()

    def collected_until(self, end: datetime) -> datetime | None:
        """Return when the latest collection at or before ``end`` happened (None: none known).

        Data collected later cannot change a query that ends at ``end``, so a
        view up to ``end`` stays the same until this changes. Default: the
        latest collection (:meth:`health`'s ``last_success``), or ``end`` when
        that is later (one may have happened up to ``end``); None for a source
        without background collection. Sources that keep their collections'
        times override it with the exact answer.
        """
        last = self.health().last_success
        return None if last is None else min(last, end)

    def histogram_range(
        self, metric: str, start: datetime, end: datetime, window: float, *, width: int = 120
    ) -> list[tuple[float, Histogram]]:
        """Return ``(t, histogram of (t - window, t])`` for t stepping over [start, end].

        The step comes from :func:`~core.metrics.prometheus.step_for`, the
        times are its multiples (:func:`~core.metrics.scrape.grid_times`). Default:
        one :meth:`histogram_window` call per step; sources that can answer all
        windows at once override it. Raises BackendUnavailable or InvalidQuery
        as :meth:`histogram_window`.
        """
        from core.metrics.prometheus import step_for
        from core.metrics.scrape import grid_times

        out = []
        for t in grid_times(start, end, step_for(start, end, width)):
            at = datetime.fromtimestamp(t, UTC)
            out.append((t, self.histogram_window(metric, at - timedelta(seconds=window), at)))
        return out
