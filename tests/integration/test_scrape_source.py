"""The scrape source and the drift model against a live exporter whose predictions shift.

The exporter is a real prometheus-client HTTP endpoint; the source scrapes it
over HTTP. Scrape times come from a stepped clock (10 s per scrape) so that
ten minutes of history take a fraction of a second.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core.domain import Alert, DriftBand, Histogram, Marker, Series
from core.metrics.base import MetricsSource
from core.metrics.model import DriftModel
from core.metrics.scoring import DriftSettings
from core.metrics.scrape import ScrapeSource, Threshold
from core.metrics.sources import open_source
from tests.support.exporter import AFTER, BEFORE, Exporter, training_histogram

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
STEP = 10.0  # seconds between scrapes
RELEASE = T0 + 300  # the release (and the shift) after 30 scrapes
PER_SCRAPE = 50  # requests observed between two scrapes
WINDOW = 60.0  # 6 scrapes, 300 samples per window


def ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class SteppedClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    with Exporter() as e:
        yield e


def run_history(exporter: Exporter, source: ScrapeSource, clock: SteppedClock) -> None:
    """Scrape 60 times 10 s apart; the prediction distribution (and feature ``age``, and the
    error ratio) shift at RELEASE."""
    source.scrape_once()
    for _ in range(60):
        if clock.now == RELEASE:
            exporter.shift(AFTER, features={"age": AFTER}, error_ratio=0.1)
        exporter.observe(PER_SCRAPE)
        clock.now += STEP
        source.scrape_once()


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
        error_rate="sum(rate(model_errors_total[30s])) / sum(rate(model_requests_total[30s]))",
        latency_p95="histogram_quantile(0.95, model_latency_seconds[1m])",
        throughput="sum(rate(model_requests_total[30s]))",
    )


def test_release_shift_crosses_alert_after_the_marker(exporter: Exporter) -> None:
    clock = SteppedClock()
    source = ScrapeSource(
        exporter.url,
        clock=clock,
        thresholds=[
            Threshold(
                "HighErrorRate",
                "sum(rate(model_errors_total[30s])) / sum(rate(model_requests_total[30s]))",
                0.05,
                "critical",
            )
        ],
    )
    run_history(exporter, source, clock)
    marker = Marker(ts(RELEASE), "rollout → 2", "rollout", "local")
    model = DriftModel(
        source, settings("before_release"), markers=[marker], now=lambda: ts(clock.now)
    )
    view = model.refresh(ts(T0), ts(clock.now), width=61)

    assert not view.stale and view.markers == (marker,)
    before = [v for t, v in view.drift.points if t <= RELEASE]
    after = [v for t, v in view.drift.points if t >= RELEASE + WINDOW]
    assert len(before) >= 20 and len(after) >= 20
    assert max(before) < 0.1
    assert min(after) > 0.25
    first_alert = min(t for t, v in view.drift.points if v >= 0.25)
    assert RELEASE < first_alert <= RELEASE + WINDOW
    assert view.current.band is DriftBand.ALERT
    assert view.reference.startswith("1 min before rollout → 2 (")

    # prediction median moves from the low buckets to the high ones
    (p10, p50, p90) = view.quantiles
    assert p50.name == "p50"
    assert max(v for t, v in p50.points if t <= RELEASE) < 0.4
    assert min(v for t, v in p50.points if t >= RELEASE + WINDOW) > 0.6
    assert all(a <= b <= c for a, b, c in zip(
        [v for _, v in p10.points], [v for _, v in p50.points], [v for _, v in p90.points],
        strict=True,
    ))  # fmt: skip

    # only the shifted feature drifts
    ranked = dict(view.features)
    assert view.features[0][0] == "age"
    assert ranked["age"].band is DriftBand.ALERT
    assert ranked["income"].band is DriftBand.OK

    # service panels and the locally evaluated alerts
    (errors,) = view.error_rate
    assert errors.points[-1][1] == pytest.approx(0.1)
    assert max(v for t, v in errors.points if t <= RELEASE) == 0
    (throughput,) = view.throughput
    assert throughput.points[-1][1] == pytest.approx(PER_SCRAPE / STEP)
    assert view.latency and view.panel_errors == {}
    names = {a.name: a for a in view.alerts}
    assert names["HighErrorRate"].severity == "critical"
    assert names["PredictionDrift"].severity == "critical"


def test_data_shift_without_release_has_no_marker(exporter: Exporter) -> None:
    clock = SteppedClock()
    source = ScrapeSource(exporter.url, clock=clock)
    run_history(exporter, source, clock)
    model = DriftModel(source, settings("training"), training=training_histogram(BEFORE))
    view = model.refresh(ts(T0), ts(clock.now), width=61)
    assert view.markers == ()
    assert max(v for t, v in view.drift.points if t <= RELEASE) < 0.1
    assert min(v for t, v in view.drift.points if t >= RELEASE + WINDOW) > 0.25
    assert view.reference == "training histograms"

    # the same model with the release reference but no release: no number, a reason
    no_release = DriftModel(source, settings("before_release")).refresh(ts(T0), ts(clock.now))
    assert no_release.drift.points == ()
    assert no_release.current.band is DriftBand.NOT_ENOUGH_DATA
    assert "no release marker" in no_release.current.reason


def test_stopped_exporter_gives_stale_view_with_buffered_data(exporter: Exporter) -> None:
    clock = SteppedClock()
    source = ScrapeSource(exporter.url, clock=clock, timeout=1.0)
    run_history(exporter, source, clock)
    last_scrape = ts(clock.now)
    model = DriftModel(
        source, settings("before_release"), markers=[Marker(ts(RELEASE), "r", "rollout")]
    )
    fresh = model.refresh(ts(T0), ts(clock.now), width=61)
    assert not fresh.stale

    exporter.stop()
    clock.now += STEP
    started = time.monotonic()
    view = model.refresh(ts(T0), last_scrape, width=61)
    assert time.monotonic() - started < 3
    assert view.stale
    assert "cannot scrape" in view.error
    assert view.fetched_at == last_scrape
    assert view.drift == fresh.drift  # the buffered data is still drawn


def test_invalid_query_is_reported_per_panel(exporter: Exporter) -> None:
    clock = SteppedClock()
    source = ScrapeSource(exporter.url, clock=clock)
    run_history(exporter, source, clock)
    s = DriftSettings(
        prediction_histogram="model_prediction_score",
        reference="training",
        window=WINDOW,
        error_rate="avg_over_time(model_errors_total[5m])",
    )
    view = DriftModel(source, s, training=training_histogram(BEFORE)).refresh(ts(T0), ts(clock.now))
    assert "scrape sources understand" in view.panel_errors["error_rate"]
    assert view.drift.points  # the rest of the view is still there
    assert not view.stale


def test_background_scraper_fills_the_buffer(exporter: Exporter) -> None:
    source = ScrapeSource(exporter.url, interval=0.05, timeout=1.0)
    source.start()
    deadline = time.monotonic() + 5
    while len(source) < 3 and time.monotonic() < deadline:
        exporter.observe(10)
        time.sleep(0.05)
    source.close()
    assert len(source) >= 3
    end = datetime.now(UTC)
    h = source.histogram_window("model_prediction_score", end - timedelta(minutes=1), end)
    assert h.total > 0


def test_settings_from_config_turn_names_into_queries_and_guard_limits_into_alerts(
    exporter: Exporter,
) -> None:
    from core.config import DriftConfig, GuardConfig, MetricsConfig

    metrics = MetricsConfig(
        source="scrape",
        url=exporter.url,
        prediction_histogram="model_prediction_score",
        error_rate="model_errors_total",
        latency_p95="model_latency_seconds",
        throughput="model_requests_total",
    )
    s = DriftSettings.from_config(
        metrics,
        DriftConfig(reference="before_release", window=WINDOW),
        GuardConfig(max_error_rate=0.2, max_latency_p95=0.5),
    )
    assert s.error_rate == "sum(rate(model_errors_total[1m]))"
    assert s.latency_p95 == "histogram_quantile(0.95, model_latency_seconds[1m])"
    assert (s.max_error_rate, s.method, s.min_samples) == (0.2, "psi", 200)

    source = open_source(metrics)
    assert isinstance(source, ScrapeSource)
    clock = SteppedClock()
    source.clock = clock
    run_history(exporter, source, clock)
    model = DriftModel(source, s, markers=[Marker(ts(RELEASE), "rollout → 2", "rollout")])
    view = model.refresh(ts(T0), ts(clock.now), width=61)
    (errors,) = view.error_rate
    assert errors.points[-1][1] == pytest.approx(0.5)  # 5 errors per 10 s after the shift
    alerts = {a.name: a for a in view.alerts}
    assert alerts["HighErrorRate"].summary == "0.5 > 0.2"
    assert "HighLatency" not in alerts  # every request takes 0.02 s


def test_build_view_from_a_workspace_with_journal_markers(
    exporter: Exporter, tmp_path: pathlib.Path
) -> None:
    """The console's entry point: config -> scrape source (background scraper) -> view, with the
    journal's rollout as marker and reference; real time, so windows are a few seconds."""
    from core.config import parse
    from core.journal import Journal
    from core.services.views import build_view
    from core.services.workspace import Workspace

    config = parse(
        f"""
[[model]]
name = "churn"
repo = "{tmp_path}"

  [model.metrics]
  source = "scrape"
  url = "{exporter.url}"
  refresh = "0.2s"
  prediction_histogram = "model_prediction_score"
  feature_histograms = ['model_feature_value{{feature="age"}}']

  [model.drift]
  reference = "before_release"
  window = "1500ms"
  min_samples = 50
""",
        source=tmp_path / "mrc.toml",
    )
    journal = Journal(tmp_path / "journal.sqlite")
    workspace = Workspace(config, journal=journal, state_dir=tmp_path)
    start = datetime.now(UTC)
    try:

        def traffic(seconds: float) -> None:
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                exporter.observe(20)
                time.sleep(0.05)

        first = build_view(workspace, "churn", start, datetime.now(UTC), width=40)
        assert first.current.band is DriftBand.NOT_ENOUGH_DATA  # no release yet
        traffic(2.0)
        entry = journal.begin("churn", "local", "rollout", "1", "2", "test")
        journal.finish(entry, "done")
        exporter.shift(AFTER, features={"age": AFTER})
        traffic(2.5)
        view = build_view(workspace, "churn", start, datetime.now(UTC), width=40)
    finally:
        workspace.close()
    (marker,) = view.markers
    assert marker.kind == "rollout" and "2" in marker.label
    assert view.reference.startswith("1.5 s before rollout")
    assert view.current.band is DriftBand.ALERT, view.current
    assert view.features[0][0] == "age"
    assert view.drift.points and view.now == view.end
    assert [s.name for s in view.quantile_series] == ["p10", "p50", "p90"]


class WithoutHistogramRange(MetricsSource):
    """The scrape source behind only the abstract methods: every capability is the default."""

    def __init__(self, inner: ScrapeSource) -> None:
        self.inner = inner

    def range_query(
        self, query: str, start: datetime, end: datetime, *, width: int = 120
    ) -> list[Series]:
        return self.inner.range_query(query, start, end, width=width)

    def instant_query(self, query: str, at: datetime | None = None) -> list[Series]:
        return self.inner.instant_query(query, at)

    def histogram_window(self, metric: str, start: datetime, end: datetime) -> Histogram:
        return self.inner.histogram_window(metric, start, end)

    def alerts(self) -> list[Alert]:
        return self.inner.alerts()

    def close(self) -> None:
        self.inner.close()


def test_sources_without_histogram_range_give_the_same_view(exporter: Exporter) -> None:
    clock = SteppedClock()
    source = ScrapeSource(exporter.url, clock=clock)
    run_history(exporter, source, clock)
    markers = [Marker(ts(RELEASE), "rollout → 2", "rollout")]
    fast = DriftModel(source, settings("before_release"), markers=markers)
    slow = DriftModel(WithoutHistogramRange(source), settings("before_release"), markers=markers)
    a = fast.compute(ts(T0), ts(clock.now), width=61)
    b = slow.compute(ts(T0), ts(clock.now), width=61)
    assert a.drift.points and a.drift == b.drift
    assert a.quantiles == b.quantiles
