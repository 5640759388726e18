"""Metrics and drift: time series, histograms, drift scores, alerts and release markers.

Part of :mod:`core.domain` (import the names from there).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Series:
    """A named time series: ``points`` are (unix seconds, value) pairs, oldest first."""

    name: str
    points: tuple[tuple[float, float], ...]
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Histogram:
    """A classic histogram as Prometheus exposes it.

    ``bounds`` are the upper bounds (``le``) in increasing order, the last one
    ``float('inf')``; ``cumulative`` are the matching cumulative counts.
    """

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]

    @property
    def total(self) -> float:
        """The total sample count (the ``+Inf`` bucket)."""
        return self.cumulative[-1] if self.cumulative else 0.0


class DriftBand(enum.StrEnum):
    """Where a drift score falls relative to the configured thresholds."""

    OK = "ok"
    WARN = "warn"
    ALERT = "alert"
    NOT_ENOUGH_DATA = "not enough data"


@dataclass(frozen=True, slots=True)
class DriftScore:
    """A drift score, or the reason there is none.

    ``value`` is None exactly when ``band`` is ``NOT_ENOUGH_DATA``; ``missing``
    then says what was missing: ``"reference"`` (no reference to compare
    with), ``"samples"`` (a side has too few samples) or ``""`` (another
    reason, in ``reason``).
    """

    method: str  # "psi" or "js"
    value: float | None
    band: DriftBand
    samples: float = 0.0
    reason: str = ""
    missing: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    """A firing or pending alert (from Prometheus or from a local threshold)."""

    name: str
    state: str  # "firing", "pending"
    severity: str = ""
    summary: str = ""
    since: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Marker:
    """A release event drawn as a vertical line on every chart of a model."""

    time: datetime
    label: str
    kind: str  # "rollout" or "rollback"
    target: str = ""
