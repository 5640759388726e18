"""Threads for the console's workers that never hold up quitting.

Textual runs ``@work(thread=True)`` workers in the event loop's default
executor. asyncio's default (a ``ThreadPoolExecutor``) is joined when the loop
closes and again at interpreter exit, so one backend call stuck until its
timeout (a Prometheus that does not answer) would keep the console on screen
after ``q``. :class:`DaemonExecutor` runs each call in a daemon thread and
does not wait for them on shutdown: a call still running when the console
quits is abandoned, never waited for. Changes that must record their outcome
are waited for (bounded) by ``MrcApp.exit`` before it gets here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class DaemonExecutor(ThreadPoolExecutor):
    """An executor whose calls run in daemon threads that nobody joins.

    It subclasses ``ThreadPoolExecutor`` only because asyncio accepts nothing
    else as a default executor; none of the pool's machinery is used.
    ``submit`` returns a future like any executor's and raises RuntimeError
    after :meth:`shutdown`.
    """

    def __init__(self, name: str = "mrc-worker") -> None:
        super().__init__(max_workers=1, thread_name_prefix=name)
        self._name = name
        self._closed = False
        self._counter = 0
        self._lock_ = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` in a new daemon thread; return its future."""
        with self._lock_:
            if self._closed:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._counter += 1
            number = self._counter
        future: Future[Any] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:
                future.set_exception(error)
            else:
                future.set_result(result)

        threading.Thread(target=run, name=f"{self._name}-{number}", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Accept no more calls; never wait for running ones (``wait`` is ignored)."""
        with self._lock_:
            self._closed = True
