"""Test runs: their lifecycle, failures and the output lines streamed while they run.

Part of :mod:`core.domain` (import the names from there).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class RunStatus(enum.StrEnum):
    """Lifecycle of a test run (and of any queued long operation)."""

    QUEUED = "queued"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"

    @property
    def finished(self) -> bool:
        """True for every status a run cannot leave."""
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class TestFailure:
    """One failed or errored test case from the JUnit report."""

    __test__ = False  # not a pytest test class

    name: str
    message: str
    kind: str = "failure"  # "failure" or "error"
    details: str = ""


@dataclass(slots=True)
class TestRun:
    """A run of a model's test command at one commit."""

    __test__ = False

    id: int | None
    model: str
    commit: str
    status: RunStatus
    started_at: datetime | None = None
    finished_at: datetime | None = None
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    failures: list[TestFailure] = field(default_factory=list)
    output_path: str | None = None
    message: str = ""
    exit_code: int | None = None

    @property
    def duration(self) -> float | None:
        """Seconds between start and finish, or None while unknown."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class OutputLine:
    """One line a running process wrote; ``stream`` is "stdout" or "stderr"."""

    text: str
    stream: str = "stdout"
