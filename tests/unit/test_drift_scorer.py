"""The metrics-source factory, the declared source capabilities and the one drift scorer."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from core.config import MetricsConfig, Secret
from core.domain import Alert, DriftBand, Histogram, Marker, Series
from core.metrics.base import MetricsSource, SourceHealth
from core.metrics.prometheus import PrometheusSource
from core.metrics.reference import Reference
from core.metrics.scoring import DriftScorer, DriftSettings, fixed_training, no_training
from core.metrics.scrape import ScrapeSource
from core.metrics.sources import open_source
from tests.support.exporter import AFTER, BEFORE, training_histogram

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RELEASE = T0 + timedelta(hours=1)


def metrics(source: str, **kw: object) -> MetricsConfig:
    return MetricsConfig(source=source, url="http://127.0.0.1:1/metrics", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["prometheus", "scrape"])
def test_every_source_kind_sends_the_configured_token_and_headers(kind: str) -> None:
    source = open_source(metrics(kind, token=Secret("t0k"), headers={"X-Org": "7"}))
    try:
        if isinstance(source, ScrapeSource):
            headers = source.headers
        else:
            assert isinstance(source, PrometheusSource)
            headers = dict(source._client.headers)
        lowered = {k.lower(): v for k, v in headers.items()}
        assert lowered["authorization"] == "Bearer t0k"
        assert lowered["x-org"] == "7"
    finally:
        source.close()


def test_scrape_source_sends_basic_authentication() -> None:
    source = open_source(metrics("scrape", username="ada", password=Secret("pw")))
    assert isinstance(source, ScrapeSource)
    expected = "Basic " + base64.b64encode(b"ada:pw").decode()
    assert source.headers["Authorization"] == expected


def test_scrape_interval_follows_refresh_within_bounds() -> None:
    fast = open_source(metrics("scrape", refresh=0.01))
    slow = open_source(metrics("scrape", refresh=600.0))
    assert isinstance(fast, ScrapeSource) and isinstance(slow, ScrapeSource)
    assert (fast.interval, slow.interval) == (0.2, 15.0)


class Windows(MetricsSource):
    """Only the abstract methods: before RELEASE the BEFORE distribution, after it AFTER."""

    def __init__(self) -> None:
        self.windows: list[tuple[datetime, datetime]] = []

    def range_query(
        self, query: str, start: datetime, end: datetime, *, width: int = 120
    ) -> list[Series]:
        return []

    def instant_query(self, query: str, at: datetime | None = None) -> list[Series]:
        return []

    def histogram_window(self, metric: str, start: datetime, end: datetime) -> Histogram:
        self.windows.append((start, end))
        return training_histogram(BEFORE if end <= RELEASE else AFTER)

    def alerts(self) -> list[Alert]:
        return []

    def close(self) -> None:
        pass


def test_optional_capabilities_have_their_documented_defaults() -> None:
    source = Windows()
    source.start()
    source.refresh()
    source.warm_up()
    assert source.health() == SourceHealth("", None)
    assert source.windows == []  # none of them touched the backend
    windows = source.histogram_range("h", T0, T0 + timedelta(seconds=30), 10.0, width=4)
    assert [t for t, _ in windows] == [T0.timestamp() + s for s in (0, 10, 20, 30)]
    assert source.windows[1] == (T0, T0 + timedelta(seconds=10))


def settings(reference: str, **kw: object) -> DriftSettings:
    return DriftSettings(prediction_histogram="h", reference=reference, window=600, **kw)  # type: ignore[arg-type]


def test_training_reference_comes_from_the_loader() -> None:
    source = Windows()
    after = (RELEASE + timedelta(minutes=5), RELEASE + timedelta(minutes=15))
    scorer = DriftScorer(
        source, settings("training"), training=fixed_training(training_histogram(BEFORE))
    )
    score, described = scorer.current(after[1])
    assert score.band is DriftBand.ALERT and described == "training histograms"
    assert scorer.score(*after) == score
    assert source.windows == [after] * 2  # the reference is not a window of the source

    missing = DriftScorer(source, settings("training"), training=no_training("no file here"))
    none = missing.score(*after)
    assert none.value is None and none.band is DriftBand.NOT_ENOUGH_DATA
    assert none.reason == "no file here"


def test_before_release_uses_the_window_before_the_latest_marker() -> None:
    source = Windows()
    markers = [Marker(RELEASE, "rollout → 2", "rollout"), Marker(T0, "rollout → 1", "rollout")]
    scorer = DriftScorer(source, settings("before_release"), markers=lambda: markers)
    end = RELEASE + timedelta(minutes=20)
    score, described = scorer.current(end)
    assert score.band is DriftBand.ALERT
    assert described.startswith("10 min before rollout → 2 (")
    assert source.windows[0] == (RELEASE - timedelta(minutes=10), RELEASE)

    before_any = scorer.score(T0 - timedelta(minutes=20), T0 - timedelta(minutes=10))
    assert before_any.band is DriftBand.NOT_ENOUGH_DATA
    assert "no release marker" in before_any.reason


def test_fixed_reference_is_the_configured_window() -> None:
    source = Windows()
    s = settings("fixed", reference_start=T0, reference_end=T0 + timedelta(minutes=10))
    score = DriftScorer(source, s).score(RELEASE, RELEASE + timedelta(minutes=10))
    assert score.band is DriftBand.ALERT
    assert source.windows[0] == (T0, T0 + timedelta(minutes=10))


def test_a_reference_without_the_feature_names_it() -> None:
    scorer = DriftScorer(
        Windows(),
        settings("training"),
        training=fixed_training(Reference(training_histogram(BEFORE))),
    )
    ref, why = scorer.reference("f", "age", RELEASE)
    assert ref is None and why == "training reference has no histogram for feature 'age'"
