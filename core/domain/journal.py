"""The journal: audited actions with their outcome, and releases with their steps.

Part of :mod:`core.domain` (import the names from there).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Outcome(enum.StrEnum):
    """Result column of an audit entry."""

    INTENT = "intent"  # written before acting; still here => outcome unknown
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the process that wrote the intent is gone


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One mutating action in the audit trail: intent, then outcome."""

    id: int
    time: datetime
    user: str
    ssh_client: str
    model: str
    target: str
    action: str  # "rollout", "rollback", "pause", "resume", "restart", "build", ...
    from_revision: str = ""
    to_revision: str = ""
    reason: str = ""
    outcome: Outcome = Outcome.INTENT
    error: str = ""
    finished_at: datetime | None = None
    pid: int = 0
    host: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome_unknown(self) -> bool:
        """True when nobody recorded how the action ended."""
        return self.outcome in (Outcome.INTENT, Outcome.UNKNOWN)


@dataclass(frozen=True, slots=True)
class ReleaseStep:
    """One step of a release as journalled."""

    id: int
    step: str
    status: str  # "running", then "done", "failed", "skipped", "cancelled", "inconclusive"
    # (verify only: the guard had no verdict) or "unknown"
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Release:
    """A release of one commit to one target as journalled.

    ``status`` is "running" until :meth:`core.journal.Journal.finish_release` records the
    outcome (see :mod:`core.services.release`: done, failed, cancelled, rolled_back,
    alerted or inconclusive — live but not verified), or "unknown" when its process died.
    """

    id: int
    model: str
    commit: str
    target: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    reason: str = ""
    user: str = ""
    message: str = ""
    steps: tuple[ReleaseStep, ...] = ()
