"""The stable address of a local target: a tiny HTTP forwarder.

Run as a script (stdlib only, so it starts fast)::

    python local_proxy.py --port 8080 --upstream-file STATE/upstream.json

It listens on the target's stable port and forwards every request to the
live revision's server, whose port it reads from ``--upstream-file`` for each
request (a JSON object ``{"port": int, "revision": int}`` that the target
replaces atomically when it switches revisions). Clients therefore keep one
address across rollouts and rollbacks, and a switch takes effect on the very
next request without dropping connections. Responses carry an
``X-Mrc-Revision`` header naming the revision that answered. While no
upstream is recorded the proxy answers 503; when the upstream cannot be
reached it answers 502.
"""

from __future__ import annotations

import argparse
import http.client
import json
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


def read_upstream(path: Path) -> tuple[int, int] | None:
    """Return ``(port, revision)`` from the upstream file, or None when there is none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return int(data["port"]), int(data.get("revision", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def make_handler(upstream_file: Path, timeout: float) -> type[BaseHTTPRequestHandler]:
    """Return a request handler class forwarding to the upstream named in ``upstream_file``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes

        def _reply(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
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
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else None
            upstream = read_upstream(upstream_file)
            if upstream is None:
                self._reply(503, "no live revision\n")
                return
            port, revision = upstream
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except OSError as exc:
                self._reply(502, f"revision {revision} on port {port}: {exc}\n")
                return
            finally:
                conn.close()
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
            pass

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
