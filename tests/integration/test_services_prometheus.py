"""Prometheus is real: backfilled samples come back exactly, live targets are scraped."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.parse
import urllib.request

import pytest

from tests.services.common import ServiceError

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]


def _query(url: str, path: str, **params: str) -> dict:
    full = f"{url}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(full, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]


def test_backfilled_samples_come_back_exactly(prometheus_factory):
    start = 1_700_000_000  # an old, fixed instant: backfill must not depend on "now"
    values = [0.5, 0.25, 1.0 / 3.0, 2.0, 1e-9, 123456.789]
    lines = ["# TYPE model_drift gauge"]
    for i, v in enumerate(values):
        lines.append(f'model_drift{{model="m1",version="v2"}} {v!r} {start + 15 * i}')
    lines.append('model_drift{model="m1",version="v1"} 7 ' + str(start))
    prom = prometheus_factory(openmetrics="\n".join(lines) + "\n# EOF\n")

    data = _query(
        prom.url,
        "/api/v1/query_range",
        query='model_drift{version="v2"}',
        start=str(start),
        end=str(start + 15 * (len(values) - 1)),
        step="15",
    )
    assert len(data["result"]) == 1
    series = data["result"][0]
    assert series["metric"] == {"__name__": "model_drift", "model": "m1", "version": "v2"}
    assert [float(v) for _t, v in series["values"]] == values
    assert [int(t) for t, _v in series["values"]] == [start + 15 * i for i in range(len(values))]

    both = _query(prom.url, "/api/v1/query", query="count(model_drift)", time=str(start))
    assert both["result"][0]["value"][1] == "2"


def test_rejects_malformed_samples(prometheus_factory):
    with pytest.raises(ServiceError, match="promtool rejected"):
        prometheus_factory(openmetrics="not a metric line at all {\n# EOF\n")


class _Exporter(http.server.BaseHTTPRequestHandler):
    value = 41.5

    def do_GET(self):
        body = f"# TYPE live_gauge gauge\nlive_gauge {self.value}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_scrapes_live_target(prometheus_factory):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        target = f"127.0.0.1:{server.server_address[1]}"
        prom = prometheus_factory(scrape_targets=[target], scrape_interval="1s")
        deadline = time.monotonic() + 20
        result: list = []
        while time.monotonic() < deadline and not result:
            result = _query(prom.url, "/api/v1/query", query="live_gauge")["result"]
            time.sleep(0.5)
        assert result, "live target never scraped"
        assert result[0]["metric"]["instance"] == target
        assert float(result[0]["value"][1]) == 41.5
        prom.stop()
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2)
    finally:
        server.shutdown()
        server.server_close()
