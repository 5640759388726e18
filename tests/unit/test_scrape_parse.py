"""The scrape source's parsing, ring buffer and query vocabulary, on expositions fed at fixed
times; the query helpers (step, selectors) it shares with the Prometheus source; and how the
Prometheus source maps answers other than data to errors."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from core.domain import Histogram
from core.errors import BackendUnavailable, InvalidQuery, PermissionDenied
from core.metrics.prometheus import (
    MAX_POINTS,
    PrometheusSource,
    bucket_metric,
    parse_selector,
    step_for,
    with_selector,
)
from core.metrics.scrape import ScrapeSource, Threshold, parse_exposition

T0 = 1_700_000_000.0
INF = math.inf


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def exposition(requests: float, errors: float, buckets: tuple[float, float, float]) -> str:
    """Text exposition with two counters and a 3-bucket histogram (cumulative ``buckets``)."""
    b1, b2, inf = buckets
    return (
        "# HELP model_requests_total Requests.\n"
        "# TYPE model_requests_total counter\n"
        f'model_requests_total{{code="200"}} {requests}\n'
        f'model_requests_total{{code="500"}} {errors}\n'
        "# HELP model_errors_total Errors.\n"
        "# TYPE model_errors_total counter\n"
        f"model_errors_total {errors}\n"
        "# HELP model_prediction_score Scores.\n"
        "# TYPE model_prediction_score histogram\n"
        f'model_prediction_score_bucket{{le="0.5"}} {b1}\n'
        f'model_prediction_score_bucket{{le="1.0"}} {b2}\n'
        f'model_prediction_score_bucket{{le="+Inf"}} {inf}\n'
        f"model_prediction_score_count {inf}\n"
        f"model_prediction_score_sum {b2 * 0.5}\n"
    )


@pytest.fixture
def source() -> ScrapeSource:
    """Four scrapes 10 s apart; the process restarts between the third and the fourth."""
    s = ScrapeSource("http://127.0.0.1:1/metrics")
    s.ingest(exposition(0, 0, (0, 0, 0)), T0)
    s.ingest(exposition(100, 10, (60, 100, 100)), T0 + 10)
    s.ingest(exposition(150, 20, (70, 150, 150)), T0 + 20)
    s.ingest(exposition(20, 4, (5, 20, 20)), T0 + 30)  # reset
    return s


# -- parsing and raw values ------------------------------------------------


def test_parse_exposition_keeps_sample_names_and_labels() -> None:
    samples = parse_exposition(exposition(7, 1, (1, 2, 3)))
    assert samples["model_requests_total"] == [((("code", "200"),), 7.0), ((("code", "500"),), 1.0)]
    assert samples["model_prediction_score_bucket"][2] == ((("le", "+Inf"),), 3.0)
    with pytest.raises(ValueError):
        parse_exposition("this is { not an exposition\n")


def test_each_scrape_is_checked_whatever_the_one_before_it_was() -> None:
    """Lines read before (their names and labels remembered) are checked again with their
    new values: a count gone negative or buckets that now decrease are refused."""
    good = exposition(7, 1, (1, 2, 3))
    assert parse_exposition(good) == parse_exposition(good)
    later = parse_exposition(exposition(9, 2, (2, 4, 5)))
    assert later["model_requests_total"] == [((("code", "200"),), 9.0), ((("code", "500"),), 2.0)]
    assert later["model_prediction_score_bucket"][1] == ((("le", "1.0"),), 4.0)
    with pytest.raises(ValueError, match="is not a count"):
        parse_exposition(exposition(-1, 1, (1, 2, 3)))
    with pytest.raises(ValueError, match="cumulative buckets decrease"):
        parse_exposition(exposition(7, 1, (3, 2, 3)))
    assert parse_exposition(good)["model_errors_total"] == [((), 1.0)]


def test_raw_values_and_label_selector(source: ScrapeSource) -> None:
    (s,) = source.range_query('model_requests_total{code="500"}', at(0), at(30))
    assert s.points == ((T0, 0.0), (T0 + 10, 10.0), (T0 + 20, 20.0), (T0 + 30, 4.0))
    assert s.labels == {"code": "500"}
    assert len(source.range_query("model_requests_total", at(0), at(30))) == 2
    assert source.range_query("no_such_metric", at(0), at(30)) == []


def test_rate_handles_counter_reset(source: ScrapeSource) -> None:
    # errors 0, 10, 20, then 4 after a restart: increases 10, 10, 4 (a decrease counts the new
    # value). rate[15s] at t spans the scrapes in [t-15, t]: 10/10, 10/10, 4/10
    (s,) = source.range_query("rate(model_errors_total[15s])", at(0), at(30))
    assert s.points == ((T0 + 10, 1.0), (T0 + 20, 1.0), (T0 + 30, 0.4))
    # a later range start keeps the scrapes its trailing windows need
    (later,) = source.range_query("rate(model_errors_total[15s])", at(20), at(30))
    assert later.points == ((T0 + 20, 1.0), (T0 + 30, 0.4))
    # rate[30s] at t=30 spans t=0..30: (10 + 10 + 4) / 30 = 0.8
    (latest,) = source.instant_query("rate(model_errors_total[30s])")
    assert latest.points == ((T0 + 30, pytest.approx(0.8)),)


def test_sum_and_division_give_an_error_ratio(source: ScrapeSource) -> None:
    # at t=20: errors rate (20-10)/10 = 1; requests 200: (150-100)/10 = 5, 500: 1 -> 1/6
    (s,) = source.range_query(
        "sum(rate(model_errors_total[15s])) / sum(rate(model_requests_total[15s]))",
        at(20),
        at(20),
    )
    assert s.points == ((T0 + 20, pytest.approx(1 / 6)),)


def test_histogram_quantile_over_trailing_window(source: ScrapeSource) -> None:
    # window (10, 20]: bucket increases 0.5 -> 10, 1.0 -> 50, +Inf -> 50
    # p50: rank 25 in (0.5, 1.0] holding 40 with 10 below: 0.5 + 0.5 * 15/40 = 0.6875
    (s,) = source.instant_query("histogram_quantile(0.5, model_prediction_score[10s])", at(20))
    assert s.points == ((T0 + 20, pytest.approx(0.6875)),)


def test_histogram_window_between_edges_and_across_reset(source: ScrapeSource) -> None:
    # (0, 20]: cumulative at 20 minus at 0 = (70, 150, 150)
    h = source.histogram_window("model_prediction_score", at(0), at(20))
    assert h == Histogram((0.5, 1.0, INF), (70, 150, 150))
    # (10, 30]: (10, 50, 50) up to the restart, then everything after it (5, 20, 20)
    h = source.histogram_window("model_prediction_score", at(10), at(30))
    assert h == Histogram((0.5, 1.0, INF), (15, 70, 70))
    assert source.histogram_window("nothing", at(0), at(30)) == Histogram((), ())


def test_histogram_range_steps_over_the_range(source: ScrapeSource) -> None:
    windows = source.histogram_range("model_prediction_score", at(10), at(30), 10.0, width=3)
    # step 10 s: windows ending at 10, 20, 30
    assert [t - T0 for t, _ in windows] == [10, 20, 30]
    assert [h.total for _, h in windows] == [100, 50, 20]


def test_selector_restricts_histograms() -> None:
    s = ScrapeSource("http://127.0.0.1:1/metrics", selector='{model="a"}')

    def text(a: int, b: int) -> str:
        return (
            "# TYPE h histogram\n"
            f'h_bucket{{model="a",le="1"}} {a}\nh_bucket{{model="a",le="+Inf"}} {a}\n'
            f'h_bucket{{model="b",le="1"}} {b}\nh_bucket{{model="b",le="+Inf"}} {b}\n'
        )

    s.ingest(text(0, 0), T0)
    s.ingest(text(2, 20), T0 + 1)
    assert s.histogram_window("h", at(0), at(1)).total == 2
    assert s.histogram_window('h{model="b"}', at(0), at(1)).total == 0  # both matchers apply
    s.selector = ""
    assert s.histogram_window("h", at(0), at(1)).total == 22


def test_invalid_query_names_the_vocabulary(source: ScrapeSource) -> None:
    with pytest.raises(InvalidQuery, match="scrape sources understand"):
        source.range_query("avg_over_time(x[5m])", at(0), at(30))
    with pytest.raises(InvalidQuery, match="invalid duration"):
        source.range_query("rate(x[5q])", at(0), at(30))
    with pytest.raises(InvalidQuery, match="one division"):
        source.range_query("a / b / c", at(0), at(30))


def test_downsampling_keeps_about_one_point_per_column() -> None:
    s = ScrapeSource("http://127.0.0.1:1/metrics", capacity=1000)
    for i in range(600):
        s.ingest(f"# TYPE g gauge\ng {i}\n", T0 + i)
    (series,) = s.range_query("g", at(0), at(599), width=60)
    assert 55 <= len(series.points) <= 60
    assert series.points[-1] == (T0 + 599, 599.0)


def test_ring_buffer_is_bounded() -> None:
    s = ScrapeSource("http://127.0.0.1:1/metrics", capacity=3)
    for i in range(5):
        s.ingest(f"# TYPE g gauge\ng {i}\n", T0 + i)
    assert len(s) == 3
    (series,) = s.range_query("g", at(0), at(10))
    assert [v for _, v in series.points] == [2.0, 3.0, 4.0]


def test_local_thresholds_fire_alerts(source: ScrapeSource) -> None:
    source.thresholds = (
        Threshold("HighErrorRate", "rate(model_errors_total[15s])", 0.3, "critical"),
        Threshold("Quiet", "rate(model_errors_total[15s])", 5.0),
    )
    (alert,) = source.alerts()  # latest rate 0.4 > 0.3; not > 5
    assert (alert.name, alert.state, alert.severity) == ("HighErrorRate", "firing", "critical")
    assert "0.4 > 0.3" in alert.summary
    assert alert.since == at(30)


def test_unreachable_endpoint_is_backend_unavailable_and_keeps_data(source: ScrapeSource) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    source.url = f"http://127.0.0.1:{port}/metrics"
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="cannot scrape"):
        source.scrape_once()
    assert time.monotonic() - started < 2
    assert "cannot scrape" in source.last_error
    assert source.histogram_window("model_prediction_score", at(0), at(20)).total == 150
    source.close()


# -- helpers shared with the Prometheus source -----------------------------


@pytest.mark.parametrize(
    ("span", "width"),
    [(3600, 120), (86400, 1440), (86400, 120), (30 * 86400, 200), (365 * 86400, 50_000), (5, 120)],
)
def test_step_gives_about_one_point_per_column_and_at_most_11000(span: int, width: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    step = step_for(start, start + timedelta(seconds=span), width)
    points = math.floor(span / step) + 1
    assert step >= 1 and step == int(step)
    assert points <= min(width, MAX_POINTS)
    if span >= width:
        assert points >= min(width, MAX_POINTS) * 0.9


def test_selector_helpers() -> None:
    assert with_selector("m", '{job="a"}') == 'm{job="a"}'
    assert with_selector('m{x="1"}', '{job="a"}') == 'm{x="1",job="a"}'
    assert with_selector("m", "") == "m"
    assert bucket_metric('m{job="a"}') == 'm_bucket{job="a"}'
    assert bucket_metric("m_bucket") == "m_bucket"
    assert parse_selector('{job="a", env=~"p.*", team="x \\"y\\""}') == {
        "job": "a",
        "team": 'x "y"',
    }


# -- Prometheus source: answers other than data ------------------------------


def answering(
    status: int, body: object, seen: list[httpx.Request] | None = None
) -> PrometheusSource:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        content = body if isinstance(body, str) else json.dumps(body)
        return httpx.Response(status, text=content)

    return PrometheusSource(
        "http://prom.test", token="s3cret", transport=httpx.MockTransport(handler)
    )


def test_prometheus_error_text_is_kept_verbatim() -> None:
    source = answering(
        400,
        {"status": "error", "errorType": "bad_data", "error": '1:5: parse error: unclosed "("'},
    )
    with pytest.raises(InvalidQuery) as info:
        source.instant_query("sum(")
    assert str(info.value) == '1:5: parse error: unclosed "("'


def test_prometheus_refusal_overload_and_garbage() -> None:
    with pytest.raises(PermissionDenied, match="HTTP 401"):
        answering(401, "Unauthorized").instant_query("up")
    overloaded = {"status": "error", "errorType": "unavailable", "error": "too many queries"}
    with pytest.raises(BackendUnavailable, match="too many queries"):
        answering(503, overloaded).instant_query("up")
    with pytest.raises(BackendUnavailable, match="HTTP 502"):
        answering(502, "<html>bad gateway</html>").instant_query("up")


def test_prometheus_request_carries_token_and_parses_results() -> None:
    seen: list[httpx.Request] = []
    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"__name__": "up", "job": "a"}, "values": [[10, "1"], [20, "NaN"]]}
            ],
        },
    }
    start = datetime(2026, 1, 1, tzinfo=UTC)
    (series,) = answering(200, body, seen).range_query("up", start, start + timedelta(hours=1))
    assert series.name == 'up{job="a"}' and series.labels == {"job": "a"}
    assert series.points == ((10.0, 1.0),)  # NaN dropped
    assert seen[0].headers["Authorization"] == "Bearer s3cret"
    assert seen[0].url.params["step"] == "31.0"  # ceil(3600 / 119)


def test_prometheus_alerts_are_filtered_by_selector() -> None:
    body = {
        "status": "success",
        "data": {
            "alerts": [
                {
                    "labels": {"alertname": "Drift", "job": "churn", "severity": "page"},
                    "annotations": {"summary": "PSI high"},
                    "state": "firing",
                    "activeAt": "2026-01-01T10:00:00.123456789Z",
                },
                {"labels": {"alertname": "Other", "job": "x"}, "state": "pending"},
            ]
        },
    }
    source = answering(200, body)
    source.selector = '{job="churn"}'
    (alert,) = source.alerts()
    assert (alert.name, alert.state, alert.severity, alert.summary) == (
        "Drift",
        "firing",
        "page",
        "PSI high",
    )
    assert alert.since == datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)


def test_prometheus_that_never_answers_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    source = PrometheusSource(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(BackendUnavailable, match=r"did not answer within 0\.5s"):
            source.instant_query("up")
        assert time.monotonic() - started < 2
    finally:
        source.close()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()


def test_both_sources_implement_the_protocol() -> None:
    from core.metrics.base import MetricsSource

    assert isinstance(ScrapeSource("http://127.0.0.1:1/metrics"), MetricsSource)
    prometheus = PrometheusSource("http://127.0.0.1:1")
    assert isinstance(prometheus, MetricsSource)
    prometheus.close()


def test_range_query_ignores_history_older_than_its_windows_need() -> None:
    s = ScrapeSource("http://127.0.0.1:1/metrics", capacity=1000)
    for i in range(600):
        # a counter growing by 2/s, reset at t=100 (long before the range)
        s.ingest(f"# TYPE c counter\nc_total {2 * (i if i < 100 else i - 100)}\n", T0 + i)
    full = s.range_query("rate(c_total[10s])", at(0), at(599), width=1000)[0].points
    (late,) = s.range_query("rate(c_total[10s])", at(500), at(599), width=1000)
    assert late.points == tuple(p for p in full if p[0] >= T0 + 500)
    assert {v for _, v in late.points} == {2.0}
