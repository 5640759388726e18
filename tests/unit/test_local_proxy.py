"""The local target's forwarder, run as the target runs it, against real upstream servers.

The forwarder (:mod:`core.targets.local_proxy`) keeps one upstream connection
per client connection while the upstream stays the same, reads the upstream
file only when it changed, and never sends a request twice unless it is safe
to. The upstream servers here run in the test's threads and count the
connections they accept, the requests and the bodies they receive.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.targets import local_proxy
from core.targets.local import free_port

SCRIPT = Path(local_proxy.__file__)
WAIT = 10.0  # seconds: for what happens at once, unless the machine stalls


class Upstream(ThreadingHTTPServer):
    """A revision's server: answers with its name and counts what reaches it.

    ``mode`` says how it treats connections: "" keeps them open (HTTP/1.1
    keep-alive), "close" closes each after its response without saying so,
    "idle" closes one that stays idle for a moment, "announce" answers with
    ``Connection: close``, and "hangup" reads the second request of each
    connection and closes it without an answer.
    """

    daemon_threads = True

    def __init__(self, name: str, mode: str = "") -> None:
        super().__init__(("127.0.0.1", 0), UpstreamHandler)
        self.name = name
        self.mode = mode
        self.lock = threading.Lock()
        self.connections = 0
        self.requests: list[tuple[str, bytes]] = []  # (method, body) as received
        self.closed = threading.Semaphore(0)  # released once per connection closed
        self.thread = threading.Thread(target=self.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [body for method, body in self.requests if method == "POST"]

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        super().shutdown_request(request)
        self.closed.release()

    def wait_closed(self) -> None:
        """Return once the server has closed one more connection."""
        assert self.closed.acquire(timeout=WAIT), f"{self.name}: no connection closed"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    server: Upstream

    def setup(self) -> None:
        super().setup()
        if self.server.mode == "idle":
            self.connection.settimeout(0.1)  # an idle connection is closed after 0.1 s
        self.served = 0
        with self.server.lock:
            self.server.connections += 1

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.requests.append((self.command, body))
        self.served += 1
        if self.server.mode == "hangup" and self.served == 2:
            self.close_connection = True
            return
        text = f"{self.server.name} {self.command} {body.decode()}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        if self.server.mode == "announce":
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(text)
        if self.server.mode == "close":
            self.close_connection = True

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def point_at(upstream_file: Path, port: int, revision: int) -> None:
    """Switch as the target does: replace the upstream file atomically."""
    tmp = upstream_file.with_name(f".{upstream_file.name}.tmp")
    tmp.write_text(json.dumps({"port": port, "revision": revision}) + "\n", encoding="utf-8")
    os.replace(tmp, upstream_file)


class Forwarder:
    """The forwarder process on a free port, and the client side of it."""

    def __init__(self, upstream_file: Path, log: Path) -> None:
        self.port = free_port()
        self.log = log
        argv = [sys.executable, "-I", "-S", str(SCRIPT), "--port", str(self.port)]
        argv += ["--upstream-file", str(upstream_file)]
        with open(log, "wb") as err:
            self.popen = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        assert line.startswith(b"forwarding "), line + log.read_bytes()

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)

    def stop(self) -> None:
        self.popen.kill()
        self.popen.wait(timeout=WAIT)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def send(
    conn: http.client.HTTPConnection, method: str = "GET", body: bytes | None = None
) -> tuple[int, str, str]:
    """Send one request on ``conn``; return the status, X-Mrc-Revision and the body."""
    conn.request(method, "/predict", body=body)
    response = conn.getresponse()
    text = response.read().decode()
    return response.status, response.getheader("X-Mrc-Revision") or "", text


@pytest.fixture
def upstream_file(tmp_path: Path) -> Path:
    return tmp_path / "upstream.json"


@pytest.fixture
def upstreams() -> Iterator[Callable[..., Upstream]]:
    """Start upstream servers on demand; stop them all at the end."""
    started: list[Upstream] = []

    def start(name: str, mode: str = "") -> Upstream:
        server = Upstream(name, mode)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def forwarder(
    upstream_file: Path, tmp_path: Path, upstreams: Callable[..., Upstream]
) -> Iterator[Forwarder]:
    """The forwarder process; stopped before the upstream servers, and it must not
    have logged any error (a handler's traceback)."""
    proxy = Forwarder(upstream_file, tmp_path / "proxy.log")
    try:
        yield proxy
    finally:
        proxy.stop()
    assert proxy.log.read_text() == ""


# --------------------------------------------------------------------------
# Keeping the upstream connection


def test_requests_on_one_client_connection_share_one_upstream_connection(
    forwarder: Forwarder, upstreams: Callable[..., Upstream], upstream_file: Path
) -> None:
    a = upstreams("a")
    point_at(upstream_file, a.port, 1)
    conn = forwarder.connect()
    try:
        answers = [send(conn, "POST", str(i).encode()) for i in range(20)]
        assert send(conn, "HEAD") == (200, "1", "")
        assert send(conn, "GET") == (200, "1", "a GET ")
    finally:
        conn.close()
    assert answers == [(200, "1", f"a POST {i}") for i in range(20)]
    assert a.connections == 1
    assert a.bodies() == [str(i).encode() for i in range(20)]
    a.wait_closed()  # the client went away, so did the forwarder's upstream connection


def test_each_client_connection_has_its_own_upstream_connection(
    forwarder: Forwarder, upstreams: Callable[..., Upstream], upstream_file: Path
) -> None:
    a = upstreams("a")
    point_at(upstream_file, a.port, 1)
    statuses: list[int] = []

    def client(index: int) -> None:
        conn = forwarder.connect()
        try:
            statuses.extend(send(conn, "POST", f"{index}-{i}".encode())[0] for i in range(10))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert statuses == [200] * 40
    assert a.connections == 4
    assert sorted(a.bodies()) == sorted(f"{i}-{j}".encode() for i in range(4) for j in range(10))


def test_a_switch_takes_effect_on_the_next_request_of_the_same_connection(
    forwarder: Forwarder, upstreams: Callable[..., Upstream], upstream_file: Path
) -> None:
    a, b = upstreams("a"), upstreams("b")
    point_at(upstream_file, a.port, 1)
    conn = forwarder.connect()
    try:
        assert send(conn, "POST", b"1") == (200, "1", "a POST 1")
        assert send(conn, "POST", b"2") == (200, "1", "a POST 2")
        point_at(upstream_file, b.port, 2)
        assert send(conn, "POST", b"3") == (200, "2", "b POST 3")
        a.wait_closed()  # the connection to the old server is given up at the switch
        assert send(conn, "POST", b"4") == (200, "2", "b POST 4")
        point_at(upstream_file, a.port, 3)  # a rollback to a server still running
        assert send(conn, "POST", b"5") == (200, "3", "a POST 5")
    finally:
        conn.close()
    assert (a.connections, b.connections) == (2, 1)
    assert (a.bodies(), b.bodies()) == ([b"1", b"2", b"5"], [b"3", b"4"])


# --------------------------------------------------------------------------
# Connections the upstream closes


@pytest.mark.parametrize("mode", ["close", "idle"])
def test_a_connection_the_upstream_closed_is_replaced_before_the_next_request(
    forwarder: Forwarder, upstreams: Callable[..., Upstream], upstream_file: Path, mode: str
) -> None:
    a = upstreams("a", mode)
    point_at(upstream_file, a.port, 1)
    conn = forwarder.connect()
    try:
        for i in range(3):
            assert send(conn, "POST", str(i).encode()) == (200, "1", f"a POST {i}")
            a.wait_closed()  # closed by the server, silently
    finally:
        conn.close()
    assert a.connections == 3
    assert a.bodies() == [b"0", b"1", b"2"]


def test_an_upstream_announcing_connection_close_gets_a_new_connection_each_time(
    forwarder: Forwarder, upstreams: Callable[..., Upstream], upstream_file: Path
) -> None:
    a = upstreams("a", "announce")
    point_at(upstream_file, a.port, 1)
    conn = forwarder.connect()
    try:
        answers = [send(conn, "POST", str(i).encode()) for i in range(3)]
    finally:
        conn.close()
    assert answers == [(200, "1", f"a POST {i}") for i in range(3)]
    assert a.connections == 3
    assert a.bodies() == [b"0", b"1", b"2"]


def test_a_post_is_never_sent_twice_but_a_get_is_sent_again_on_a_new_connection(
    forwarder: Forwarder, upstreams: Callable[..., Upstream], upstream_file: Path
) -> None:
    """The server hangs up on the second request of each connection, after reading it."""
    a = upstreams("a", "hangup")
    point_at(upstream_file, a.port, 1)
    conn = forwarder.connect()
    try:
        assert send(conn, "GET") == (200, "1", "a GET ")
        assert send(conn, "GET") == (200, "1", "a GET ")  # hung up on, sent again
        status, revision, text = send(conn, "POST", b"once")  # hung up on: not sent again
        assert (status, revision) == (502, "")
        assert text.startswith(f"revision 1 on port {a.port}: ")
        assert send(conn, "POST", b"next") == (200, "1", "a POST next")
    finally:
        conn.close()
    gets = [("GET", b"")] * 3  # the second one twice
    assert a.requests == [*gets, ("POST", b"once"), ("POST", b"next")]
    assert a.connections == 3


# --------------------------------------------------------------------------
# No upstream


def test_no_upstream_file_answers_503_until_there_is_one(
    forwarder: Forwarder, upstreams: Callable[..., Upstream], upstream_file: Path
) -> None:
    conn = forwarder.connect()
    try:
        assert send(conn, "GET") == (503, "", "no live revision\n")
        assert send(conn, "HEAD") == (503, "", "")
        upstream_file.write_text("{not json", encoding="utf-8")
        assert send(conn, "GET") == (503, "", "no live revision\n")
        a = upstreams("a")
        point_at(upstream_file, a.port, 1)
        assert send(conn, "GET") == (200, "1", "a GET ")
        upstream_file.unlink()
        assert send(conn, "GET") == (503, "", "no live revision\n")
    finally:
        conn.close()


def test_an_upstream_not_listening_answers_502_and_the_next_request_goes_through(
    forwarder: Forwarder, upstreams: Callable[..., Upstream], upstream_file: Path
) -> None:
    nobody = free_port()
    point_at(upstream_file, nobody, 1)
    conn = forwarder.connect()
    try:
        status, revision, text = send(conn, "POST", b"lost")
        assert (status, revision) == (502, "")
        assert text.startswith(f"revision 1 on port {nobody}: ")
        a = upstreams("a")
        point_at(upstream_file, a.port, 2)
        assert send(conn, "POST", b"found") == (200, "2", "a POST found")
    finally:
        conn.close()
    assert a.bodies() == [b"found"]


# --------------------------------------------------------------------------
# The upstream file, in this process


def test_the_upstream_file_is_read_again_only_when_it_changed(
    upstream_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    read = local_proxy.read_upstream

    def counting(path: Path) -> tuple[int, int] | None:
        reads.append(path)
        return read(path)

    monkeypatch.setattr(local_proxy, "read_upstream", counting)
    state = local_proxy.UpstreamFile(upstream_file)
    assert state.current() is None
    point_at(upstream_file, 8001, 1)
    assert [state.current() for _ in range(5)] == [(8001, 1)] * 5
    assert len(reads) == 1
    point_at(upstream_file, 8002, 2)  # the same size: a new file all the same
    assert [state.current() for _ in range(5)] == [(8002, 2)] * 5
    assert len(reads) == 2
    upstream_file.write_text('{"port": [], "revision": 3}', encoding="utf-8")
    assert [state.current() for _ in range(5)] == [None] * 5
    assert len(reads) == 3
    upstream_file.unlink()
    assert state.current() is None
    assert len(reads) == 3
