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

The reference is, by ``reference``: ``training`` — the histograms shipped
with the model (the caller loads them from the repository at the deployed
commit); ``before_release`` — the window just before the latest release
marker; ``fixed`` — the window [reference_start, reference_end].
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core.domain import Alert, DriftBand, DriftScore, Histogram, Marker, Series
from core.errors import BackendUnavailable, InvalidQuery, MrcError, NotFound
from core.metrics import drift
from core.metrics.base import MetricsSource
from core.metrics.prometheus import step_for
from core.metrics.reference import Reference

#: Time ranges the screen steps through (seconds): 15m, 1h, 6h, 24h, 7d.
RANGES = (900.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0)
REFERENCE_KINDS = ("training", "before_release", "fixed")
_FEATURE_LABEL = re.compile(r'feature\s*=\s*"([^"]*)"')


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """Everything :class:`DriftModel` needs to know about one model's metrics and drift.

    ``prediction_histogram`` and ``feature_histograms`` are classic histogram
    metric names (optionally with a ``{k="v"}`` selector); ``error_rate``,
    ``latency_p95`` and ``throughput`` are queries in the source's language
    ("" to leave a panel out). ``window`` and the reference times are seconds
    and UTC datetimes. ``drift_alerts`` adds a local alert while the current
    score is in the warn/alert band; ``max_error_rate`` / ``max_latency_p95``
    add one while the latest error-rate / latency value exceeds them (the
    scrape source's locally evaluated thresholds; None for none).
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
    def from_config(cls, metrics: Any, drift_config: Any, guard: Any = None) -> DriftSettings:
        """Return the settings of a model's ``[model.metrics]`` and ``[model.drift]`` tables.

        With a ``scrape`` source the ``[model.guard]`` limits (``guard``) become
        locally evaluated alerts; Prometheus evaluates its own alerting rules.

        For a ``scrape`` source the panel entries may be bare metric names: a
        counter becomes ``sum(rate(name[1m]))`` and the latency histogram
        ``histogram_quantile(0.95, name[1m])``; expressions are kept as written.
        """
        scrape = getattr(metrics, "source", "") == "scrape"

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
            max_error_rate=getattr(guard, "max_error_rate", None) if scrape else None,
            max_latency_p95=getattr(guard, "max_latency_p95", None) if scrape else None,
        )


def open_source(metrics: Any, thresholds: Iterable[Any] = ()) -> MetricsSource:
    """Return the metrics source a ``[model.metrics]`` table describes (not yet contacted).

    ``thresholds`` (:class:`core.metrics.scrape.Threshold`) are the local
    alerts of a scrape source. Raises ValueError for an unknown source kind.
    """
    token = metrics.token.reveal() if getattr(metrics, "token", None) else None
    if metrics.source == "prometheus":
        from core.metrics.prometheus import PrometheusSource

        password = metrics.password.reveal() if getattr(metrics, "password", None) else ""
        auth = (metrics.username, password) if getattr(metrics, "username", "") else None
        return PrometheusSource(
            metrics.url,
            headers=dict(metrics.headers),
            token=token,
            timeout=metrics.timeout,
            selector=metrics.selector,
            auth=auth,
        )
    if metrics.source == "scrape":
        from core.metrics.scrape import ScrapeSource

        headers = dict(metrics.headers)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return ScrapeSource(
            metrics.url,
            interval=metrics.refresh,
            timeout=metrics.timeout,
            thresholds=thresholds,
            headers=headers,
            selector=metrics.selector,
        )
    raise ValueError(f"unknown metrics source {metrics.source!r}")


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


def feature_name(metric: str) -> str:
    """Return the display name of a feature histogram: its ``feature`` label, else the metric."""
    m = _FEATURE_LABEL.search(metric)
    return m.group(1) if m else metric.partition("{")[0]


def _not_enough(method: str, reason: str) -> DriftScore:
    return DriftScore(method, None, DriftBand.NOT_ENOUGH_DATA, 0.0, reason)


def _fmt_span(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def _fmt_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


class DriftModel:
    """Computes :class:`DriftView` snapshots of one model.

    ``training`` is the training Reference (or just the prediction
    Histogram) for the ``training`` reference kind. ``markers`` are the
    model's rollouts and rollbacks (any order). ``now`` is the clock.
    ``scrape_on_refresh``: :meth:`refresh` scrapes a scrape source first.
    Blocking: call it from a worker thread.
    """

    def __init__(
        self,
        source: MetricsSource,
        settings: DriftSettings,
        *,
        markers: Sequence[Marker] = (),
        training: Reference | Histogram | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        scrape_on_refresh: bool = True,
    ) -> None:
        self.source = source
        self.scrape_on_refresh = scrape_on_refresh
        self.settings = settings
        self.markers = sorted(markers, key=lambda m: m.time)
        if isinstance(training, Histogram):
            training = Reference(training)
        self.training = training
        #: Why there is no training reference (shown as the "not enough data" reason).
        self.training_error = "no training reference histograms loaded"
        self._now = now
        self.last_view: DriftView | None = None

    def set_markers(self, markers: Sequence[Marker]) -> None:
        """Replace the release markers (e.g. after a new rollout was journaled)."""
        self.markers = sorted(markers, key=lambda m: m.time)

    # -- reference ------------------------------------------------------

    def reference_window(self, end: datetime) -> tuple[datetime, datetime] | None:
        """Return the reference window for views ending at ``end``, None for ``training``
        (or for ``before_release`` with no release marker at or before ``end``)."""
        s = self.settings
        if s.reference == "fixed":
            assert s.reference_start is not None and s.reference_end is not None
            return s.reference_start, s.reference_end
        if s.reference == "before_release":
            released = [m for m in self.markers if m.time <= end]
            if not released:
                return None
            t = released[-1].time
            return t - timedelta(seconds=s.window), t
        return None

    def _reference(self, metric: str, key: str, end: datetime) -> tuple[Histogram | None, str]:
        """Return (reference histogram or None, description or reason it is missing)."""
        s = self.settings
        if s.reference == "training":
            if self.training is None:
                return None, self.training_error
            h = self.training.prediction if key == "" else self.training.features.get(key)
            if h is None:
                return None, f"training reference has no histogram for feature {key!r}"
            return h, "training histograms"
        window = self.reference_window(end)
        if window is None:
            return None, "no release marker before the end of the range"
        h = self.source.histogram_window(metric, window[0], window[1])
        if s.reference == "fixed":
            return h, f"fixed window {_fmt_time(window[0])} – {_fmt_time(window[1])}"
        marker = [m for m in self.markers if m.time == window[1]][-1]
        return h, f"{_fmt_span(s.window)} before {marker.label} ({_fmt_time(window[1])})"

    def _score(self, ref: Histogram | None, reason: str, current: Histogram) -> DriftScore:
        s = self.settings
        if ref is None:
            return _not_enough(s.method, reason)
        try:
            return drift.score(ref, current, s.method, s.warn, s.alert, s.min_samples)
        except ValueError as exc:
            return _not_enough(s.method, str(exc))

    def score(self, start: datetime, end: datetime) -> DriftScore:
        """Return the drift of the prediction histogram over [start, end) against the reference.

        Band NOT_ENOUGH_DATA (with the reason) when either side is short or the
        reference is unavailable. Raises BackendUnavailable or InvalidQuery.
        """
        metric = self.settings.prediction_histogram
        ref, reason = self._reference(metric, "", end)
        if ref is None:
            return _not_enough(self.settings.method, reason)
        return self._score(ref, reason, self.source.histogram_window(metric, start, end))

    # -- the view -------------------------------------------------------

    def _windows(self, start: datetime, end: datetime, width: int) -> list[tuple[float, Histogram]]:
        metric, window = self.settings.prediction_histogram, self.settings.window
        ranged = getattr(self.source, "histogram_range", None)
        if ranged is not None:
            result: list[tuple[float, Histogram]] = ranged(metric, start, end, window, width=width)
            return result
        step = step_for(start, end, width)
        out = []
        t = start.timestamp()
        while t <= end.timestamp():
            at = datetime.fromtimestamp(t, UTC)
            out.append(
                (t, self.source.histogram_window(metric, at - timedelta(seconds=window), at))
            )
            t += step
        return out

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
        current = _not_enough(s.method, "no prediction histogram configured")
        reference = "none"
        if s.prediction_histogram:
            try:
                ref, reference = self._reference(s.prediction_histogram, "", end)
                for t, h in self._windows(start, end, width):
                    for q in s.quantiles:
                        value = drift.quantile(q, h)
                        if value is not None and math.isfinite(value):
                            quantile_points[q].append((t, value))
                    if ref is not None:
                        point = self._score(ref, reference, h)
                        if point.value is not None:
                            drift_points.append((t, point.value))
                latest = self.source.histogram_window(
                    s.prediction_histogram, end - timedelta(seconds=s.window), end
                )
                current = self._score(ref, reference, latest)
            except InvalidQuery as exc:
                errors["drift"] = str(exc)
                current = _not_enough(s.method, f"query failed: {exc}")
        features = self._features(end, errors)
        panels: dict[str, tuple[Series, ...]] = {}
        for name in ("error_rate", "latency_p95", "throughput"):
            query = getattr(s, name)
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
                ref, reason = self._reference(metric, name, end)
                if ref is None:
                    missing.append((name, _not_enough(s.method, reason)))
                    continue
                pairs[name] = (ref, self.source.histogram_window(metric, start, end))
        except InvalidQuery as exc:
            errors["features"] = str(exc)
        ranked = drift.rank_features(pairs, s.method, s.warn, s.alert, s.min_samples)
        return ranked + sorted(missing, key=lambda item: item[0])

    def refresh(self, start: datetime, end: datetime, width: int = 120) -> DriftView:
        """Fetch and return the view of [start, end]; never raises BackendUnavailable.

        A source with ``scrape_once`` (the scrape source) is scraped first when
        ``scrape_on_refresh`` is set; if that fails the view is computed from
        the data already buffered and marked ``stale``, with ``fetched_at`` the
        last successful scrape. When the source cannot be reached at all, the
        last good view is returned marked ``stale`` with the error (an empty
        stale view if there is none).
        """
        scrape = getattr(self.source, "scrape_once", None)
        scrape_error = ""
        if scrape is not None and self.scrape_on_refresh:
            try:
                scrape()
            except BackendUnavailable as exc:
                scrape_error = str(exc)
        try:
            view = self.compute(start, end, width)
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
                current=_not_enough(s.method, str(exc)),
                reference="unavailable",
                markers=tuple(m for m in self.markers if start <= m.time <= end),
                stale=True,
                error=str(exc),
            )
        scrape_error = scrape_error or getattr(self.source, "last_error", "")
        if scrape_error:
            view = replace(
                view,
                stale=True,
                error=scrape_error,
                fetched_at=getattr(self.source, "last_success", None),
            )
        self.last_view = view
        return view


# -- the console's entry point ---------------------------------------------

_CACHE_SECONDS = 30.0


class _Workspaces:
    """Per-workspace DriftModels plus slowly changing inputs (deployed commit, history)."""

    def __init__(self) -> None:
        import weakref

        self._lock = threading.Lock()
        self._state: weakref.WeakKeyDictionary[Any, dict[str, dict[str, Any]]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, workspace: Any, model: str) -> dict[str, Any]:
        with self._lock:
            per_model = self._state.setdefault(workspace, {})
            return per_model.setdefault(model, {})


_WORKSPACES = _Workspaces()


def _history_markers(workspace: Any, model: str, journal_markers: list[Marker]) -> list[Marker]:
    """Rollouts seen in the targets' revision histories that the journal does not know."""
    out = []
    for target in workspace.targets(model):
        name = getattr(target, "name", "")
        for rev in target.history():
            if rev.created is None:
                continue
            if any(
                m.target == name and abs((m.time - rev.created).total_seconds()) < 120
                for m in journal_markers
            ):
                continue
            out.append(
                Marker(
                    time=rev.created, label=f"revision {rev.number}", kind="rollout", target=name
                )
            )
    return out


def _deployed_commit(workspace: Any, model: str) -> str:
    for target in workspace.targets(model):
        commit = target.status().commit
        if commit:
            return str(commit)
    return ""


def build_view(
    workspace: Any, model: str, start: datetime, end: datetime, width: int = 120
) -> DriftView:
    """Return the Drift screen's view of ``model`` over [start, end] (blocking; call from a worker).

    Markers come from the journal (every rollout and rollback the console
    made) and the targets' revision histories (refreshed every 30 s). The
    training reference is read from the repository at the commit the first
    reachable target runs. A scrape source gets its background scraper started.
    Raises NotFound when the model has no metrics configured, BackendUnavailable
    when the source cannot be reached (the screen marks its data stale).
    """
    import time

    cfg = workspace.model(model)
    source = workspace.metrics(model)
    if source is None or cfg.metrics is None or not cfg.metrics.prediction_histogram:
        raise NotFound(f"model {model} has no [model.metrics] prediction_histogram configured")
    start_scraper = getattr(source, "start", None)
    if callable(start_scraper):
        start_scraper()
    state = _WORKSPACES.get(workspace, model)
    dm: DriftModel | None = state.get("model")
    if dm is None or dm.source is not source:
        dm = DriftModel(
            source,
            DriftSettings.from_config(cfg.metrics, cfg.drift, getattr(cfg, "guard", None)),
            scrape_on_refresh=False,
        )
        state.clear()
        state["model"] = dm
    markers = list(workspace.journal.markers(model))
    clock = time.monotonic()
    if clock - state.get("slow_at", -_CACHE_SECONDS) >= _CACHE_SECONDS:
        state["slow_at"] = clock
        try:
            state["history"] = _history_markers(workspace, model, markers)
        except MrcError:
            state["history"] = []
        if cfg.drift.reference == "training":
            _load_training(workspace, model, cfg, dm, state)
    dm.set_markers(markers + state.get("history", []))
    view = dm.refresh(start, end, width)
    if view.stale:
        raise BackendUnavailable(view.error)
    return view


def _load_training(
    workspace: Any, model: str, cfg: Any, dm: DriftModel, state: dict[str, Any]
) -> None:
    from core.metrics.reference import InvalidReference, loads

    path = cfg.drift.reference_path
    if not path:
        dm.training, dm.training_error = None, "drift.reference_path is not configured"
        return
    try:
        commit = _deployed_commit(workspace, model)
    except MrcError as exc:
        dm.training_error = f"cannot tell the deployed commit: {exc}"
        return  # keep the reference loaded before, if any
    if not commit:
        dm.training, dm.training_error = None, "no target runs a known commit"
        return
    if state.get("training_commit") == commit:
        return
    try:
        text = workspace.repository(model).file_at(commit, path).decode("utf-8")
        dm.training = loads(text, f"{path} at {commit[:8]}")
        state["training_commit"] = commit
    except (MrcError, InvalidReference, UnicodeDecodeError) as exc:
        dm.training, dm.training_error = None, str(exc)
