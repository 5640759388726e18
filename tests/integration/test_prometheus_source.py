"""The Prometheus source and the drift model on a real Prometheus with backfilled history.

Two hours of a model's metrics, one sample every 15 s, are written as
OpenMetrics with timestamps and backfilled with promtool: the prediction
histogram (and the ``age`` feature) shift from a low-centred to a
high-centred distribution at RELEASE, where the release marker is, and the
error ratio rises from 0 to 10 %.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.domain import DriftBand, Marker
from core.errors import BackendUnavailable, InvalidQuery
from core.metrics.model import DriftModel, DriftSettings
from core.metrics.prometheus import PrometheusSource
from tests.support.exporter import BEFORE, BUCKETS, openmetrics_history, training_histogram

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
SCRAPE = 15  # seconds between samples
RELEASE = T0 + timedelta(hours=1)
END = T0 + timedelta(hours=2)
PER_SCRAPE = 100  # predictions between two samples (the weights sum to 100)
WINDOW = 600.0  # 10 min: 40 samples, 4000 predictions per window


@pytest.fixture(scope="module")
def openmetrics() -> str:
    return openmetrics_history(
        T0.timestamp(), END.timestamp(), SCRAPE, RELEASE.timestamp(), PER_SCRAPE
    )


@pytest.fixture
def prometheus(prometheus_factory: Callable[..., Any], openmetrics: str) -> Any:
    return prometheus_factory(openmetrics=openmetrics)


def settings(reference: str) -> DriftSettings:
    return DriftSettings(
        prediction_histogram="model_prediction_score",
        feature_histograms=(
            'model_feature_value{feature="age"}',
            'model_feature_value{feature="income"}',
        ),
        reference=reference,
        window=WINDOW,
        min_samples=200,
        error_rate="sum(rate(model_errors_total[5m])) / sum(rate(model_requests_total[5m]))",
        throughput="sum(rate(model_requests_total[5m]))",
    )


def test_release_shift_crosses_alert_after_the_marker(prometheus: Any) -> None:
    source = PrometheusSource(prometheus.url)
    marker = Marker(RELEASE, "rollout → 7", "rollout", "prod")
    model = DriftModel(source, settings("before_release"), markers=[marker])
    view = model.refresh(T0, END, width=121)  # step 60 s

    assert not view.stale and view.panel_errors == {}
    assert view.step == 60
    assert view.markers == (marker,)
    release = RELEASE.timestamp()
    before = [v for t, v in view.drift.points if t <= release]
    after = [v for t, v in view.drift.points if t >= release + WINDOW]
    assert len(before) >= 50 and len(after) >= 45
    assert max(before) < 0.1
    assert min(after) > 0.25
    first_alert = min(t for t, v in view.drift.points if v >= 0.25)
    assert release < first_alert <= release + WINDOW
    assert view.current.band is DriftBand.ALERT

    (_, p50, _) = view.quantiles
    assert max(v for t, v in p50.points if t <= release) < 0.4
    assert min(v for t, v in p50.points if t >= release + WINDOW) > 0.6

    assert view.features[0][0] == "age"
    assert dict(view.features)["income"].band is DriftBand.OK
    (errors,) = view.error_rate
    assert errors.points[-1][1] == pytest.approx(0.1)
    (throughput,) = view.throughput
    assert throughput.points[-1][1] == pytest.approx(PER_SCRAPE / SCRAPE)
    assert [a.name for a in view.alerts] == ["PredictionDrift"]  # no rules in this Prometheus


def test_window_histogram_and_score(prometheus: Any) -> None:
    source = PrometheusSource(prometheus.url)
    before = source.histogram_window(
        "model_prediction_score", RELEASE - timedelta(minutes=10), RELEASE
    )
    assert before.bounds == (*BUCKETS, float("inf"))
    assert before.total == pytest.approx(40 * PER_SCRAPE, rel=0.05)
    model = DriftModel(
        source, settings("before_release"), markers=[Marker(RELEASE, "r", "rollout")]
    )
    late = model.score(END - timedelta(minutes=10), END)
    assert late.band is DriftBand.ALERT and late.value is not None and late.value > 0.25
    early = model.score(RELEASE - timedelta(minutes=20), RELEASE - timedelta(minutes=10))
    assert early.band is DriftBand.NOT_ENOUGH_DATA and "no release marker" in early.reason

    fixed = DriftModel(
        source,
        replace(
            settings("training"),
            reference="fixed",
            reference_start=T0 + timedelta(minutes=10),
            reference_end=T0 + timedelta(minutes=20),
        ),
    )
    quiet = fixed.score(T0 + timedelta(minutes=30), T0 + timedelta(minutes=40))
    assert quiet.band is DriftBand.OK and quiet.value is not None and quiet.value < 0.01
    assert fixed.score(END - timedelta(minutes=10), END).band is DriftBand.ALERT


def test_data_shift_without_release_has_no_marker(prometheus: Any) -> None:
    source = PrometheusSource(prometheus.url)
    model = DriftModel(source, settings("training"), training=training_histogram(BEFORE))
    view = model.refresh(T0, END, width=121)
    assert view.markers == ()
    release = RELEASE.timestamp()
    assert max(v for t, v in view.drift.points if t <= release) < 0.1
    assert min(v for t, v in view.drift.points if t >= release + WINDOW) > 0.25


def test_invalid_promql_gives_prometheus_error_text(prometheus: Any) -> None:
    source = PrometheusSource(prometheus.url)
    with pytest.raises(InvalidQuery, match="parse error"):
        source.range_query("sum(rate(model_requests_total[5m])", T0, END)
    with pytest.raises(InvalidQuery, match="parse error"):
        source.instant_query("rate(model_requests_total)", END)
    bad = DriftSettings(
        prediction_histogram="model_prediction_score",
        reference="training",
        window=WINDOW,
        error_rate="sum(rate(model_errors_total[5m]) / ",
    )
    view = DriftModel(source, bad, training=training_histogram(BEFORE)).refresh(T0, END)
    assert "parse error" in view.panel_errors["error_rate"]
    assert view.drift.points and not view.stale
    broken = replace(bad, prediction_histogram='model_prediction_score{le="', error_rate="")
    view = DriftModel(source, broken, training=training_histogram(BEFORE)).refresh(T0, END)
    assert "parse error" in view.panel_errors["drift"]
    assert view.current.band is DriftBand.NOT_ENOUGH_DATA and "parse error" in view.current.reason


def test_stopped_server_is_unavailable_quickly_and_view_goes_stale(prometheus: Any) -> None:
    source = PrometheusSource(prometheus.url, timeout=2.0)
    model = DriftModel(source, settings("training"), training=training_histogram(BEFORE))
    fresh = model.refresh(T0, END)
    assert not fresh.stale and fresh.drift.points
    prometheus.stop()
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="unreachable"):
        source.instant_query("up")
    view = model.refresh(T0, END)
    assert time.monotonic() - started < 5
    assert view.stale and "unreachable" in view.error
    assert view.drift == fresh.drift and view.fetched_at == fresh.fetched_at


def test_alerts_endpoint_answers(prometheus: Any) -> None:
    assert PrometheusSource(prometheus.url, selector='{job="x"}').alerts() == []
