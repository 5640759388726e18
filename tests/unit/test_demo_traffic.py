"""The demo's burst of requests: every seeded customer once, over several connections, and
sent from its own process only when asked."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
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


def burster(url: str, count: int) -> subprocess.Popen[bytes]:
    """Start ``python -m core.demo.traffic --burst`` as the sandbox does."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    argv = [sys.executable, "-m", "core.demo.traffic", "--url", url, "--seed", "5"]
    return subprocess.Popen(
        [*argv, "--burst", str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": root},
    )


def test_the_burst_process_sends_once_asked_and_prints_how_many_were_answered(
    server: tuple[str, list[dict]],
) -> None:
    url, received = server
    proc = burster(url, 25)
    try:
        out, _ = proc.communicate(b"go\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert out == b"25\n"
    rng = random.Random(5)
    expected = [customer(rng, False) for _ in range(25)]
    key = lambda c: json.dumps(c, sort_keys=True)  # noqa: E731
    assert sorted(map(key, received)) == sorted(map(key, expected))


def test_the_burst_process_sends_nothing_when_its_caller_goes_away(
    server: tuple[str, list[dict]],
) -> None:
    url, received = server
    proc = burster(url, 25)
    _, _ = proc.communicate(b"", timeout=30)  # stdin closed without a line
    assert proc.returncode == 1
    assert received == []


def test_stopping_the_start_ends_a_burst_in_flight() -> None:
    """Quitting while the first window's burst is sent does not wait for the burst."""
    from core.demo.sandbox import Background

    class Target:
        def stop_all(self) -> None:
            pass

    hanging = "import signal, sys\nsys.stdin.readline()\nsignal.pause()\n"  # never answers
    burster = subprocess.Popen(
        [sys.executable, "-c", hanging], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    background = Background(Target(), burster=burster)
    # What the start's thread does: ask for the burst and wait for its answer.
    start = threading.Thread(target=lambda: burster.communicate(b"go\n", timeout=300))
    background._thread = start
    start.start()
    try:
        background.stop()
        assert not start.is_alive()
        assert burster.returncode is not None
    finally:
        if burster.poll() is None:
            burster.kill()
            burster.wait()
        start.join()
