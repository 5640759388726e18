"""Connections to the Docker Engine API and the translation of its errors.

Shared by :mod:`core.images` (build, push, pull) and
:mod:`core.targets.docker` (containers on a Docker host). The ``docker``
package is imported on first use.

Connections: ``base_url`` None means the environment (``DOCKER_HOST``,
``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``) or the default local socket.
``ssh://user@host`` URLs go through the system ``ssh`` client, so the user's
``~/.ssh/config``, agent and known hosts apply. Long streams run on a
:class:`DockerStream` of their own, which another thread can abort.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

from core.cancel import CancelToken
from core.errors import (
    BackendUnavailable,
    Cancelled,
    Conflict,
    MrcError,
    NotFound,
    OperationFailed,
    PermissionDenied,
)
from core.sanitize import redact_url


def describe_url(base_url: str | None) -> str:
    """Return the Docker endpoint ``base_url`` stands for, for messages."""
    return base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _client_kwargs(base_url: str | None) -> dict[str, Any]:
    """Return the ``APIClient`` keyword arguments for ``base_url`` (None: the environment)."""
    from docker.utils import kwargs_from_env

    kwargs: dict[str, Any] = {} if base_url else dict(kwargs_from_env())
    if base_url:
        kwargs["base_url"] = base_url
    if str(kwargs.get("base_url", "")).startswith("ssh://"):
        kwargs["use_ssh_client"] = True
    return kwargs


def connect(base_url: str | None, timeout: float | None, version: str | None = None) -> Any:
    """Return a connected ``docker.APIClient``.

    ``version`` None negotiates the API version (one round trip); pass the
    version of an earlier client to skip it. ``timeout`` None means no read
    timeout (for long streams). Raises BackendUnavailable when the daemon
    cannot be reached.
    """
    import docker

    kwargs = _client_kwargs(base_url)
    with docker_errors(base_url):
        return docker.APIClient(version=version or "auto", timeout=timeout, **kwargs)


@contextlib.contextmanager
def docker_errors(base_url: str | None, what: str = "") -> Iterator[None]:
    """Translate docker SDK, requests and socket errors into ``core.errors``.

    Connection problems become BackendUnavailable ("cannot reach Docker at
    <url>: ..."); 404 NotFound; 409 Conflict; 401/403 PermissionDenied; other
    API errors OperationFailed with the daemon's explanation. ``what`` prefixes
    the message of API errors, e.g. "pull 127.0.0.1:5000/iris:1".
    """
    import docker.errors
    import requests.exceptions
    import urllib3.exceptions

    prefix = f"{what}: " if what else ""
    try:
        yield
    except MrcError:
        raise
    except docker.errors.APIError as err:
        message = f"{prefix}{_explanation(err)}"
        status = err.status_code
        if status == 404:
            raise NotFound(message) from err
        if status == 409:
            raise Conflict(message) from err
        if status in (401, 403):
            raise PermissionDenied(message) from err
        raise OperationFailed(message) from err
    except (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        urllib3.exceptions.HTTPError,
        docker.errors.DockerException,
        OSError,
    ) as err:
        message = f"cannot reach Docker at {describe_url(base_url)}: {err}"
        raise BackendUnavailable(redact_url(message)) from err


def _explanation(err: Any) -> str:
    """Return the daemon's explanation of an ``APIError`` (decoded), else its text."""
    explanation = getattr(err, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return str(explanation or err).strip()


def _abort_response(response: Any) -> None:
    """Unblock a thread reading ``response`` by shutting its connection down.

    Closing a socket from another thread does not wake a blocked ``recv`` on
    Linux, ``shutdown`` does; the ``ssh`` client transport is stopped by closing
    it, which ends the subprocess. Closing the connection is also what makes
    the daemon abandon the request (it cancels a build whose client is gone).
    """
    raw = getattr(response, "raw", None)
    conn = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        if hasattr(sock, "proc"):
            with contextlib.suppress(Exception):
                sock.close()
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(Exception):
        response.close()


class DockerStream:
    """One streamed Engine API call (build, push, pull, events) on a dedicated client.

    The stream gets its own ``docker.APIClient`` without a read timeout (a
    build step or an event stream may stay silent for long), on the API
    ``version`` an earlier client negotiated. It can be stopped from another
    thread: :meth:`abort` (called by ``cancel`` when it is set) shuts the
    connection down, which also makes the daemon abandon the request.
    Raises BackendUnavailable when the daemon cannot be reached.
    """

    def __init__(self, base_url: str | None, version: str, cancel: CancelToken | None) -> None:
        self.base_url = base_url
        self.cancel = cancel
        self.client = connect(base_url, None, version)
        self._responses: list[Any] = []
        self.client.hooks["response"].append(self._remember)
        if cancel is not None:
            cancel.on_cancel(self.abort)

    def _remember(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        self._responses.append(response)
        return response

    def abort(self) -> None:
        """Shut down every response this stream's client opened; never raises."""
        for response in list(self._responses):
            _abort_response(response)

    def chunks(self, what: str, start: Callable[[Any], Any]) -> Iterator[dict[str, Any]]:
        """Yield the decoded dict chunks of ``start(client)``, the call started on this client.

        Errors are translated by :func:`docker_errors` with ``what`` as prefix;
        raises Cancelled (instead of the error the abort caused) once ``cancel``
        is set.
        """
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()
        try:
            with docker_errors(self.base_url, what):
                stream = start(self.client)
                for chunk in stream:
                    if self.cancel is not None and self.cancel.cancelled:
                        break
                    if isinstance(chunk, dict):
                        yield chunk
        except (BackendUnavailable, OperationFailed):
            if self.cancel is not None and self.cancel.cancelled:
                raise Cancelled(f"{what}: cancelled by the user") from None
            raise
        if self.cancel is not None and self.cancel.cancelled:
            raise Cancelled(f"{what}: cancelled by the user")

    def close(self) -> None:
        """Abort the stream and close its client; never raises."""
        self.abort()
        with contextlib.suppress(Exception):
            self.client.close()
