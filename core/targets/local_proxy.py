"""The stable address of a local target: a tiny HTTP forwarder.

Run as a script (stdlib only, so it starts fast)::

    python local_proxy.py --port 8080 --upstream-file STATE/upstream.json

It listens on the target's stable port and forwards every request to the
live revision's server, whose port it reads from ``--upstream-file`` (a JSON
object ``{"port": int, "revision": int}`` that the target replaces atomically
when it switches revisions). Clients therefore keep one address across
rollouts and rollbacks, and a switch takes effect on the very next request
without dropping connections. Responses carry an ``X-Mrc-Revision`` header
naming the revision that answered. While no upstream is recorded the proxy
answers 503; when the upstream cannot be reached, or fails while answering,
it answers 502.

To stay cheap it does not redo per request what has not changed:

* the upstream file is looked at (``os.stat``) for each request but read and
  parsed again only when its identity (inode, modification time, size)
  changed, which every atomic replacement does;
* each client connection keeps one upstream connection (HTTP/1.1 keep-alive)
  while the file names the same port and revision. After a switch, the next request on it
  closes the kept connection and opens one to the new server; requests in
  flight finish on the old one. A kept connection is checked before reuse:
  readable while no request is outstanding means the server closed it (or
  sent something unasked), and a new one is opened. A request that fails is
  answered 502 and its connection dropped; only a GET, HEAD or OPTIONS that
  fails because a reused connection turned out closed is sent again, once,
  on a new connection. A POST is never sent twice.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import select
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
        "server",
        "date",
    }
)

#: Methods sent again (once, on a new connection) when a reused connection turns out closed.
RETRY_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def read_upstream(path: Path) -> tuple[int, int] | None:
    """Return ``(port, revision)`` from the upstream file, or None when there is none.

    None also for a file that cannot be read or does not hold such an object;
    never raises.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return int(data["port"]), int(data.get("revision", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class UpstreamFile:
    """The upstream file, read again only when its ``os.stat`` identity changed.

    The identity is ``(st_ino, st_mtime_ns, st_size)``: a replacement is a new
    file, hence a new inode while the old one is in place. Only a rewrite in
    place that keeps the size within the file system's timestamp granularity
    would go unnoticed; the target never writes the file in place.

    Safe to share between threads: the cache is one attribute holding a
    ``(identity, value)`` tuple, replaced whole. A thread that reads a stale
    identity at worst reads the file once more.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cached: tuple[tuple[int, int, int], tuple[int, int] | None] | None = None

    def current(self) -> tuple[int, int] | None:
        """Return ``(port, revision)`` as the file says now, or None when there is none.

        None for a missing, unreadable or invalid file (the latter is
        remembered until the file changes); never raises.
        """
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._cached
        if cached is not None and cached[0] == identity:
            return cached[1]
        # Replaced between the stat and the read: the newer value is stored under the
        # older identity, which only makes the next call read the file again.
        value = read_upstream(self.path)
        self._cached = (identity, value)
        return value


def dropped(conn: http.client.HTTPConnection) -> bool:
    """Return True when idle ``conn`` cannot carry another request; never raises.

    That is when it is not connected, or its socket is readable although no
    request is outstanding: the server closed it (EOF, reset) or sent bytes
    nobody asked for.
    """
    sock = conn.sock
    if sock is None:
        return True
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):  # closed under us
        return True


def make_handler(upstream_file: Path, timeout: float) -> type[BaseHTTPRequestHandler]:
    """Return a request handler class forwarding to the upstream named in ``upstream_file``.

    One instance serves one client connection for as long as it stays open,
    and keeps one upstream connection meanwhile (``timeout`` seconds for
    connecting and for each read); it closes it in :meth:`finish`.
    """
    upstream_state = UpstreamFile(upstream_file)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes

        #: The kept upstream connection and the ``(port, revision)`` it goes to.
        _conn: http.client.HTTPConnection | None = None
        _conn_to: tuple[int, int] | None = None

        def finish(self) -> None:
            """Close the client connection's files, then the kept upstream connection."""
            try:
                super().finish()
            finally:
                self._drop()

        def _drop(self) -> None:
            """Close and forget the kept upstream connection, if any; never raises."""
            conn, self._conn, self._conn_to = self._conn, None, None
            if conn is not None:
                conn.close()

        def _connection(self, upstream: tuple[int, int]) -> tuple[http.client.HTTPConnection, bool]:
            """Return a connection to ``upstream`` and whether it served a request before.

            The kept one when it goes to ``upstream`` and was not dropped by
            the server; otherwise that is closed and a new one (not connected
            yet) is kept instead. Never raises.
            """
            conn = self._conn
            if conn is not None and self._conn_to == upstream and not dropped(conn):
                return conn, True
            self._drop()
            conn = http.client.HTTPConnection("127.0.0.1", upstream[0], timeout=timeout)
            self._conn, self._conn_to = conn, upstream
            return conn, False

        def _exchange(
            self, upstream: tuple[int, int], body: bytes | None, headers: dict[str, str]
        ) -> tuple[http.client.HTTPResponse, bytes]:
            """Send this request to ``upstream``; return its response and the whole body.

            Keeps the connection for the next request unless the response
            closes it. Raises OSError or http.client.HTTPException when the
            exchange fails; the connection is dropped then. A RETRY_SAFE
            request that fails because a reused connection was closed by the
            server is sent once more on a new connection first.
            """
            conn, reused = self._connection(upstream)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if reused and self.command in RETRY_SAFE and isinstance(exc, ConnectionError):
                    return self._exchange(upstream, body, headers)  # not reused: once
                raise
            if response.will_close:
                self._drop()
            return response, data

        def _reply(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
            """Answer the client ``status`` with ``text``; OSError when it is gone."""
            body = text.encode("utf-8")
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forward(self) -> None:
            """Answer the client's request with the live revision's answer, 503 or 502.

            Raises OSError when the client is gone and ValueError for a
            Content-Length that is not a number (the server then closes the
            client's connection, and :meth:`finish` the upstream one).
            """
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else None
            upstream = upstream_state.current()
            if upstream is None:
                self._reply(503, "no live revision\n")
                return
            port, revision = upstream
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            try:
                response, data = self._exchange(upstream, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                self._reply(502, f"revision {revision} on port {port}: {exc}\n")
                return
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("X-Mrc-Revision", str(revision))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _forward

        def log_message(self, format: str, *args: object) -> None:
            """Log nothing: requests are not worth a line each."""

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Serve until killed; return 1 when the port cannot be bound."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--upstream-file", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    try:
        server = ThreadingHTTPServer(
            (args.host, args.port), make_handler(args.upstream_file, args.timeout)
        )
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"forwarding {args.host}:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
