"""HTTP/1.1 to one API server on the standard library: a keep-alive pool, proxies, streams.

:class:`Pool` opens requests to one server (``http`` or ``https``, directly or
through an ``http``/``https`` proxy) over :mod:`http.client` and :mod:`ssl`,
keeping up to ``size`` idle keep-alive connections; any number may be open
at once (long watches from many threads). It replaced urllib3, whose import
alone cost about 35 ms of ``mrc rollback``'s start-up, and keeps its policy:

* connecting (TCP) is retried once, on a fresh connection;
* an idle connection the server has closed is noticed before it is used and
  replaced; a request whose sending fails on a reused connection, or a GET
  or HEAD answered by nothing on one (the server closed it meanwhile), is
  retried once on a fresh connection. Nothing else is retried: a write
  (PATCH, POST, PUT, DELETE) that may have reached the server is never sent
  again, and answers (any status) are returned as they are;
* separate connect and read timeouts (``None``: wait as long as it takes);
* a connection goes back to the pool only once its answer was read to the
  end and the server did not ask to close it.

Failures are raised as :class:`TransportError`, which says whether the
request may have reached the server.
"""

from __future__ import annotations

import base64
import http.client
import select
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

#: Bytes asked of the socket per read of a streamed answer.
READ_SIZE = 65536
#: Largest proxy answer to a CONNECT (status line and headers) accepted.
MAX_TUNNEL_HEADER = 65536
#: Methods retried when a reused connection gives no answer at all.
SAFE_METHODS = frozenset({"GET", "HEAD"})


class TransportError(OSError):
    """A request could not be made or its answer could not be read.

    ``sent`` is True when the request may have reached the server (it was
    sent, and the answer did not come), so a write may have been applied.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class UnsupportedProxy(ValueError):
    """The proxy URL names a kind of proxy the pool cannot use (SOCKS, TLS in TLS, ...)."""


@dataclass(frozen=True)
class _Endpoint:
    host: str
    port: int
    https: bool

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _endpoint(url: str) -> tuple[_Endpoint, str, str]:
    """Return the endpoint of ``url``, its path without trailing slash, and its userinfo.

    Raises ValueError for a URL that is not ``http``/``https`` or has no host.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported scheme {scheme!r}")
    if not parts.hostname:
        raise ValueError("no host")
    port = parts.port or (443 if scheme == "https" else 80)
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    return _Endpoint(parts.hostname, port, scheme == "https"), parts.path.rstrip("/"), userinfo


class _Connection(http.client.HTTPConnection):
    """One keep-alive connection whose socket :class:`Pool` has already connected.

    Its host and port are the server's (for the ``Host`` header), even when
    the socket leads to a proxy; it never connects by itself.
    """

    auto_open = 0
    #: True once the connection carried a request (so a failure may be a stale keep-alive).
    used = False


class Response:
    """The answer to one request: ``status``, ``headers`` and the body, read once.

    Read the body with :meth:`read` or :meth:`chunks`; the connection goes
    back to its pool once the body was read to the end. :meth:`close` may be
    called from any thread, at any time, to abandon the answer.
    """

    def __init__(self, pool: Pool, conn: _Connection, resp: http.client.HTTPResponse) -> None:
        self.status = resp.status
        self.headers = resp.headers
        self._pool = pool
        self._conn = conn
        self._resp = resp
        self._lock = threading.Lock()
        self._done = False

    def read(self) -> bytes:
        """Return the whole body. Raises OSError or http.client.HTTPException when it breaks off."""
        try:
            data = self._resp.read()
        except BaseException:
            self.close()
            raise
        self._release()
        return data

    def chunks(self) -> Iterator[bytes]:
        """Yield the body as it arrives (a chunked stream: each piece when the server sends it).

        Ends at the end of the body, or quietly when :meth:`close` cut a
        plain (not chunked) body short. Raises OSError or
        http.client.HTTPException when the stream breaks off (also after
        :meth:`close` from another thread, for a chunked body).
        """
        try:
            while True:
                data = self._resp.read1(READ_SIZE)
                if not data:
                    break
                yield data
            self._resp.read()  # b"": lets http.client mark the answer complete
        except BaseException:
            self.close()
            raise
        self._release()

    def close(self) -> None:
        """Abandon the answer: shut the socket down (ending a read blocked in another thread).

        The connection is not reused. Never raises; closing twice does nothing.
        """
        with self._lock:
            if self._done:
                return
            self._done = True
        sock = self._conn.sock
        if sock is not None:
            try:
                # The plain socket's shutdown: a read blocked in another thread returns now.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass
        for closing in (self._resp.close, self._conn.close):
            try:
                closing()
            except Exception:
                pass

    def _release(self) -> None:
        """Give the connection back to the pool when the answer is complete (else close it)."""
        with self._lock:
            if self._done:
                return
            self._done = True
        conn = self._conn
        if self._resp.isclosed() and conn.sock is not None:
            self._pool._put(conn)
        else:
            conn.close()


class Pool:
    """Requests to one server (``server``, a URL) over keep-alive connections.

    ``tls`` is the TLS context for an ``https`` server, ``server_hostname``
    the name sent (SNI) and verified instead of the URL's host ("" for the
    host). ``proxy`` is an ``http://`` or ``https://`` proxy URL ("" for
    none; user and password in it are sent as ``Proxy-Authorization``):
    ``https`` servers are reached through a CONNECT tunnel, ``http`` servers
    by absolute-form requests to the proxy. Up to ``size`` idle connections
    are kept. Building one raises ValueError for a server URL that is not
    ``http``/``https``, and :class:`UnsupportedProxy` for a SOCKS or other
    proxy, or an ``https`` proxy in front of an ``https`` server.
    """

    def __init__(
        self,
        server: str,
        *,
        tls: ssl.SSLContext | None,
        server_hostname: str = "",
        proxy: str = "",
        size: int = 10,
    ) -> None:
        self.server, self._base, _ = _endpoint(server)
        if tls is None and self.server.https:
            tls = ssl.create_default_context()
        self._tls = tls
        self._server_hostname = server_hostname or self.server.host
        self._size = size
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._proxy: _Endpoint | None = None
        self._proxy_headers: dict[str, str] = {}
        self._proxy_tls: ssl.SSLContext | None = None
        if proxy:
            scheme = proxy.partition(":")[0].lower()
            if scheme not in ("http", "https"):
                raise UnsupportedProxy(f"{scheme} proxies are not supported")
            try:
                self._proxy, _, userinfo = _endpoint(proxy)
            except ValueError as exc:
                raise UnsupportedProxy(f"bad proxy URL: {exc}") from exc
            if userinfo:
                pair = unquote(userinfo).encode("utf-8")
                self._proxy_headers["Proxy-Authorization"] = "Basic " + (
                    base64.b64encode(pair).decode("ascii")
                )
            if self._proxy.https:
                if self.server.https:
                    raise UnsupportedProxy(
                        "an https:// proxy in front of an https:// server is not supported"
                    )
                self._proxy_tls = ssl.create_default_context()

    def open(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        connect_timeout: float,
        read_timeout: float | None,
    ) -> Response:
        """Send one request for ``target`` (path and query); return its :class:`Response`.

        Every status is returned (the caller judges it). Raises
        :class:`TransportError` when the server cannot be reached or the
        request fails before an answer's headers arrive.
        """
        forward = self._proxy is not None and not self.server.https
        url = self._base + target
        if forward:  # absolute form, to the proxy
            url = f"http://{self.server.netloc}{url}"
            headers = {**headers, **self._proxy_headers}
        retried = False
        while True:
            conn = self._take()
            if conn is None:
                try:
                    conn = self._connect(connect_timeout)
                except _ConnectFailed as exc:
                    if retried:
                        raise TransportError(str(exc), sent=False) from exc.__cause__
                    retried = True
                    continue
            reused = conn.used
            conn.used = True
            sock = conn.sock
            assert sock is not None
            try:
                sock.settimeout(connect_timeout)
                conn.request(method, url, body=body, headers=dict(headers))
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if reused and not retried:  # the server closed it meanwhile; it saw no request
                    retried = True
                    continue
                raise TransportError(
                    f"sending to {self._where()} failed: {_text(exc)}", sent=False
                ) from exc
            try:
                sock.settimeout(read_timeout)
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError) as exc:
                conn.close()
                if reused and not retried and method in SAFE_METHODS:
                    retried = True
                    continue
                raise TransportError(
                    f"{self._where()} closed the connection without answering: {_text(exc)}",
                    sent=True,
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                what = "read timed out" if isinstance(exc, TimeoutError) else _text(exc)
                raise TransportError(f"no answer from {self._where()}: {what}", sent=True) from exc
            return Response(self, conn, resp)

    def close(self) -> None:
        """Close the idle connections (open answers keep theirs). Never raises."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _where(self) -> str:
        return self.server.netloc

    def _take(self) -> _Connection | None:
        """Return an idle connection still open (the newest first), or None."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if not _dropped(conn):
                return conn
            conn.close()

    def _put(self, conn: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append(conn)
                return
        conn.close()

    def _connect(self, timeout: float) -> _Connection:
        """Return a new connection to the server (through the proxy, TLS done).

        Raises _ConnectFailed when the TCP connection cannot be made (worth
        one retry), TransportError when the proxy or TLS handshake fails.
        """
        hop = self._proxy or self.server
        try:
            sock = socket.create_connection((hop.host, hop.port), timeout)
        except OSError as exc:
            what = "proxy " if self._proxy else ""
            raise _ConnectFailed(f"cannot connect to {what}{hop.netloc}: {_text(exc)}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._proxy_tls is not None:
                sock = self._proxy_tls.wrap_socket(sock, server_hostname=hop.host)
            if self._proxy is not None and self.server.https:
                _tunnel(sock, self.server.netloc, self._proxy_headers)
            if self._tls is not None and self.server.https:
                sock = self._tls.wrap_socket(sock, server_hostname=self._server_hostname)
        except (OSError, ValueError) as exc:
            sock.close()
            raise TransportError(f"{self._where()}: {_text(exc)}", sent=False) from exc
        conn = _Connection(self.server.host, self.server.port, timeout=timeout)
        conn.default_port = 443 if self.server.https else 80
        conn.sock = sock
        return conn


class _ConnectFailed(Exception):
    """The TCP connection could not be made (retried once)."""


def _tunnel(sock: socket.socket, netloc: str, headers: Mapping[str, str]) -> None:
    """Ask the proxy on ``sock`` for a tunnel to ``netloc``; raises OSError when it refuses."""
    lines = [f"CONNECT {netloc} HTTP/1.1", f"Host: {netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    answer = b""
    while not answer.endswith(b"\r\n\r\n"):  # byte by byte: nothing after the headers is ours
        byte = sock.recv(1)
        if not byte or len(answer) > MAX_TUNNEL_HEADER:
            raise OSError("the proxy closed the connection during CONNECT")
        answer += byte
    status = answer.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    if len(status) < 2 or status[1] != "200":
        raise OSError(f"proxy refused the tunnel: {' '.join(status[1:]).strip()}")


def _dropped(conn: _Connection) -> bool:
    """Return True when an idle connection was closed by the server (or sent something unasked)."""
    sock = conn.sock
    if sock is None:
        return True
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _text(exc: BaseException) -> str:
    """Return ``exc``'s message, or its type name when it has none."""
    return str(exc).strip() or type(exc).__name__
