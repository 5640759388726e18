"""What the Drift screen draws, computed from a metrics source (no UI code here).

:class:`DriftModel` turns a source, the drift settings, the training reference
and the release markers into one :class:`DriftView` per refresh:

* the drift score over time: every point is the score of the window
  ``(t - window, t]`` of the prediction histogram against the reference;
* the prediction quantiles (p10/p50/p90 by default) of the same windows;
* the error-rate, latency and throughput series of the configured queries;
* the current per-feature drift ranking and the current score;
* the alerts of the source, plus a local one while the current score is in
  the warn or alert band;
* the release markers inside the time range.

Every score comes from :class:`~core.metrics.scoring.DriftScorer`, the same
scorer the guard and the CLI use; the console's entry point (markers from
the journal, the training reference from the repository) is
:func:`core.services.views.build_view`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from core.domain import Alert, DriftBand, DriftScore, Histogram, Marker, Series
from core.errors import BackendUnavailable, InvalidQuery
from core.metrics import drift
from core.metrics.base import MetricsSource
from core.metrics.prometheus import step_for
from core.metrics.reference import Reference
from core.metrics.scoring import (
    REFERENCE_KINDS,
    DriftScorer,
    DriftSettings,
    TrainingLoader,
    feature_name,
    fixed_training,
    no_training,
    not_enough,
)

__all__ = [
    "REFERENCE_KINDS",
    "DriftModel",
    "DriftSettings",
    "DriftView",
    "feature_name",
]


@dataclass(frozen=True, slots=True)
class DriftView:
    """One snapshot of everything the Drift screen shows.

    ``drift`` holds only the windows that had enough data (the gaps are
    "not enough data", never a made-up number). ``stale`` is True when the
    last refresh failed: the data is then that of ``fetched_at`` and
    ``error`` says why. ``panel_errors`` maps a panel ("drift", "features",
    "error_rate", "latency_p95", "throughput", "alerts") to the message of
    a query that failed while the rest of the view is fresh.
    """

    start: datetime
    end: datetime
    step: float
    method: str
    warn: float
    alert: float
    window: float
    drift: Series
    current: DriftScore
    reference: str
    quantiles: tuple[Series, ...] = ()
    error_rate: tuple[Series, ...] = ()
    latency: tuple[Series, ...] = ()
    throughput: tuple[Series, ...] = ()
    features: tuple[tuple[str, DriftScore], ...] = ()
    alerts: tuple[Alert, ...] = ()
    markers: tuple[Marker, ...] = ()
    fetched_at: datetime | None = None
    stale: bool = False
    error: str = ""
    panel_errors: dict[str, str] = field(default_factory=dict)

    @property
    def now(self) -> datetime:
        """The end of the range (the right edge of every chart)."""
        return self.end

    @property
    def drift_series(self) -> list[Series]:
        """The drift chart's series (one)."""
        return [self.drift]

    @property
    def quantile_series(self) -> list[Series]:
        """The prediction distribution chart's series (p10, p50, p90)."""
        return list(self.quantiles)

    @property
    def service_series(self) -> list[Series]:
        """Error rate, latency and throughput series, named for a legend."""
        out = []
        for title, group in (
            ("error rate", self.error_rate),
            ("latency p95", self.latency),
            ("throughput", self.throughput),
        ):
            for one in group:
                suffix = ",".join(f"{k}={v}" for k, v in sorted(one.labels.items()))
                out.append(replace(one, name=f"{title} {suffix}" if suffix else title))
        return out


class DriftModel:
    """Computes :class:`DriftView` snapshots of one model.

    ``training`` is the training Reference (or just the prediction
    Histogram), or a loader returning it (see
    :data:`~core.metrics.scoring.TrainingLoader`), for the ``training``
    reference kind. ``markers`` are the model's rollouts and rollbacks (any
    order). ``now`` is the clock. ``scrape_on_refresh``: :meth:`refresh`
    asks the source for new data first (:meth:`MetricsSource.refresh`).
    Blocking: call it from a worker thread.
    """

    def __init__(
        self,
        source: MetricsSource,
        settings: DriftSettings,
        *,
        markers: Sequence[Marker] = (),
        training: Reference | Histogram | TrainingLoader | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        scrape_on_refresh: bool = True,
    ) -> None:
        self.source = source
        self.scrape_on_refresh = scrape_on_refresh
        self.settings = settings
        self.markers = sorted(markers, key=lambda m: m.time)
        if training is None:
            loader = no_training()
        elif isinstance(training, Reference | Histogram):
            loader = fixed_training(training)
        else:
            loader = training
        #: The one scorer of every number this view shows.
        self.scorer = DriftScorer(source, settings, training=loader, markers=lambda: self.markers)
        self._now = now
        self.last_view: DriftView | None = None
        # The last computed view and what it was computed from (see refresh).
        self._computed: tuple[tuple[object, ...], DriftView] | None = None

    def set_markers(self, markers: Sequence[Marker]) -> None:
        """Replace the release markers (e.g. after a new rollout was journaled)."""
        self.markers = sorted(markers, key=lambda m: m.time)

    def reference_window(self, end: datetime) -> tuple[datetime, datetime] | None:
        """Return the reference window for views ending at ``end`` (see
        :meth:`DriftScorer.reference_window`)."""
        return self.scorer.reference_window(end)

    def score(self, start: datetime, end: datetime) -> DriftScore:
        """Return the drift of [start, end) against the reference (see :meth:`DriftScorer.score`).

        Raises BackendUnavailable or InvalidQuery.
        """
        return self.scorer.score(start, end)

    # -- the view -------------------------------------------------------

    def compute(self, start: datetime, end: datetime, width: int = 120) -> DriftView:
        """Return the view of [start, end] with about ``width`` points per series.

        A rejected query is reported in ``panel_errors`` and the other panels
        are still filled. Raises BackendUnavailable when the source cannot be reached.
        """
        s = self.settings
        errors: dict[str, str] = {}
        step = step_for(start, end, width)
        drift_points: list[tuple[float, float]] = []
        quantile_points: dict[float, list[tuple[float, float]]] = {q: [] for q in s.quantiles}
        scorer = self.scorer
        current = not_enough(s.method, "no prediction histogram configured")
        reference = "none"
        if s.prediction_histogram:
            try:
                ref, reference = scorer.reference(s.prediction_histogram, "", end)
                windows = self.source.histogram_range(
                    s.prediction_histogram, start, end, s.window, width=width
                )
                for t, h in windows:
                    for q in s.quantiles:
                        value = drift.quantile(q, h)
                        if value is not None and math.isfinite(value):
                            quantile_points[q].append((t, value))
                    if ref is not None:
                        point = scorer.judge(ref, reference, h)
                        if point.value is not None:
                            drift_points.append((t, point.value))
                current, reference = scorer.current(end)
            except InvalidQuery as exc:
                errors["drift"] = str(exc)
                current = not_enough(s.method, f"query failed: {exc}")
        features = self._features(end, errors)
        panels: dict[str, tuple[Series, ...]] = {}
        for name, query in (
            ("error_rate", s.error_rate),
            ("latency_p95", s.latency_p95),
            ("throughput", s.throughput),
        ):
            panels[name] = ()
            if query:
                try:
                    panels[name] = tuple(self.source.range_query(query, start, end, width=width))
                except InvalidQuery as exc:
                    errors[name] = str(exc)
        try:
            alerts = list(self.source.alerts())
        except InvalidQuery as exc:
            errors["alerts"] = str(exc)
            alerts = []
        for title, group, limit in (
            ("HighErrorRate", panels["error_rate"], s.max_error_rate),
            ("HighLatency", panels["latency_p95"], s.max_latency_p95),
        ):
            if limit is None:
                continue
            for one in group:
                if one.points and one.points[-1][1] > limit:
                    t, value = one.points[-1]
                    alerts.append(
                        Alert(
                            name=title,
                            state="firing",
                            severity="critical",
                            summary=f"{value:.4g} > {limit:g}",
                            since=datetime.fromtimestamp(t, UTC),
                            labels=dict(one.labels),
                        )
                    )
        if s.drift_alerts and current.value is not None and current.band is not DriftBand.OK:
            critical = current.band is DriftBand.ALERT
            limit = s.alert if critical else s.warn
            alerts.append(
                Alert(
                    name="PredictionDrift",
                    state="firing",
                    severity="critical" if critical else "warning",
                    summary=f"{s.method} {current.value:.3f} >= {limit:g} vs {reference}",
                    since=end,
                )
            )
        return DriftView(
            start=start,
            end=end,
            step=step,
            method=s.method,
            warn=s.warn,
            alert=s.alert,
            window=s.window,
            drift=Series(f"{s.method} drift", tuple(drift_points)),
            current=current,
            reference=reference,
            quantiles=tuple(
                Series(f"p{q * 100:g}", tuple(pts)) for q, pts in quantile_points.items()
            ),
            error_rate=panels["error_rate"],
            latency=panels["latency_p95"],
            throughput=panels["throughput"],
            features=tuple(features),
            alerts=tuple(alerts),
            markers=tuple(m for m in self.markers if start <= m.time <= end),
            fetched_at=self._now(),
            panel_errors=errors,
        )

    def _features(self, end: datetime, errors: dict[str, str]) -> list[tuple[str, DriftScore]]:
        s = self.settings
        pairs: dict[str, tuple[Histogram, Histogram]] = {}
        missing: list[tuple[str, DriftScore]] = []
        start = end - timedelta(seconds=s.window)
        try:
            for metric in s.feature_histograms:
                name = feature_name(metric)
                ref, reason = self.scorer.reference(metric, name, end)
                if ref is None:
                    missing.append((name, not_enough(s.method, reason)))
                    continue
                pairs[name] = (ref, self.source.histogram_window(metric, start, end))
        except InvalidQuery as exc:
            errors["features"] = str(exc)
        ranked = drift.rank_features(pairs, s.method, s.warn, s.alert, s.min_samples)
        return ranked + sorted(missing, key=lambda item: item[0])

    def refresh(self, start: datetime, end: datetime, width: int = 120) -> DriftView:
        """Fetch and return the view of [start, end]; never raises BackendUnavailable.

        For a source that collects in the background (its health has a
        ``last_success``), the view computed by the previous call is returned
        again (the same object) when the range, the width and the markers are
        the same and the source has collected nothing at or before ``end``
        since (:meth:`MetricsSource.collected_until`: a collection after
        ``end`` does not count, even one that came after the previous call).
        A source that answers each query itself (Prometheus) is asked every
        time: its data may change, or it may stop answering, unseen.

        The source is asked for new data first (:meth:`MetricsSource.refresh`:
        the scrape source scrapes) when ``scrape_on_refresh`` is set; if that
        fails, or the source's :meth:`~MetricsSource.health` reports a failed
        collection, the view is computed from the data already buffered and
        marked ``stale``, with ``fetched_at`` the last successful collection.
        When the source cannot be reached at all, the last good view is
        returned marked ``stale`` with the error (an empty stale view if there
        is none).
        """
        scrape_error = ""
        if self.scrape_on_refresh:
            try:
                self.source.refresh()
            except BackendUnavailable as exc:
                scrape_error = str(exc)
        # The view depends on the range, the markers and the data up to ``end``: while
        # none of them changed (no collection at or before ``end`` since), the view
        # computed last is the same, and is returned without querying again.
        collected = self.source.health().last_success
        until = self.source.collected_until(end) if collected else None
        key = (start, end, width, tuple(self.markers), until)
        try:
            if collected is not None and self._computed is not None and self._computed[0] == key:
                view = self._computed[1]
            else:
                view = self.compute(start, end, width)
                self._computed = (key, view)
        except BackendUnavailable as exc:
            s = self.settings
            if self.last_view is not None:
                return replace(self.last_view, stale=True, error=str(exc))
            return DriftView(
                start=start,
                end=end,
                step=step_for(start, end, width),
                method=s.method,
                warn=s.warn,
                alert=s.alert,
                window=s.window,
                drift=Series(f"{s.method} drift", ()),
                current=not_enough(s.method, str(exc)),
                reference="unavailable",
                markers=tuple(m for m in self.markers if start <= m.time <= end),
                stale=True,
                error=str(exc),
            )
        health = self.source.health()
        scrape_error = scrape_error or health.last_error
        if scrape_error:
            view = replace(view, stale=True, error=scrape_error, fetched_at=health.last_success)
        self.last_view = view
        return view
