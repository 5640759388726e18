"""The Kubernetes REST layer: JSON requests to API servers, shared per (kubeconfig, context).

Requests go through one keep-alive connection pool per API server
(:mod:`core.targets.k8s_http`, on the standard library), built from the
:class:`~core.targets.kubeconfig.Connection` a kubeconfig describes, and are
answered as plain dicts, exactly as the server serialised them. That keeps
large lists cheap (no model objects) and lets a patch carry an object
byte-for-byte. The official ``kubernetes`` package is not used here: importing
it costs about half a second (see :mod:`core.targets.kubeconfig`, which falls
back to its loader only for kubeconfigs it does not read itself).

One :class:`Api` exists per (kubeconfig, context) in a module-level registry,
so several contexts are live at once and targets on the same cluster share
connections. Every request has a timeout. Errors are mapped to
:mod:`core.errors` by :func:`http_error`: unreachable server ->
BackendUnavailable, 404 -> NotFound, 401/403 -> PermissionDenied (with the
server's message), 409 -> Conflict, 5xx -> BackendUnavailable, others ->
OperationFailed.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from core.cancel import CancelToken
from core.errors import (
    BackendUnavailable,
    ConfigError,
    Conflict,
    MrcError,
    NotFound,
    OperationFailed,
    PermissionDenied,
)
from core.sanitize import redact_url
from core.targets.k8s_http import Pool, Response, TransportError, UnsupportedProxy
from core.targets.kubeconfig import Connection, kubeconfig_paths, load_connection

#: Server-side timeout of one watch request; short so cancellation is noticed promptly.
WATCH_SECONDS = 5
#: Items asked for per page of a list call.
LIST_PAGE = 500
#: Idle connections kept open per API server (more are opened while watches run at once).
POOL_SIZE = 20
#: Sent with every request, so the server's audit log names the console.
USER_AGENT = "mrc"

#: A Kubernetes object (or list, or status) as the server's decoded JSON.
Obj = dict[str, Any]


class ApiError(OperationFailed):
    """The API server refused a request with an HTTP status no other core error stands for.

    ``status`` is that HTTP status (e.g. 422 for an invalid or stale object);
    the message is the server's own.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Api:
    """JSON requests to one API server through one keep-alive connection pool.

    Obtain one with :func:`api_for` (shared per kubeconfig and context);
    ``context`` is the name used in error messages. The pool is built from
    ``connection`` (server, TLS settings, credentials; see
    :mod:`core.targets.kubeconfig`). Every method raises BackendUnavailable
    when the server cannot be reached (a timed-out write says the change may
    or may not have been applied), ConfigError when the credentials cannot be
    read, and the error :func:`http_error` maps an HTTP error answer to.
    Building one raises ConfigError when the client certificate or CA cannot
    be loaded, or the proxy is not an ``http``/``https`` one.
    """

    def __init__(self, connection: Connection, context: str) -> None:
        self.connection = connection
        self.context = context
        self._pool = _pool_for(connection)

    def _send(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, Any]] | None,
        body: Any,
        content_type: str | None,
        timeout: tuple[float, float | None],
    ) -> Response:
        target = path
        if query:
            target += "?" + urlencode([(k, _query_value(v)) for k, v in query])
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        authorization = self.connection.authorization()
        if authorization:
            headers["Authorization"] = authorization
        data: bytes | None = None
        if body is not None:
            if isinstance(body, bytes):
                data = body
            else:
                text = body if isinstance(body, str) else json.dumps(body)
                data = text.encode("utf-8")
            headers["Content-Type"] = content_type or "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        try:
            return self._pool.open(
                method,
                target,
                headers=headers,
                body=data,
                connect_timeout=timeout[0],
                read_timeout=timeout[1],
            )
        except Exception as exc:
            raise self._unreachable(method, exc) from exc

    def _unreachable(self, method: str, exc: Exception) -> MrcError:
        """Return the BackendUnavailable for a request that failed with ``exc``.

        A write that timed out, or that may have reached the server before the
        connection failed, says the change may or may not have been applied.
        """
        text = _one_line(exc)
        maybe_sent = exc.sent if isinstance(exc, TransportError) else "timed out" in text.lower()
        if method != "GET" and maybe_sent:
            text += " (the change may or may not have been applied)"
        return BackendUnavailable(redact_url(f"cannot reach {self.context} API server: {text}"))

    def request(
        self,
        method: str,
        path: str,
        *,
        timeout: float,
        query: Sequence[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        what: str = "",
    ) -> Obj:
        """Send one request and return the decoded JSON answer.

        ``what`` names the object for a 404 ("deployment ns/name"). Raises
        BackendUnavailable, NotFound, PermissionDenied, Conflict or ApiError
        (other HTTP errors, with the server's message).
        """
        resp = self._send(method, path, query, body, content_type, (timeout / 2, timeout))
        try:
            data = resp.read()
        except Exception as exc:
            raise self._unreachable(method, exc) from exc
        if not 200 <= resp.status < 300:
            raise http_error(resp.status, data.decode("utf-8", "replace"), what, self.context)
        result: Obj = json.loads(data) if data else {}
        return result

    def list_all(
        self,
        path: str,
        *,
        timeout: float,
        query: Sequence[tuple[str, Any]] = (),
        what: str = "",
    ) -> tuple[list[Obj], str]:
        """Return every item of a list (following ``continue``) and the list's resourceVersion.

        Asks for :data:`LIST_PAGE` items per request. Raises like :meth:`request`.
        """
        items: list[Obj] = []
        token = ""
        while True:
            params = [*query, ("limit", LIST_PAGE)]
            if token:
                params.append(("continue", token))
            page = self.request("GET", path, timeout=timeout, query=params, what=what)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return items, str(meta.get("resourceVersion", ""))

    def watch(
        self,
        path: str,
        *,
        query: Sequence[tuple[str, Any]],
        timeout: float,
        cancel: CancelToken | None = None,
        current: list[Any] | None = None,
    ) -> Iterator[Obj]:
        """Yield the watch events (``{"type", "object"}``) of one watch request.

        The request ends after :data:`WATCH_SECONDS` on the server side, or
        when ``cancel`` is set. The open response is kept in ``current[0]`` so
        the caller can close it from another thread (see :func:`closer`).
        Raises like :meth:`request`.
        """
        params = [*query, ("watch", "true"), ("timeoutSeconds", WATCH_SECONDS)]
        resp = self._send("GET", path, params, None, None, (timeout / 2, WATCH_SECONDS + timeout))
        if not 200 <= resp.status < 300:
            raise self._refused(resp)
        if current is not None:
            current[:] = [resp]
        buffer = b""
        try:
            for chunk in resp.chunks():
                if cancel is not None and cancel.cancelled:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except Exception as exc:
            if cancel is not None and cancel.cancelled:
                return
            raise self._unreachable("GET", exc) from exc
        finally:
            if current is not None:
                current.clear()
            # Unread stream data must not reach the next request: an unfinished
            # stream's connection is closed (a finished one is back in the pool).
            resp.close()

    def lines(
        self,
        path: str,
        *,
        query: Sequence[tuple[str, Any]],
        timeout: float,
        current: list[Any] | None = None,
    ) -> Iterator[str]:
        """Yield the text lines of a streamed GET (a pod's log with ``follow``), as they come.

        ``timeout`` bounds connecting; there is no read timeout (a log may stay
        silent for long). The open response is kept in ``current[0]`` so
        another thread can close it (see :func:`closer`), which ends the
        lines with an error. Raises like :meth:`request`.
        """
        resp = self._send("GET", path, query, None, None, (timeout / 2, None))
        if not 200 <= resp.status < 300:
            raise self._refused(resp)
        if current is not None:
            current[:] = [resp]
        buffer = b""
        try:
            for chunk in resp.chunks():
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", "replace")
            if buffer:
                yield buffer.decode("utf-8", "replace")
        except Exception as exc:
            raise self._unreachable("GET", exc) from exc
        finally:
            if current is not None:
                current.clear()
            resp.close()

    def _refused(self, resp: Response) -> MrcError:
        """Return the error :func:`http_error` maps an error answer to (unreadable: unreachable)."""
        try:
            data = resp.read()
        except Exception as exc:
            return self._unreachable("GET", exc)
        return http_error(resp.status, data.decode("utf-8", "replace"), "", self.context)


def closer(current: list[Any]) -> Callable[[], None]:
    """Return a callback closing the watch response held in ``current`` (if any).

    Meant for :meth:`CancelToken.on_cancel`, with the list passed to
    :meth:`Api.watch` or :meth:`Api.lines`; closing shuts the connection
    down, so a read blocked in the streaming thread ends at once. The
    callback never raises.
    """

    def close() -> None:
        for resp in list(current):
            try:
                resp.close()
            except Exception:
                pass

    return close


#: (kubeconfig, context) -> (the kubeconfig files' stamp when read, its client).
_CLIENTS: dict[tuple[str, str], tuple[tuple[Any, ...], Api]] = {}
_CLIENTS_LOCK = threading.Lock()


def api_for(context: str | None, kubeconfig: str | os.PathLike[str] | None = None) -> Api:
    """Return the shared JSON client of one (kubeconfig, context), creating it on first use.

    ``context`` None or "" means the kubeconfig's current context; ``kubeconfig``
    None means ``$KUBECONFIG`` or ``~/.kube/config``. A kubeconfig rewritten
    since (another server, new credentials) gives a new client; holders of the
    old one keep it. Raises ConfigError when the kubeconfig or the context
    cannot be loaded.
    """
    path = str(Path(kubeconfig).expanduser().resolve()) if kubeconfig else ""
    key = (path, context or "")
    stamp = _stamp(kubeconfig_paths(path or None))
    with _CLIENTS_LOCK:
        known = _CLIENTS.get(key)
        if known is not None and known[0] == stamp:
            return known[1]
        connection = load_connection(path or None, context or None)
        api = Api(connection, context or connection.context)
        _CLIENTS[key] = (stamp, api)
        return api


def _stamp(paths: list[str]) -> tuple[Any, ...]:
    """Return what identifies the current contents of ``paths``: names, mtimes and sizes."""
    stamp: list[Any] = []
    for name in paths:
        try:
            info = os.stat(name)
            stamp.append((name, info.st_mtime_ns, info.st_size))
        except OSError:
            stamp.append((name, None, None))
    return tuple(stamp)


def _pool_for(connection: Connection) -> Pool:
    """Return the connection pool for ``connection`` (through its proxy, if any).

    Connecting is retried once (each attempt may take half the timeout) and
    answers never, so an unreachable server costs at most about one timeout
    (see :mod:`core.targets.k8s_http` for the retry rules). Raises
    ConfigError when the TLS settings cannot be loaded, or the proxy is a
    SOCKS or other unsupported one.
    """
    tls = connection.ssl_context() if connection.https else None
    try:
        return Pool(
            connection.server,
            tls=tls,
            server_hostname=connection.tls_server_name if connection.https else "",
            proxy=connection.proxy,
            size=POOL_SIZE,
        )
    except UnsupportedProxy as exc:
        raise ConfigError(
            connection.source, [f"context {connection.context}: proxy-url: {exc}"]
        ) from exc
    except ValueError as exc:
        raise ConfigError(
            connection.source, [f"context {connection.context}: server: {exc}"]
        ) from exc


def _query_value(value: Any) -> str:
    """Return a query parameter as text: booleans as ``true``/``false``, as the API expects."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _one_line(exc: BaseException) -> str:
    """Return the first line of ``exc``'s message (its type name if empty), at most 300 chars."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first[:300]


def http_error(status: int, body: str, what: str, context: str) -> MrcError:
    """Return the core error for an HTTP error answer (it is returned, not raised).

    ``body`` is the answer's text; the message of a Kubernetes ``Status`` in it
    is used when present. 404 -> NotFound ("``what`` not found in context
    ``context``" when ``what`` is given), 401/403 -> PermissionDenied, 409 ->
    Conflict, 500/502/503/504 -> BackendUnavailable naming ``context``,
    anything else -> ApiError carrying ``status``.
    """
    message = body.strip()
    try:
        decoded = json.loads(body)
        if isinstance(decoded, dict) and decoded.get("message"):
            message = str(decoded["message"])
    except ValueError:
        pass
    message = message or f"HTTP {status}"
    if status == 404:
        return NotFound(f"{what} not found in context {context}" if what else message)
    if status in (401, 403):
        return PermissionDenied(message)
    if status == 409:
        return Conflict(message)
    if status in (500, 502, 503, 504):
        return BackendUnavailable(f"{context} API server error: {message}")
    return ApiError(message, status)


# --------------------------------------------------------------------------
# Paths


def apps_path(namespace: str, resource: str, name: str = "") -> str:
    """Return the ``apps/v1`` path of a resource collection in ``namespace``, or of ``name`` in it.

    E.g. ``/apis/apps/v1/namespaces/ml/deployments/iris``.
    """
    base = f"/apis/apps/v1/namespaces/{namespace}/{resource}"
    return f"{base}/{name}" if name else base


def core_path(namespace: str, resource: str) -> str:
    """Return the core ``v1`` path of a resource collection in ``namespace``.

    E.g. ``/api/v1/namespaces/ml/events``.
    """
    return f"/api/v1/namespaces/{namespace}/{resource}"
