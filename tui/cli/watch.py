"""``mrc watch``: serve every model's drift, guard and release state on /metrics.

A headless long-running process (it never imports Textual): it evaluates
the workspace every ``--interval`` (:class:`core.watch.Watcher`) and serves
the latest evaluation with prometheus-client on ``--listen``. Ctrl-C or
SIGTERM stops it (exit code 0). The metric names are documented in
:mod:`core.watch` and the README.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from core.cancel import CancelToken
from tui.cli.output import EXIT_OK, Streams

if TYPE_CHECKING:
    from core.services.workspace import Workspace


@contextmanager
def sigterm_cancels(cancel: CancelToken) -> Iterator[None]:
    """While active, SIGTERM sets ``cancel`` (main thread only; elsewhere nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        cancel.cancel()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_watch(
    ws: Workspace,
    streams: Streams,
    *,
    host: str,
    port: int,
    interval: float,
    cancel: CancelToken,
) -> int:
    """Serve /metrics on ``host:port`` and re-evaluate every ``interval`` seconds until
    ``cancel`` is set (Ctrl-C, SIGTERM); return 0.

    Says ``mrc watch: serving http://HOST:PORT/metrics`` on stderr once the
    socket listens (with the port bound when ``port`` is 0). Raises
    BackendUnavailable when the address cannot be bound.
    """
    from prometheus_client import CollectorRegistry, start_http_server

    from core.errors import BackendUnavailable
    from core.watch import WatchCollector, Watcher

    watcher = Watcher(ws)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(WatchCollector(watcher))
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise BackendUnavailable(f"cannot listen on {host}:{port}: {exc}") from exc
    bound = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    with sigterm_cancels(cancel):
        try:
            watcher.start()
            up: dict[str, bool | None] = {}
            ev = watcher.evaluate()
            streams.say(f"mrc watch: serving http://{shown}:{bound}/metrics")
            while True:
                for m in ev.models:
                    if m.source_up is False and up.get(m.model) is not False:
                        streams.say(f"mrc watch: {m.model}: source down: {m.error}")
                    elif m.source_up and up.get(m.model) is False:
                        streams.say(f"mrc watch: {m.model}: source up again")
                    up[m.model] = m.source_up
                if cancel.wait(interval):
                    break
                ev = watcher.evaluate()
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
    streams.say("mrc watch: stopped")
    return EXIT_OK
