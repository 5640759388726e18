"""The MetricsSource protocol every metrics backend implements.

Sources are blocking and called from worker threads. An unreachable backend
raises :class:`~core.errors.BackendUnavailable` (the screen then marks its
data stale); a query the backend rejects raises
:class:`~core.errors.InvalidQuery` carrying the backend's own error text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from core.domain import Alert, Histogram, Series


@runtime_checkable
class MetricsSource(Protocol):
    """Where a model's live metrics come from."""

    def range_query(
        self, query: str, start: datetime, end: datetime, *, width: int = 120
    ) -> list[Series]:
        """Return the series of ``query`` between ``start`` and ``end``.

        ``width`` is the chart width in columns; the source picks a step of
        about one point per column (never more than 11,000 points).
        """
        ...

    def instant_query(self, query: str, at: datetime | None = None) -> list[Series]:
        """Return the value of ``query`` at ``at`` (now when None), one point per series."""
        ...

    def histogram_window(self, metric: str, start: datetime, end: datetime) -> Histogram:
        """Return the samples of classic histogram ``metric`` observed in [start, end).

        The result's cumulative counts are increases over the window.
        """
        ...

    def alerts(self) -> list[Alert]:
        """Return the alerts firing or pending for this model."""
        ...

    def close(self) -> None:
        """Release connections and stop background scrapers."""
        ...
