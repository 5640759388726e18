"""Cancellation tokens shared by long operations and their callers."""

from __future__ import annotations

import threading

from core.errors import Cancelled


class CancelToken:
    """A thread-safe flag a caller sets to ask a long operation to stop.

    Long operations poll :meth:`raise_if_cancelled` between steps and may
    register callbacks (for example to kill a process group) that run once
    when :meth:`cancel` is called.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list = []

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` has been called."""
        return self._event.is_set()

    def cancel(self) -> None:
        """Set the flag and run the registered callbacks (once each)."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback) -> None:
        """Run ``callback()`` when cancelled; immediately if already cancelled."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return True if cancelled meanwhile."""
        return self._event.wait(seconds)

    def raise_if_cancelled(self) -> None:
        """Raise :class:`~core.errors.Cancelled` if the flag is set."""
        if self._event.is_set():
            raise Cancelled("cancelled by the user")
