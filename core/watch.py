"""The exporter behind ``mrc watch``: every model's drift, guard and release as Prometheus metrics.

:class:`Watcher` evaluates, for every configured model, the same numbers the
Drift screen shows, scored by the same scorer
(:meth:`Workspace.drift_probe <core.services.workspace.Workspace.drift_probe>`:
the configured method and reference), and keeps the latest
:class:`Evaluation`. :class:`WatchCollector` turns that evaluation into
prometheus-client metric families when ``/metrics`` is scraped, so a series
that was not computed in the latest evaluation is not exported (no stale
scores). Serving HTTP, the loop and signals belong to the front end
(:mod:`tui.cli.watch`).

Metrics (label ``target`` of the drift series: the target the metrics source
scrapes, else the model's first target):

* ``mrc_drift_score{model,target,kind,feature}`` — the drift score of the
  latest ``drift.window``; ``kind`` is ``prediction`` (``feature=""``) or
  ``feature``. Left out while the score is "not enough data".
* ``mrc_drift_samples{model,target,kind,feature}`` — samples in that window.
* ``mrc_drift_threshold{model,target,level}`` — the configured ``warn`` / ``alert``.
* ``mrc_guard_value{model,target,check}`` / ``mrc_guard_limit{...}`` /
  ``mrc_guard_breached{...}`` — each enabled guard check (error_rate,
  latency_p95, drift) now, its limit, and 1 when the value exceeds it.
* ``mrc_release_info{model,target,revision,commit}`` — 1 for the live revision.
* ``mrc_target_up{model,target}`` — 1 when the target answered.
* ``mrc_source_up{model}`` — 1 when the metrics source could be read; when 0
  the model exports no drift or guard series.
* ``mrc_last_evaluation_timestamp_seconds`` — when the latest evaluation ended.
* ``mrc_evaluation_duration_seconds`` — how long it took.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.domain import DriftScore
from core.errors import BackendUnavailable, InvalidQuery, MrcError
from core.metrics.scoring import feature_name

if TYPE_CHECKING:
    from core.services.guard import Guard
    from core.services.workspace import Workspace

#: Guard checks exported besides drift, and the configuration limit of each.
_SERVICE_CHECKS = ("error_rate", "latency_p95")


@dataclass(frozen=True, slots=True)
class DriftSample:
    """One drift score: ``kind`` "prediction" (``feature`` "") or "feature"."""

    kind: str
    feature: str
    score: DriftScore


@dataclass(frozen=True, slots=True)
class GuardSample:
    """One guard check now: ``value`` (None: no value, ``note`` says why) and its ``limit``."""

    check: str
    value: float | None
    limit: float
    note: str = ""

    @property
    def breached(self) -> bool:
        """True when the value exceeds the limit."""
        return self.value is not None and self.value > self.limit


@dataclass(frozen=True, slots=True)
class TargetSample:
    """A target's live revision and commit (``error`` set when it could not be read)."""

    target: str
    revision: int | None = None
    commit: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class ModelSample:
    """One model's evaluation.

    ``source_up`` is None for a model without a metrics source, False when
    the source could not be read (``error`` says why; ``drift`` and
    ``guard`` are then empty). ``target`` labels the drift and guard series.
    """

    model: str
    target: str
    source_up: bool | None
    error: str = ""
    warn: float = 0.0
    alert: float = 0.0
    drift: tuple[DriftSample, ...] = ()
    guard: tuple[GuardSample, ...] = ()
    targets: tuple[TargetSample, ...] = ()


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything one evaluation computed; ``time`` is when it ended, ``duration`` seconds."""

    time: datetime
    duration: float
    models: tuple[ModelSample, ...] = field(default_factory=tuple)


class Watcher:
    """Evaluates every model of ``workspace``; keeps the latest :class:`Evaluation`.

    ``now`` is the clock. Blocking (it reads sources and targets): run it
    from the front end's loop, not an event loop.
    """

    def __init__(
        self, workspace: Workspace, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.workspace = workspace
        self._now = now
        self._lock = threading.Lock()
        self._latest: Evaluation | None = None
        self._guards: dict[str, Guard] = {}

    @property
    def latest(self) -> Evaluation | None:
        """The latest evaluation (None before the first)."""
        with self._lock:
            return self._latest

    def start(self) -> None:
        """Start every metrics source's background collection (a scrape source only has
        data while its scraper runs). Never raises for a source that cannot be reached."""
        for model in self.workspace.models:
            source = self.workspace.metrics(model.name)
            if source is not None:
                source.start()

    def evaluate(self) -> Evaluation:
        """Evaluate every model now, remember and return the result.

        Never raises for an unreachable source or target: they are marked
        down in the result.
        """
        began = time.monotonic()
        models = tuple(self._model(m.name) for m in self.workspace.models)
        result = Evaluation(self._now(), time.monotonic() - began, models)
        with self._lock:
            self._latest = result
        return result

    # -- one model ----------------------------------------------------------

    def _label_target(self, model: str) -> str:
        cfg = self.workspace.model(model)
        if cfg.metrics is not None and cfg.metrics.target:
            return cfg.metrics.target
        return cfg.targets[0].name if cfg.targets else ""

    def _model(self, model: str) -> ModelSample:
        cfg = self.workspace.model(model)
        target = self._label_target(model)
        targets = tuple(self._target(model, t.name) for t in cfg.targets)
        base = ModelSample(
            model, target, None, warn=cfg.drift.warn, alert=cfg.drift.alert, targets=targets
        )
        source = self.workspace.metrics(model)
        if source is None:
            return base
        health = source.health()
        if health.last_error:
            return _down(base, health.last_error)
        try:
            drift = self._drift(model)
            guard = self._guard(model, drift)
        except BackendUnavailable as exc:
            return _down(base, str(exc))
        return ModelSample(
            model,
            target,
            True,
            warn=cfg.drift.warn,
            alert=cfg.drift.alert,
            drift=drift,
            guard=guard,
            targets=targets,
        )

    def _target(self, model: str, target: str) -> TargetSample:
        try:
            state = self.workspace.target(model, target).status()
        except MrcError as exc:
            return TargetSample(target, error=str(exc))
        return TargetSample(target, state.revision, state.commit)

    def _drift(self, model: str) -> tuple[DriftSample, ...]:
        """Return the prediction and feature scores of the latest window.

        Raises BackendUnavailable when the source cannot be read; a rejected
        query leaves that series out.
        """
        scorer = self.workspace.drift_probe(model)
        if scorer is None:
            return ()
        end = self._now()
        start = end - timedelta(seconds=scorer.settings.window)
        out = []
        try:
            score, _ = scorer.assess(start, end)
            out.append(DriftSample("prediction", "", score))
        except InvalidQuery:
            pass
        for metric in scorer.settings.feature_histograms:
            name = feature_name(metric)
            try:
                ref, why = scorer.reference(metric, name, end)
                current = scorer.source.histogram_window(metric, start, end)
            except InvalidQuery:
                continue
            out.append(DriftSample("feature", name, scorer.judge(ref, why, current)))
        return tuple(out)

    def _guard(self, model: str, drift: tuple[DriftSample, ...]) -> tuple[GuardSample, ...]:
        """Return every enabled guard check now (drift from the prediction score just
        computed, the others through the guard's own queries over the drift window)."""
        cfg = self.workspace.model(model)
        guard = self._guards.get(model)
        if guard is None:
            guard = self._guards[model] = self.workspace.guard(model)
        limits = guard.settings.limits()
        since = self._now() - timedelta(seconds=cfg.drift.window)
        out = []
        for check in _SERVICE_CHECKS:
            if check in limits:
                m = guard.measure(check, since)
                out.append(GuardSample(check, m.value, limits[check], m.note))
        if "drift" in limits:
            prediction = [d.score for d in drift if d.kind == "prediction"]
            value = prediction[0].value if prediction else None
            if value is not None and not math.isfinite(value):
                value = None
            note = prediction[0].reason if prediction else "no prediction histogram"
            out.append(GuardSample("drift", value, limits["drift"], note))
        return tuple(out)


def _down(base: ModelSample, error: str) -> ModelSample:
    return ModelSample(
        base.model,
        base.target,
        False,
        error=error,
        warn=base.warn,
        alert=base.alert,
        targets=base.targets,
    )


class WatchCollector:
    """A prometheus-client collector exporting a :class:`Watcher`'s latest evaluation.

    Register it with ``registry.register(WatchCollector(watcher))``. Before
    the first evaluation it exports nothing.
    """

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def describe(self) -> list[Any]:
        """Return nothing: the families depend on the evaluation (prometheus-client then
        does not call :meth:`collect` at registration)."""
        return []

    def collect(self) -> Iterator[Any]:
        """Yield the metric families of the latest evaluation."""
        from prometheus_client.core import GaugeMetricFamily

        ev = self.watcher.latest
        if ev is None:
            return
        drift_labels = ["model", "target", "kind", "feature"]
        score = GaugeMetricFamily(
            "mrc_drift_score", "Drift score of the latest window against the reference.",
            labels=drift_labels,
        )  # fmt: skip
        samples = GaugeMetricFamily(
            "mrc_drift_samples", "Samples in the latest drift window.", labels=drift_labels
        )
        threshold = GaugeMetricFamily(
            "mrc_drift_threshold", "Configured drift thresholds (warn, alert).",
            labels=["model", "target", "level"],
        )  # fmt: skip
        guard_labels = ["model", "target", "check"]
        g_value = GaugeMetricFamily(
            "mrc_guard_value", "Guard check value now.", labels=guard_labels
        )
        g_limit = GaugeMetricFamily("mrc_guard_limit", "Guard check limit.", labels=guard_labels)
        g_breached = GaugeMetricFamily(
            "mrc_guard_breached", "1 when the guard check exceeds its limit.", labels=guard_labels
        )
        info = GaugeMetricFamily(
            "mrc_release_info", "The live revision and commit of a target.",
            labels=["model", "target", "revision", "commit"],
        )  # fmt: skip
        target_up = GaugeMetricFamily(
            "mrc_target_up", "1 when the target answered.", labels=["model", "target"]
        )
        source_up = GaugeMetricFamily(
            "mrc_source_up", "1 when the model's metrics source could be read.", labels=["model"]
        )
        for m in ev.models:
            for t in m.targets:
                target_up.add_metric([m.model, t.target], 0.0 if t.error else 1.0)
                if not t.error and (t.revision is not None or t.commit):
                    revision = "" if t.revision is None else str(t.revision)
                    info.add_metric([m.model, t.target, revision, t.commit], 1.0)
            if m.source_up is None:
                continue
            source_up.add_metric([m.model], 1.0 if m.source_up else 0.0)
            if not m.source_up:
                continue
            threshold.add_metric([m.model, m.target, "warn"], m.warn)
            threshold.add_metric([m.model, m.target, "alert"], m.alert)
            for d in m.drift:
                labels = [m.model, m.target, d.kind, d.feature]
                samples.add_metric(labels, d.score.samples)
                if d.score.value is not None and math.isfinite(d.score.value):
                    score.add_metric(labels, d.score.value)
            for g in m.guard:
                labels = [m.model, m.target, g.check]
                g_limit.add_metric(labels, g.limit)
                if g.value is not None:
                    g_value.add_metric(labels, g.value)
                    g_breached.add_metric(labels, 1.0 if g.breached else 0.0)
        last = GaugeMetricFamily(
            "mrc_last_evaluation_timestamp_seconds", "When the latest evaluation ended (Unix)."
        )
        last.add_metric([], ev.time.timestamp())
        took = GaugeMetricFamily(
            "mrc_evaluation_duration_seconds", "Seconds the latest evaluation took."
        )
        took.add_metric([], ev.duration)
        yield from (score, samples, threshold, g_value, g_limit, g_breached)
        yield from (info, target_up, source_up, last, took)
