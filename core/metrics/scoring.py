"""The one drift scorer: a window of live data against the model's configured reference.

The guard, the Drift screen, ``mrc status`` and the exporter all score drift
with :class:`DriftScorer`, so they judge a model against the same reference:

* ``training`` — the histograms shipped with the model (a loader reads them
  from the repository at the deployed commit; see
  :mod:`core.services.references`);
* ``before_release`` — the ``window`` seconds before the latest release
  marker at or before the end of the scored window;
* ``fixed`` — the window [reference_start, reference_end].

A missing reference or too few samples on either side is the band
NOT_ENOUGH_DATA with the reason, never a made-up number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from core.domain import DriftBand, DriftScore, Histogram, Marker
from core.metrics import drift
from core.metrics.base import MetricsSource
from core.metrics.reference import Reference

if TYPE_CHECKING:
    from core.config import DriftConfig, GuardConfig, MetricsConfig

REFERENCE_KINDS = ("training", "before_release", "fixed")
_FEATURE_LABEL = re.compile(r'feature\s*=\s*"([^"]*)"')

#: Returns the training reference, or None and the reason it is missing.
TrainingLoader = Callable[[], tuple[Reference | None, str]]
#: Returns the model's release markers (rollouts and rollbacks, any order).
MarkerLoader = Callable[[], Sequence[Marker]]


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """Everything the scorer and the Drift screen need to know about one model's drift.

    ``prediction_histogram`` and ``feature_histograms`` are classic histogram
    metric names (optionally with a ``{k="v"}`` selector); ``error_rate``,
    ``latency_p95`` and ``throughput`` are queries in the source's language
    ("" to leave a panel out). ``window`` and the reference times are seconds
    and UTC datetimes. ``drift_alerts`` adds a local alert while the current
    score is in the warn/alert band; ``max_error_rate`` / ``max_latency_p95``
    add one while the latest error-rate / latency value exceeds them (the
    scrape source's locally evaluated thresholds; None for none).
    Raises ValueError for an unknown method or reference kind, or a fixed
    reference without both ends.
    """

    prediction_histogram: str
    feature_histograms: tuple[str, ...] = ()
    method: str = "psi"
    warn: float = 0.1
    alert: float = 0.25
    reference: str = "training"
    reference_start: datetime | None = None
    reference_end: datetime | None = None
    window: float = 600.0
    min_samples: float = 200
    error_rate: str = ""
    latency_p95: str = ""
    throughput: str = ""
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    drift_alerts: bool = True
    max_error_rate: float | None = None
    max_latency_p95: float | None = None

    def __post_init__(self) -> None:
        if self.method not in drift.METHODS:
            raise ValueError(f"unknown drift method {self.method!r}")
        if self.reference not in REFERENCE_KINDS:
            raise ValueError(f"unknown drift reference {self.reference!r}")
        if self.reference == "fixed" and (self.reference_start is None or not self.reference_end):
            raise ValueError("a fixed drift reference needs reference_start and reference_end")

    @classmethod
    def from_config(
        cls,
        metrics: MetricsConfig,
        drift_config: DriftConfig,
        guard: GuardConfig | None = None,
    ) -> DriftSettings:
        """Return the settings of a model's ``[model.metrics]`` and ``[model.drift]`` tables.

        With a ``scrape`` source the ``[model.guard]`` limits (``guard``) become
        locally evaluated alerts; Prometheus evaluates its own alerting rules.

        For a ``scrape`` source the panel entries may be bare metric names: a
        counter becomes ``sum(rate(name[1m]))`` and the latency histogram
        ``histogram_quantile(0.95, name[1m])``; expressions are kept as written.
        Raises ValueError as the constructor.
        """
        scrape = metrics.source == "scrape"

        def panel(text: str, kind: str) -> str:
            text = (text or "").strip()
            if not scrape or not text or "(" in text:
                return text
            if kind == "latency":
                return f"histogram_quantile(0.95, {text}[1m])"
            if text.endswith("_total"):
                return f"sum(rate({text}[1m]))"
            return text

        return cls(
            prediction_histogram=metrics.prediction_histogram,
            feature_histograms=tuple(metrics.feature_histograms),
            method=drift_config.method,
            warn=drift_config.warn,
            alert=drift_config.alert,
            reference=drift_config.reference,
            reference_start=drift_config.reference_start,
            reference_end=drift_config.reference_end,
            window=drift_config.window,
            min_samples=drift_config.min_samples,
            error_rate=panel(metrics.error_rate, "rate"),
            latency_p95=panel(metrics.latency_p95, "latency"),
            throughput=panel(metrics.throughput, "rate"),
            max_error_rate=guard.max_error_rate if scrape and guard is not None else None,
            max_latency_p95=guard.max_latency_p95 if scrape and guard is not None else None,
        )


def feature_name(metric: str) -> str:
    """Return the display name of a feature histogram: its ``feature`` label, else the metric."""
    m = _FEATURE_LABEL.search(metric)
    return m.group(1) if m else metric.partition("{")[0]


def not_enough(method: str, reason: str, missing: str = "") -> DriftScore:
    """Return the NOT_ENOUGH_DATA score of ``method`` with ``reason`` and what is
    ``missing`` (see :class:`~core.domain.DriftScore`)."""
    return DriftScore(method, None, DriftBand.NOT_ENOUGH_DATA, 0.0, reason, missing)


def _fmt_span(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def _fmt_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def no_training(reason: str = "no training reference histograms loaded") -> TrainingLoader:
    """Return a training loader that has no reference, for ``reason``."""
    return lambda: (None, reason)


def fixed_training(reference: Reference | Histogram) -> TrainingLoader:
    """Return a training loader that always answers ``reference`` (a bare Histogram is the
    prediction histogram)."""
    ref = Reference(reference) if isinstance(reference, Histogram) else reference
    return lambda: (ref, "")


class DriftScorer:
    """Scores windows of ``source`` against the reference ``settings`` configure.

    ``training`` loads the training reference (called on every scoring of a
    ``training`` reference; cache in the loader). ``markers`` returns the
    release markers (called on every scoring of a ``before_release``
    reference). Blocking: call it from a worker thread.
    """

    def __init__(
        self,
        source: MetricsSource,
        settings: DriftSettings,
        *,
        training: TrainingLoader | None = None,
        markers: MarkerLoader | None = None,
    ) -> None:
        self.source = source
        self.settings = settings
        self._training = training or no_training()
        self._markers = markers or (lambda: ())

    def markers(self) -> list[Marker]:
        """Return the release markers, oldest first."""
        return sorted(self._markers(), key=lambda m: m.time)

    def reference_window(self, end: datetime) -> tuple[datetime, datetime] | None:
        """Return the reference window for windows ending at ``end``; None for ``training``
        (and for ``before_release`` with no release marker at or before ``end``)."""
        s = self.settings
        if s.reference == "fixed":
            assert s.reference_start is not None and s.reference_end is not None
            return s.reference_start, s.reference_end
        if s.reference == "before_release":
            released = [m for m in self.markers() if m.time <= end]
            if not released:
                return None
            t = released[-1].time
            return t - timedelta(seconds=s.window), t
        return None

    def reference(self, metric: str, feature: str, end: datetime) -> tuple[Histogram | None, str]:
        """Return the reference histogram of ``metric`` and its description, or None and why
        it is missing. ``feature`` is "" for the prediction histogram, else the feature's name.

        Raises BackendUnavailable or InvalidQuery when a reference window cannot be read.
        """
        s = self.settings
        if s.reference == "training":
            training, why = self._training()
            if training is None:
                return None, why
            h = training.prediction if feature == "" else training.features.get(feature)
            if h is None:
                return None, f"training reference has no histogram for feature {feature!r}"
            return h, "training histograms"
        window = self.reference_window(end)
        if window is None:
            return None, "no release marker before the end of the range"
        h = self.source.histogram_window(metric, window[0], window[1])
        if s.reference == "fixed":
            return h, f"fixed window {_fmt_time(window[0])} – {_fmt_time(window[1])}"
        marker = [m for m in self.markers() if m.time == window[1]][-1]
        return h, f"{_fmt_span(s.window)} before {marker.label} ({_fmt_time(window[1])})"

    def judge(self, ref: Histogram | None, reason: str, current: Histogram) -> DriftScore:
        """Return the score of ``current`` against ``ref`` (NOT_ENOUGH_DATA with ``reason``
        when ``ref`` is None, or with the math's reason when either side is short)."""
        s = self.settings
        if ref is None:
            return not_enough(s.method, reason, "reference")
        try:
            return drift.score(ref, current, s.method, s.warn, s.alert, s.min_samples)
        except ValueError as exc:
            return not_enough(s.method, str(exc))

    def assess(self, start: datetime, end: datetime) -> tuple[DriftScore, str]:
        """Return the score of the prediction histogram over [start, end) against the
        reference, and the reference's description (or why there is none).

        Raises BackendUnavailable (InvalidResponse for a garbled answer) or InvalidQuery.
        """
        metric = self.settings.prediction_histogram
        if not metric:
            reason = "no prediction histogram configured"
            return not_enough(self.settings.method, reason), "none"
        ref, described = self.reference(metric, "", end)
        if ref is None:
            return not_enough(self.settings.method, described, "reference"), described
        current = self.source.histogram_window(metric, start, end)
        return self.judge(ref, described, current), described

    def score(self, start: datetime, end: datetime) -> DriftScore:
        """Return the drift of the prediction histogram over [start, end) against the reference.

        Band NOT_ENOUGH_DATA (with the reason, and ``missing`` "samples" or
        "reference") when either side is short or the reference is unavailable.
        Raises BackendUnavailable (InvalidResponse for a garbled answer) or InvalidQuery.
        """
        return self.assess(start, end)[0]

    def current(self, end: datetime) -> tuple[DriftScore, str]:
        """Return :meth:`assess` of the latest ``window`` seconds up to ``end``."""
        return self.assess(end - timedelta(seconds=self.settings.window), end)
