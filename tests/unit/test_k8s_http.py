"""The Kubernetes HTTP transport against scripted loopback servers.

Each server runs one small script per accepted connection (read a request,
answer it, close, stall, stream chunks), so keep-alive expiry, resets, read
timeouts and streams are reproduced byte for byte. Requests go through
:class:`core.targets.k8s_api.Api`, as the console's and CLI's do.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from core.cancel import CancelToken
from core.errors import BackendUnavailable, ConfigError, Conflict, NotFound, PermissionDenied
from core.targets.k8s_api import Api, ApiError, closer
from core.targets.k8s_http import Pool, Response
from core.targets.kubeconfig import Connection
from tests.unit.test_kubeconfig import _issue, _pem

# --------------------------------------------------------------------------
# Scripted servers


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def read_request(rfile: BinaryIO) -> Request | None:
    """Return the next request on a connection, or None when the client closed it."""
    line = rfile.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        header = rfile.readline().decode("latin-1").strip()
        if not header:
            break
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = rfile.read(int(headers.get("content-length", "0")))
    return Request(method, path, headers, body)


def answer(sock: socket.socket, status: int, body: Any, *, close: bool = False) -> None:
    """Send one JSON answer (``Connection: close`` with ``close``)."""
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    )
    if close:
        head += "Connection: close\r\n"
    sock.sendall(head.encode() + b"\r\n" + data)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)

#: A connection's script: (connection number from 0, socket, its reader, the server).
Script = Callable[[int, socket.socket, BinaryIO, "Server"], None]


@dataclass
class Server:
    """A loopback server running ``script`` on every connection it accepts."""

    script: Script
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def next_request(self, rfile: BinaryIO) -> Request | None:
        request = read_request(rfile)
        if request is not None:
            with self._lock:
                self.requests.append(request)
        return request

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                number = self.connections
                self.connections += 1
                self._open.append(sock)
            threading.Thread(target=self._run, args=(number, sock), daemon=True).start()

    def _run(self, number: int, sock: socket.socket) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            with sock, sock.makefile("rb") as rfile:
                self.script(number, sock, rfile, self)
        except OSError:
            pass

    def stop(self) -> None:
        self.release.set()
        self._listener.close()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(script: Script, tls: ssl.SSLContext | None = None) -> Server:
        servers.append(Server(script, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def api(url: str, **settings: Any) -> Api:
    return Api(Connection(server=url, context="ctx", source="kubeconfig", **settings), "ctx")


def keep_alive(number: int, sock: socket.socket, rfile: BinaryIO, server: Server) -> None:
    """Answer every request with its method, path and connection number, keeping the connection."""
    while (request := server.next_request(rfile)) is not None:
        answer(sock, 200, {"method": request.method, "path": request.path, "conn": number})


# --------------------------------------------------------------------------
# Keep-alive connections


def test_connections_are_kept_alive_between_requests(serve: Callable[..., Server]) -> None:
    server = serve(keep_alive)
    client = api(server.url)
    answers = [client.request("GET", f"/r{i}", timeout=10.0) for i in range(5)]
    assert [a["conn"] for a in answers] == [0] * 5
    assert server.connections == 1


def test_a_connection_the_server_closed_after_answering_is_replaced(
    serve: Callable[..., Server],
) -> None:
    expired = threading.Event()

    def once(number: int, sock: socket.socket, rfile: BinaryIO, server: Server) -> None:
        request = server.next_request(rfile)
        assert request is not None
        answer(sock, 200, {"conn": number})  # keep-alive promised, then the connection expires
        sock.shutdown(socket.SHUT_RDWR)
        expired.set()

    server = serve(once)
    client = api(server.url)
    assert client.request("GET", "/a", timeout=10.0) == {"conn": 0}
    assert expired.wait(30)
    assert client.request("PATCH", "/b", timeout=10.0, body={"x": 1}) == {"conn": 1}
    assert [r.method for r in server.requests] == ["GET", "PATCH"]


def test_connection_close_answers_are_not_reused(serve: Callable[..., Server]) -> None:
    def closing(number: int, sock: socket.socket, rfile: BinaryIO, server: Server) -> None:
        if server.next_request(rfile) is not None:
            answer(sock, 200, {"conn": number}, close=True)
            server.release.wait(30)  # the socket stays open: only the header says "close"

    server = serve(closing)
    client = api(server.url)
    assert [client.request("GET", "/", timeout=10.0)["conn"] for _ in range(3)] == [0, 1, 2]


def test_answers_open_at_once_each_have_a_connection_and_size_idle_ones_are_kept(
    serve: Callable[..., Server],
) -> None:
    server = serve(keep_alive)
    pool = Pool(server.url, tls=None, size=2)

    def open_three() -> list[Response]:
        return [
            pool.open("GET", f"/{i}", headers={}, body=None, connect_timeout=5.0, read_timeout=5.0)
            for i in range(3)
        ]

    first = open_three()  # three answers unread at once: three connections
    assert [json.loads(r.read())["conn"] for r in first] == [0, 1, 2]
    second = open_three()  # two idle ones kept, the third was closed
    assert sorted(json.loads(r.read())["conn"] for r in second) == [0, 1, 3]
    assert server.connections == 4


def _expires_on_reuse(number: int, sock: socket.socket, rfile: BinaryIO, server: Server) -> None:
    """Answer the first request; read the second and close without answering (a keep-alive race)."""
    if server.next_request(rfile) is not None:
        answer(sock, 200, {"conn": number})
    if number == 0 and server.next_request(rfile) is not None:
        return
    keep_alive(number, sock, rfile, server)


def test_a_get_the_server_dropped_on_a_reused_connection_is_retried_once(
    serve: Callable[..., Server],
) -> None:
    server = serve(_expires_on_reuse)
    client = api(server.url)
    assert client.request("GET", "/first", timeout=10.0)["conn"] == 0
    assert client.request("GET", "/second", timeout=10.0)["conn"] == 1
    assert [r.path for r in server.requests] == ["/first", "/second", "/second"]


def test_a_patch_the_server_dropped_on_a_reused_connection_is_not_resent(
    serve: Callable[..., Server],
) -> None:
    server = serve(_expires_on_reuse)
    client = api(server.url)
    assert client.request("GET", "/first", timeout=10.0)["conn"] == 0
    with pytest.raises(BackendUnavailable, match=r"may or may not have been applied"):
        client.request("PATCH", "/deploy", timeout=10.0, body={"spec": {}})
    assert [r.method for r in server.requests] == ["GET", "PATCH"]
    assert server.requests[1].body == b'{"spec": {}}'
    assert client.request("GET", "/after", timeout=10.0)["conn"] == 1


# --------------------------------------------------------------------------
# Unreachable servers and timeouts


def test_a_refused_connection_is_backend_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(
        BackendUnavailable,
        match=rf"^cannot reach ctx API server: cannot connect to 127\.0\.0\.1:{port}: .*refused",
    ):
        api(f"http://127.0.0.1:{port}").request("GET", "/version", timeout=10.0)


def _silent(number: int, sock: socket.socket, rfile: BinaryIO, server: Server) -> None:
    """Read requests and never answer them."""
    while server.next_request(rfile) is not None:
        server.release.wait(30)


def test_a_server_that_never_answers_times_out(serve: Callable[..., Server]) -> None:
    server = serve(_silent)
    with pytest.raises(BackendUnavailable, match=r"^cannot reach ctx API server: .*timed out$"):
        api(server.url).request("GET", "/version", timeout=0.5)
    assert len(server.requests) == 1


def test_a_timed_out_patch_is_not_resent_and_may_have_been_applied(
    serve: Callable[..., Server],
) -> None:
    server = serve(_silent)
    with pytest.raises(
        BackendUnavailable, match=r"timed out \(the change may or may not have been applied\)$"
    ):
        api(server.url).request("PATCH", "/deploy", timeout=0.5, body={"spec": {}})
    assert [r.method for r in server.requests] == ["PATCH"]


# --------------------------------------------------------------------------
# Error answers


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (422, ApiError, "Deployment.apps is invalid"),
        (403, PermissionDenied, "Deployment.apps is invalid"),
        (409, Conflict, "Deployment.apps is invalid"),
        (404, NotFound, "deployment ml/iris not found in context ctx"),
    ],
)
def test_error_answers_are_mapped_and_the_connection_is_kept(
    serve: Callable[..., Server], status: int, error: type[Exception], message: str
) -> None:
    def refuse_once(number: int, sock: socket.socket, rfile: BinaryIO, server: Server) -> None:
        if server.next_request(rfile) is not None:
            status_body = {"kind": "Status", "message": "Deployment.apps is invalid"}
            answer(sock, status, status_body)
        keep_alive(number, sock, rfile, server)

    server = serve(refuse_once)
    client = api(server.url)
    with pytest.raises(error, match=message) as caught:
        client.request("PATCH", "/d", timeout=10.0, body={}, what="deployment ml/iris")
    if isinstance(caught.value, ApiError):
        assert caught.value.status == status
    assert client.request("GET", "/next", timeout=10.0)["conn"] == 0


def test_a_refused_watch_is_mapped(serve: Callable[..., Server]) -> None:
    def forbid(number: int, sock: socket.socket, rfile: BinaryIO, server: Server) -> None:
        if server.next_request(rfile) is not None:
            answer(sock, 403, {"kind": "Status", "message": "watch is forbidden"})

    server = serve(forbid)
    with pytest.raises(PermissionDenied, match="watch is forbidden"):
        list(api(server.url).watch("/w", query=[], timeout=10.0))


# --------------------------------------------------------------------------
# Streams


def test_watch_events_split_across_chunks_are_yielded_as_they_arrive(
    serve: Callable[..., Server],
) -> None:
    got_first = threading.Event()

    def stream(number: int, sock: socket.socket, rfile: BinaryIO, server: Server) -> None:
        if server.next_request(rfile) is None:
            return
        first = json.dumps({"type": "ADDED", "object": {"n": 1}}).encode() + b"\n"
        second = json.dumps({"type": "MODIFIED", "object": {"n": 2}}).encode() + b"\n"
        third = json.dumps({"type": "DELETED", "object": {"n": 3}}).encode() + b"\n"
        sock.sendall(STREAM_HEAD + chunk(first[:7]) + chunk(first[7:]))
        got_first.wait(30)  # the second event only once the first was yielded
        sock.sendall(chunk(second[:3]) + chunk(second[3:] + third[:10]) + chunk(third[10:]))
        sock.sendall(b"0\r\n\r\n")
        keep_alive(number, sock, rfile, server)

    server = serve(stream)
    client = api(server.url)
    events = []
    for event in client.watch("/w", query=[("resourceVersion", "5")], timeout=10.0):
        events.append(event)
        got_first.set()
    assert [(e["type"], e["object"]["n"]) for e in events] == [
        ("ADDED", 1),
        ("MODIFIED", 2),
        ("DELETED", 3),
    ]
    assert server.requests[0].path == "/w?resourceVersion=5&watch=true&timeoutSeconds=5"
    # A stream read to its end leaves its connection for the next request.
    assert client.request("GET", "/after", timeout=10.0)["conn"] == 0


def _stalled_stream(number: int, sock: socket.socket, rfile: BinaryIO, server: Server) -> None:
    """Start a chunked stream with one line, then send nothing more."""
    if server.next_request(rfile) is not None:
        event = json.dumps({"type": "ADDED", "object": {"n": 1}}).encode() + b"\n"
        sock.sendall(STREAM_HEAD + chunk(event))
        server.release.wait(60)


def _tls_server() -> tuple[ssl.SSLContext, bytes]:
    cert, key = _issue("localhost")
    pem = _pem(cert, key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "s.crt").write_bytes(pem.cert)
        (Path(tmp) / "s.key").write_bytes(pem.key)
        ctx.load_cert_chain(Path(tmp) / "s.crt", Path(tmp) / "s.key")
    return ctx, pem.cert


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_cancelling_ends_a_blocked_watch_at_once(serve: Callable[..., Server], tls: bool) -> None:
    settings: dict[str, Any] = {}
    server_tls = None
    if tls:
        server_tls, _ = _tls_server()
        settings["insecure"] = True
    server = serve(_stalled_stream, server_tls)
    client = api(server.url, **settings)
    cancel = CancelToken()
    current: list[Any] = []
    cancel.on_cancel(closer(current))
    first = threading.Event()
    outcome: list[Any] = []

    def consume() -> None:
        try:
            for event in client.watch("/w", query=[], timeout=60.0, cancel=cancel, current=current):
                outcome.append(event["object"]["n"])
                first.set()
            outcome.append("ended")
        except Exception as exc:
            outcome.append(exc)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    assert first.wait(30)
    cancel.cancel()  # the reader is blocked reading; the read timeout is 65 s
    reader.join(10)
    assert not reader.is_alive()
    assert outcome == [1, "ended"]


def test_closing_a_log_stream_from_another_thread_ends_it(serve: Callable[..., Server]) -> None:
    server = serve(_stalled_stream)
    client = api(server.url)
    current: list[Any] = []
    first = threading.Event()
    outcome: list[Any] = []

    def consume() -> None:
        try:
            for line in client.lines(
                "/log", query=[("follow", "true")], timeout=5.0, current=current
            ):
                outcome.append(json.loads(line)["type"])
                first.set()
            outcome.append("ended")
        except BackendUnavailable as exc:
            outcome.append(exc)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    assert first.wait(30)
    closer(current)()
    reader.join(10)
    assert not reader.is_alive()
    assert outcome[0] == "ADDED" and len(outcome) == 2


# --------------------------------------------------------------------------
# Request details and proxies


def test_headers_bodies_and_user_agent(serve: Callable[..., Server]) -> None:
    server = serve(keep_alive)
    client = api(server.url + "/prefix/", token="t")
    client.request(
        "PATCH",
        "/apis/x",
        timeout=10.0,
        body=[{"op": "replace", "path": "/a", "value": "é"}],
        content_type="application/json-patch+json",
    )
    client.request("POST", "/raw", timeout=10.0, body="naïve")
    patch, post = server.requests
    assert patch.path == "/prefix/apis/x"
    assert patch.headers["user-agent"] == "mrc"
    assert patch.headers["accept"] == "application/json"
    assert patch.headers["authorization"] == "Bearer t"
    assert patch.headers["content-type"] == "application/json-patch+json"
    assert json.loads(patch.body) == [{"op": "replace", "path": "/a", "value": "é"}]
    assert post.headers["content-type"] == "application/json"
    assert post.body == "naïve".encode()


@pytest.mark.parametrize(
    ("server", "proxy", "message"),
    [
        ("https://k8s.example", "socks5://127.0.0.1:1080", "socks5 proxies are not supported"),
        ("http://k8s.example", "socks5h://p:1080", "socks5h proxies are not supported"),
        ("https://k8s.example", "https://p:3128", "https:// proxy in front of an https://"),
    ],
)
def test_unsupported_proxies_are_config_errors(server: str, proxy: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        api(server, proxy=proxy, insecure=True)
    assert caught.value.path == "kubeconfig"
