"""Benchmark: query + drift for 24 hours at 1-minute resolution.

The Drift screen's view of one model over 24 h with one point per minute
(1,441 points per series): the drift score of every 10-minute window against
the window before a release, p10/p50/p90 of the predictions, two features
ranked, error rate and throughput. The data is 24 h of a model's metrics
with a release half-way through.

Against a real Prometheus (Debian's, started through the test services
harness with the history backfilled) when one can be started, else against
the scrape source's ring buffer filled synthetically with 1,441 scrapes; the
first line says which. Prints (never asserts), median of several runs:

* the baseline: the one range query fetching the prediction histogram's
  windows (``histogram_range``);
* the whole view (every query + drift scores + quantiles + feature ranking),
  and its ratio to the baseline;
* the drift math alone (scores and quantiles of the 1,441 windows);
* for the ring buffer, the whole view again with the per-scrape aggregates
  already computed (what a refresh after one new scrape costs).

Rendering is measured by the Drift screen's own benchmark.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.domain import Marker
from core.metrics import drift
from core.metrics.model import DriftModel, DriftSettings
from tests.support.exporter import openmetrics_history

END = datetime(2026, 1, 6, 0, 0, tzinfo=UTC)
START = END - timedelta(hours=24)
RELEASE = START + timedelta(hours=12)
WIDTH = 1441  # one point per minute: step = 86400 / 1440 = 60 s
RUNS = 5


def _median(func: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _settings() -> DriftSettings:
    return DriftSettings(
        prediction_histogram="model_prediction_score",
        feature_histograms=(
            'model_feature_value{feature="age"}',
            'model_feature_value{feature="income"}',
        ),
        reference="before_release",
        window=600.0,
        min_samples=200,
        error_rate="sum(rate(model_errors_total[5m])) / sum(rate(model_requests_total[5m]))",
        throughput="sum(rate(model_requests_total[5m]))",
    )


def _start_prometheus(root: Path, history: str) -> tuple[Any, Any] | None:
    """Return (service set, prometheus) or None when no Prometheus can be started here."""
    try:
        from tests.services.common import ServiceError
        from tests.services.harness import ServiceSet
    except ImportError:
        return None
    services = ServiceSet(root)
    try:
        return services, services.start_prometheus(openmetrics=history)
    except ServiceError as exc:
        print(f"  (no Prometheus: {exc})")
        services.stop()
        return None


def _ring_buffer_source(history: str) -> Any:
    """A scrape source holding the history as 1,441 scrapes one minute apart (no HTTP)."""
    from core.metrics.scrape import ScrapeSource

    source = ScrapeSource("http://127.0.0.1:1/metrics", capacity=2000)
    per_time: dict[str, list[str]] = {}
    for line in history.splitlines():
        if not line.startswith("#"):
            sample, _, stamp = line.rpartition(" ")
            per_time.setdefault(stamp, []).append(sample)
    for stamp in sorted(per_time, key=float):
        source.ingest("\n".join(per_time[stamp]) + "\n", float(stamp))
    return source


def _measure(source: Any, label: str) -> None:
    settings = _settings()
    model = DriftModel(source, settings, markers=[Marker(RELEASE, "rollout → 2", "rollout")])
    windows = source.histogram_range(
        settings.prediction_histogram, START, END, settings.window, width=WIDTH
    )
    view = model.compute(START, END, WIDTH)
    assert view.drift.points, f"no drift points: {view.current.reason} {view.panel_errors}"
    reference = source.histogram_window(
        settings.prediction_histogram, RELEASE - timedelta(minutes=10), RELEASE
    )

    def math_only() -> None:
        for _, h in windows:
            drift.score(reference, h, "psi", 0.1, 0.25, 200)
            for q in settings.quantiles:
                drift.quantile(q, h)

    # The scrape source keeps per-scrape aggregates: measure it cold (first view).
    cold: Callable[[], None] = getattr(source, "clear_cache", lambda: None)

    def query_once() -> None:
        cold()
        source.histogram_range(
            settings.prediction_histogram, START, END, settings.window, width=WIDTH
        )

    def whole_once() -> None:
        cold()
        model.compute(START, END, WIDTH)

    query = _median(query_once)
    whole = _median(whole_once)
    math_time = _median(math_only)
    print(f"bench_drift: 24 h at 1-minute resolution against {label}, median of {RUNS} runs")
    print(f"  windows per series                         {len(windows):8d}")
    print(f"  drift points drawn                         {len(view.drift.points):8d}")
    print(f"  baseline: histogram range query            {query * 1000:8.1f} ms")
    print(f"  whole view (queries + drift + features)    {whole * 1000:8.1f} ms")
    print(f"  ratio whole view / baseline query          {whole / query:8.2f}x")
    print(f"  drift math alone (scores + quantiles)      {math_time * 1000:8.1f} ms")
    if hasattr(source, "clear_cache"):
        model.compute(START, END, WIDTH)
        warm = _median(lambda: model.compute(START, END, WIDTH))
        print(f"  whole view, per-scrape aggregates cached   {warm * 1000:8.1f} ms")


def main() -> None:
    """Measure against Prometheus when one can be started, else the scrape ring buffer."""
    history = openmetrics_history(
        START.timestamp(), END.timestamp(), 60.0, RELEASE.timestamp(), per_step=100
    )
    with tempfile.TemporaryDirectory(prefix="mrc-bench-drift-") as tmp:
        started = _start_prometheus(Path(tmp), history)
        if started is not None:
            services, prom = started
            try:
                from core.metrics.prometheus import PrometheusSource

                source = PrometheusSource(prom.url, timeout=30.0)
                _measure(source, f"Prometheus ({prom.url}, backfilled)")
                source.close()
            finally:
                services.stop()
            return
    print("  Prometheus unavailable: using the scrape source's ring buffer instead")
    _measure(_ring_buffer_source(history), "the scrape ring buffer (synthetic)")


if __name__ == "__main__":
    main()
