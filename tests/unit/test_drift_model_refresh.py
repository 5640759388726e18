"""DriftModel.refresh computes a view again only when something it shows could change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.domain import Histogram
from core.errors import BackendUnavailable
from core.metrics.base import SourceHealth
from core.metrics.model import DriftModel, DriftSettings
from core.metrics.scrape import ScrapeSource

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BOUNDS = (0.5, 1.0, float("inf"))


def exposition(n: int) -> str:
    """A prediction histogram with ``n`` observations spread over its buckets."""
    lines = ["# TYPE pred histogram"]
    for le, count in zip(("0.5", "1.0", "+Inf"), (n // 2, n, n), strict=True):
        lines.append(f'pred_bucket{{le="{le}"}} {count}')
    lines += [f"pred_count {n}", f"pred_sum {n * 0.5}"]
    return "\n".join(lines) + "\n"


def source_with(seconds: int) -> ScrapeSource:
    source = ScrapeSource("http://127.0.0.1:1/metrics")
    for s in range(seconds + 1):
        source.ingest(exposition(100 * s), (T0 + timedelta(seconds=s)).timestamp())
    return source


def model(source: ScrapeSource) -> DriftModel:
    settings = DriftSettings("pred", window=30, min_samples=10, feature_histograms=("pred",))
    reference = Histogram(BOUNDS, (50.0, 100.0, 100.0))
    return DriftModel(source, settings, training=reference, scrape_on_refresh=False)


def test_a_refresh_with_nothing_new_returns_the_same_view() -> None:
    source = source_with(60)
    dm = model(source)
    end = T0 + timedelta(seconds=60)
    first = dm.refresh(end - timedelta(seconds=60), end)
    assert first.current.value is not None
    assert dm.refresh(end - timedelta(seconds=60), end) is first
    # Data collected after the end cannot change the view of [start, end].
    source.ingest(exposition(6100), (end + timedelta(seconds=1)).timestamp())
    assert dm.refresh(end - timedelta(seconds=60), end) is first


def test_a_scrape_after_the_end_does_not_compute_the_view_again() -> None:
    """The screen asks for the view up to a 15 s mark while the scrape after the mark is
    still to come: when it arrives, past the end, the view is the one computed before."""
    source = ScrapeSource("http://127.0.0.1:1/metrics")
    for s in range(60):
        source.ingest(exposition(100 * s), (T0 + timedelta(seconds=s + 0.4)).timestamp())
    dm = model(source)
    end = T0 + timedelta(seconds=60)
    first = dm.refresh(end - timedelta(seconds=60), end)
    source.ingest(exposition(6100), (end + timedelta(seconds=0.4)).timestamp())
    assert dm.refresh(end - timedelta(seconds=60), end) is first
    assert source.collected_until(end) == T0 + timedelta(seconds=59.4)
    assert source.collected_until(T0) is None


def test_new_data_a_new_range_or_new_markers_compute_a_new_view() -> None:
    source = source_with(60)
    dm = model(source)
    end = T0 + timedelta(seconds=50)
    first = dm.refresh(end - timedelta(seconds=50), end)
    later = dm.refresh(end - timedelta(seconds=40), end + timedelta(seconds=10))
    assert later is not first and later.end == end + timedelta(seconds=10)
    # A late scrape at or before the end changes what the view shows.
    late = ScrapeSource("http://127.0.0.1:1/metrics")
    for s in range(0, 50, 2):
        late.ingest(exposition(100 * s), (T0 + timedelta(seconds=s)).timestamp())
    dm = model(late)
    first = dm.refresh(end - timedelta(seconds=50), end)
    late.ingest(exposition(5000), end.timestamp())
    again = dm.refresh(end - timedelta(seconds=50), end)
    assert again is not first
    assert again.current.samples > first.current.samples


def test_histogram_window_reads_only_the_scrapes_at_its_edges() -> None:
    """The window's counts are the same whether the buffer holds more before and after."""
    source = source_with(120)
    short = source_with(60)
    start, end = T0 + timedelta(seconds=20), T0 + timedelta(seconds=50)
    assert source.histogram_window("pred", start, end) == short.histogram_window("pred", start, end)
    assert source.histogram_window("pred", start, end).cumulative[-1] == 3000


class AnsweringSource(ScrapeSource):
    """Buffered data, but reported like a source that answers each query itself
    (no background collection, as Prometheus): it can stop answering."""

    down = False

    def health(self) -> SourceHealth:
        return SourceHealth()

    def histogram_range(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise BackendUnavailable("prometheus unreachable")
        return super().histogram_range(*args, **kwargs)


def test_a_source_without_background_collection_is_asked_at_every_refresh() -> None:
    source = AnsweringSource("http://127.0.0.1:1/metrics")
    for s in range(61):
        source.ingest(exposition(100 * s), (T0 + timedelta(seconds=s)).timestamp())
    dm = model(source)
    end = T0 + timedelta(seconds=60)
    first = dm.refresh(end - timedelta(seconds=60), end)
    again = dm.refresh(end - timedelta(seconds=60), end)
    assert again is not first and not again.stale
    source.down = True
    gone = dm.refresh(end - timedelta(seconds=60), end)
    assert gone.stale and "unreachable" in gone.error
