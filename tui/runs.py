"""Long operations started from the console and their live output.

A test run, build, release, rollout, rollback, pause, resume or restart keeps
running while the operator switches screens, so its state lives here (owned
by the app, started by :mod:`tui.operations`), not in a screen. Output is
kept in a bounded buffer that the operation's worker thread appends to and
screens read what is new since they last looked; the other fields are set on
the event loop, from the worker's messages.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.cancel import CancelToken

if TYPE_CHECKING:
    from core.domain import Progress, TestRun

MAX_LINES = 100_000

_ids = itertools.count(1)


@dataclass
class LiveOperation:
    """One running (or finished) operation: what, its output, how to cancel it."""

    kind: str  # "test", "build", "release", "retrain", "rollout", "rollback", "pause", ...
    model: str
    commit: str = ""  # tests, builds and releases
    target: str = ""  # releases and target actions
    cancel: CancelToken = field(default_factory=CancelToken)
    key: int = field(default_factory=lambda: next(_ids))
    run: TestRun | None = None  # test runs: the journal record, once known
    steps: list[Progress] = field(default_factory=list)  # builds and releases
    lines: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=MAX_LINES))
    total: int = 0  # lines ever appended (so readers know what is new)
    finished: bool = False
    error: str = ""
    started: float | None = None  # time.monotonic() when its worker started (None: not yet)
    ended: float | None = None  # time.monotonic() when its worker ended
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def describe(self) -> str:
        """Return what the operation does, for the operator ("rollback of churn/prod-eu")."""
        subject = f"{self.model}/{self.target}" if self.target else self.model
        at = f" at {self.commit[:8]}" if self.commit else ""
        return f"{self.kind} of {subject}{at}"

    def append(self, text: str, stream: str = "stdout") -> None:
        """Add one output line (thread-safe)."""
        with self._lock:
            self.lines.append((text, stream))
            self.total += 1

    def since(self, seen: int) -> tuple[list[tuple[str, str]], int]:
        """Return the lines appended after the first ``seen`` ones, and the new total."""
        with self._lock:
            new = self.total - seen
            if new <= 0:
                return [], self.total
            kept = list(self.lines)[-min(new, len(self.lines)) :]
            return kept, self.total

    def add_step(self, progress: Progress) -> None:
        """Record a progress step (thread-safe); repeated steps update in place."""
        with self._lock:
            if self.steps and self.steps[-1].step == progress.step:
                self.steps[-1] = progress
            else:
                self.steps.append(progress)
