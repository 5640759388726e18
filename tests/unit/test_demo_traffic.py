"""The demo's burst of requests: every seeded customer once, over several connections."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.demo.churn import customer
from core.demo.traffic import burst
from core.targets.local import free_port


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                received.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_burst_sends_each_seeded_customer_once(server: tuple[str, list[dict]]) -> None:
    url, received = server
    assert burst(url, 37, seed=5, connections=4) == 37
    rng = random.Random(5)
    expected = [customer(rng, False) for _ in range(37)]
    key = lambda c: json.dumps(c, sort_keys=True)  # noqa: E731
    assert sorted(map(key, received)) == sorted(map(key, expected))


def test_a_burst_to_nobody_answers_none() -> None:
    assert burst(f"http://127.0.0.1:{free_port()}", 20, seed=5) == 0
