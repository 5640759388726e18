"""Both metrics sources fed garbage by a real HTTP server on the loopback interface.

Every answer that is not what the API promises is a typed error
(:class:`~core.errors.InvalidResponse`, a BackendUnavailable), never a raw
AttributeError/ValueError; an empty answer is no data, not an error; and the
guard turns each of them into an inconclusive check, never a pass.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core.cancel import CancelToken
from core.domain import Histogram
from core.errors import BackendUnavailable, InvalidResponse
from core.metrics.prometheus import PrometheusSource
from core.metrics.scrape import ScrapeSource
from core.services import guard as g

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Server:
    """Answers every GET with ``status``, ``content_type`` and ``body`` (set per test)."""

    def __init__(self) -> None:
        self.status = 200
        self.content_type = "application/json"
        self.body = ""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = outer.body.encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", outer.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def answer(self, body: Any, status: int = 200, content_type: str = "") -> None:
        self.status = status
        self.body = body if isinstance(body, str) else json.dumps(body)
        self.content_type = content_type or (
            "application/json" if not isinstance(body, str) else "text/plain"
        )

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
def prom(server: Server) -> Iterator[PrometheusSource]:
    source = PrometheusSource(server.url, timeout=5)
    yield source
    source.close()


def ok(data: Any) -> dict[str, Any]:
    return {"status": "success", "data": data}


def vector(*items: Any) -> dict[str, Any]:
    return ok({"resultType": "vector", "result": list(items)})


def bucket(le: str, value: Any) -> dict[str, Any]:
    return {"metric": {"le": le}, "value": [NOW.timestamp(), value]}


HTML = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>proxy</body></html>"

# -- the Prometheus source ------------------------------------------------------

QUERY_GARBAGE = {
    "data is a list": ok([1, 2]),
    "no resultType": ok({"result": []}),
    "result not a list": ok({"resultType": "vector", "result": {"a": 1}}),
    "item not an object": vector("up 1"),
    "metric not an object": vector({"metric": ["x"], "value": [1, "1"]}),
    "value not a pair": vector({"metric": {}, "value": "1"}),
    "value not a number": vector({"metric": {}, "value": [1, "one"]}),
    "value is null": vector({"metric": {}, "value": [1, None]}),
    "matrix without values": ok({"resultType": "matrix", "result": [{"metric": {}}]}),
    "status missing": {"data": {"resultType": "vector", "result": []}},
    "not an object": [1, 2, 3],
    "html page with 200": HTML,
}


@pytest.mark.parametrize("body", QUERY_GARBAGE.values(), ids=QUERY_GARBAGE.keys())
def test_query_answers_of_the_wrong_shape_are_invalid_responses(
    server: Server, prom: PrometheusSource, body: Any
) -> None:
    server.answer(body, content_type="text/html" if body is HTML else "")
    with pytest.raises(InvalidResponse):
        prom.instant_query("up")
    with pytest.raises(InvalidResponse):
        prom.range_query("up", NOW - timedelta(hours=1), NOW)


def test_an_html_error_page_with_502_is_unavailable(server: Server, prom: PrometheusSource) -> None:
    server.answer(HTML, status=502, content_type="text/html")
    with pytest.raises(BackendUnavailable, match="HTTP 502"):
        prom.instant_query("up")
    with pytest.raises(BackendUnavailable, match="HTTP 502"):
        prom.histogram_window("h", NOW - timedelta(minutes=5), NOW)


def test_nan_and_inf_query_values_are_no_data(server: Server, prom: PrometheusSource) -> None:
    server.answer(vector({"metric": {"a": "1"}, "value": [1, "NaN"]},
                         {"metric": {"a": "2"}, "value": [1, "+Inf"]}))  # fmt: skip
    assert all(s.points == () for s in prom.instant_query("x"))


HISTOGRAM_GARBAGE = {
    "negative count": vector(bucket("0.5", "-3"), bucket("+Inf", "10")),
    "nan count": vector(bucket("0.5", "NaN"), bucket("+Inf", "10")),
    "inf count": vector(bucket("0.5", "1"), bucket("+Inf", "+Inf")),
    "non-monotone buckets": vector(bucket("0.5", "80"), bucket("1", "20"), bucket("+Inf", "90")),
    "le not a number": vector(bucket("half", "1"), bucket("+Inf", "2")),
    "count not a number": vector(bucket("0.5", "many"), bucket("+Inf", "2")),
    "a matrix": ok({"resultType": "matrix", "result": []}),
    "html page with 200": HTML,
}


@pytest.mark.parametrize("body", HISTOGRAM_GARBAGE.values(), ids=HISTOGRAM_GARBAGE.keys())
def test_histogram_answers_that_are_not_counts_are_invalid_responses(
    server: Server, prom: PrometheusSource, body: Any
) -> None:
    server.answer(body)
    with pytest.raises(InvalidResponse):
        prom.histogram_window("model_prediction_score", NOW - timedelta(minutes=5), NOW)


def test_histogram_range_refuses_negative_counts(server: Server, prom: PrometheusSource) -> None:
    matrix = {"metric": {"le": "+Inf"}, "values": [[NOW.timestamp(), "-1"]]}
    server.answer(ok({"resultType": "matrix", "result": [matrix]}))
    with pytest.raises(InvalidResponse):
        prom.histogram_range("h", NOW - timedelta(minutes=5), NOW, 60)


def test_increase_extrapolation_dips_are_kept_for_the_drift_math_to_clip(
    server: Server, prom: PrometheusSource
) -> None:
    server.answer(vector(bucket("0.5", "400.2"), bucket("1", "399.9"), bucket("+Inf", "400")))
    h = prom.histogram_window("h", NOW - timedelta(minutes=5), NOW)
    assert h.cumulative == (400.2, 399.9, 400.0)


def test_an_empty_vector_is_no_data_not_an_error(server: Server, prom: PrometheusSource) -> None:
    server.answer(vector())
    assert prom.instant_query("up") == []
    assert prom.histogram_window("h", NOW - timedelta(minutes=5), NOW) == Histogram((), ())


ALERT_GARBAGE = {
    "alerts not a list": ok({"alerts": "none"}),
    "alert not an object": ok({"alerts": ["Drift"]}),
    "labels not an object": ok({"alerts": [{"labels": ["a"]}]}),
    "annotations not an object": ok({"alerts": [{"labels": {}, "annotations": "x"}]}),
}


@pytest.mark.parametrize("body", ALERT_GARBAGE.values(), ids=ALERT_GARBAGE.keys())
def test_alert_answers_of_the_wrong_shape_are_invalid_responses(
    server: Server, prom: PrometheusSource, body: Any
) -> None:
    server.answer(body)
    with pytest.raises(InvalidResponse):
        prom.alerts()


# -- the scrape source -----------------------------------------------------------

GOOD = (
    "# TYPE model_requests_total counter\nmodel_requests_total 10\n"
    "# TYPE h histogram\n"
    'h_bucket{le="0.5"} 3\nh_bucket{le="+Inf"} 5\nh_count 5\nh_sum 2\n'
)

EXPOSITION_GARBAGE = {
    "html page with 200": HTML,
    "negative counter": "# TYPE c_total counter\nc_total -5\n",
    "nan counter": "# TYPE c_total counter\nc_total NaN\n",
    "inf counter": "# TYPE c_total counter\nc_total +Inf\n",
    "negative bucket": '# TYPE h histogram\nh_bucket{le="0.5"} -1\nh_bucket{le="+Inf"} 2\n',
    "nan bucket": '# TYPE h histogram\nh_bucket{le="0.5"} NaN\nh_bucket{le="+Inf"} 2\n',
    "non-monotone buckets": '# TYPE h histogram\nh_bucket{le="0.5"} 9\nh_bucket{le="+Inf"} 2\n',
    "untyped non-monotone": 'h_bucket{le="0.5"} 9\nh_bucket{le="+Inf"} 2\n',
    "le not a number": 'h_bucket{le="half"} 1\nh_bucket{le="+Inf"} 2\n',
    "json instead": '{"requests": 10}',
}


@pytest.mark.parametrize("text", EXPOSITION_GARBAGE.values(), ids=EXPOSITION_GARBAGE.keys())
def test_garbled_expositions_are_invalid_and_keep_the_buffer(server: Server, text: str) -> None:
    source = ScrapeSource(server.url + "/metrics", timeout=5)
    try:
        server.answer(GOOD)
        source.scrape_once()
        server.answer(text)
        with pytest.raises(InvalidResponse):
            source.scrape_once()
        assert len(source) == 1  # the good scrape stays, nothing garbled was added
        assert source.health().last_error  # and the source says it is failing
        with pytest.raises(InvalidResponse):
            source.ingest(text, 2e9)
    finally:
        source.close()


def test_scrape_html_error_page_with_502_is_unavailable(server: Server) -> None:
    source = ScrapeSource(server.url + "/metrics", timeout=5)
    try:
        server.answer(HTML, status=502, content_type="text/html")
        with pytest.raises(BackendUnavailable, match="502"):
            source.scrape_once()
    finally:
        source.close()


def test_an_empty_exposition_is_no_data(server: Server) -> None:
    source = ScrapeSource(server.url + "/metrics", timeout=5)
    try:
        server.answer("")
        source.scrape_once()
        assert source.instant_query("model_requests_total") == []
        assert source.histogram_window("h", NOW - timedelta(minutes=5), NOW) == Histogram((), ())
    finally:
        source.close()


# -- the guard on top of a garbled source ----------------------------------------


class Target:
    model = "churn"
    name = "local"
    kind = "local"


class Token(CancelToken):
    """Waits by advancing the guard's fake clock."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self.clock = clock

    def wait(self, seconds: float) -> bool:
        self.clock[0] += seconds
        return self.cancelled


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (vector({"metric": {}, "value": [1, "one"]}), 200),
        (HTML, 200),
        (HTML, 502),
        (ok([1]), 200),
    ],
    ids=["not a number", "html 200", "html 502", "wrong shape"],
)
def test_the_guard_turns_garbage_into_an_inconclusive_source_error(
    server: Server, prom: PrometheusSource, body: Any, status: int
) -> None:
    server.answer(body, status=status)
    clock = [0.0]
    guard = g.Guard(
        prom,
        g.GuardSettings(duration=60, max_error_rate=0.05, interval=5, max_consecutive_errors=3),
        queries={"error_rate": "sum(rate(errors[1m]))"},
        clock=lambda: clock[0],
        now=lambda: NOW,
    )
    events = list(guard.watch("churn", Target(), NOW, Token(clock)))  # type: ignore[arg-type]
    assert events[-1].kind == g.INCONCLUSIVE
    assert events[-1].reason.startswith("source error for error_rate: 3 consecutive errors")
    assert not any(e.kind in (g.PASSED, g.BREACH) for e in events)
