"""Plain data shared by every part of the console.

These dataclasses are the vocabulary between backends, the journal, the
release pipeline, the TUI and the scripting CLI. They hold data only: no I/O,
no behaviour beyond small derived properties. Times are timezone-aware UTC
``datetime`` objects unless a field says otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# --------------------------------------------------------------------------
# Source


@dataclass(frozen=True, slots=True)
class Commit:
    """One commit of a model repository."""

    sha: str
    author: str
    email: str
    date: datetime
    subject: str
    parents: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    branches: tuple[str, ...] = ()

    @property
    def short(self) -> str:
        """The abbreviated (8 character) sha."""
        return self.sha[:8]


@dataclass(frozen=True, slots=True)
class FileStat:
    """Lines added and removed in one file of a commit."""

    path: str
    insertions: int
    deletions: int


@dataclass(frozen=True, slots=True)
class CommitDetail:
    """A commit with its full message, per-file stat and unified diff."""

    commit: Commit
    message: str
    stats: tuple[FileStat, ...]
    diff: str
    diff_truncated: bool = False


# --------------------------------------------------------------------------
# Test runs


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


# --------------------------------------------------------------------------
# Progress of long operations


@dataclass(frozen=True, slots=True)
class Progress:
    """A step of a long operation (build, push, rollout, release).

    ``fraction`` is in [0, 1] when the amount of work is known, else None.
    ``detail`` carries a sub-item, e.g. a layer id during a push.
    ``result`` is set on the final item of an operation that produces a value
    (e.g. the built :class:`Image`), else None.
    """

    step: str
    message: str = ""
    fraction: float | None = None
    detail: str = ""
    level: str = "info"  # "info", "warning" or "error"
    result: Any = None


# --------------------------------------------------------------------------
# Images and targets


@dataclass(frozen=True, slots=True)
class Image:
    """A container image built from a commit."""

    ref: str
    id: str = ""
    commit: str = ""
    created: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Artifact:
    """What a rollout installs: an image (docker, kubernetes) and/or a commit (local)."""

    commit: str = ""
    image: str = ""

    def describe(self) -> str:
        """Short human description, e.g. ``repo/model:1a2b3c4d`` or ``commit 1a2b3c4d``."""
        if self.image:
            return self.image
        return f"commit {self.commit[:8]}"


@dataclass(frozen=True, slots=True)
class Revision:
    """One entry of a target's revision history.

    ``number`` follows the target's own numbering (Kubernetes'
    ``deployment.kubernetes.io/revision``; an increasing counter for docker and
    local targets). ``current`` is True for the revision now live.
    """

    number: int
    image: str = ""
    commit: str = ""
    created: datetime | None = None
    change_cause: str = ""
    current: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Phase(enum.StrEnum):
    """Overall state of a target as shown in the Rollouts screen."""

    COMPLETE = "complete"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    FAILED = "failed"
    DEGRADED = "degraded"
    STOPPED = "stopped"
    UNKNOWN = "unknown"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Live status of one model on one target (``kubectl rollout status`` semantics)."""

    model: str
    target: str
    kind: str
    phase: Phase
    revision: int | None = None
    image: str = ""
    commit: str = ""
    desired: int = 0
    ready: int = 0
    updated: int = 0
    available: int = 0
    message: str = ""
    since: datetime | None = None
    observed_at: datetime | None = None
    #: Opaque token of the backend state this was read from ("" when the backend has
    #: none); passed back as ``expected``, a change made since is refused (Conflict).
    basis: str = ""


@dataclass(frozen=True, slots=True)
class RollbackPreview:
    """What a rollback would do, shown in the confirm dialog before applying it.

    ``noop`` is True when the target template already equals the revision's
    (``kubectl rollout undo`` skips such a rollback). ``diff`` is a unified
    diff of the pod template (or of the container spec) from current to target.
    """

    model: str
    target: str
    from_revision: int | None
    to_revision: int
    from_image: str = ""
    to_image: str = ""
    from_commit: str = ""
    to_commit: str = ""
    diff: str = ""
    noop: bool = False
    warning: str = ""
    #: Opaque token of the target state the preview was computed from; passing the
    #: preview back to the rollback makes it refuse (Conflict) if that state changed.
    basis: str = ""


@dataclass(frozen=True, slots=True)
class TargetEvent:
    """A live event about a target (Kubernetes event, container state change)."""

    time: datetime
    kind: str  # "Normal", "Warning", "state"
    reason: str
    message: str
    object: str = ""


@dataclass(frozen=True, slots=True)
class Permission:
    """Whether the current credentials may perform an action, and why not."""

    allowed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PodInfo:
    """One pod (or process/container) behind a target, for the detail view."""

    name: str
    phase: str
    ready: bool
    restarts: int = 0
    image: str = ""
    node: str = ""
    started: datetime | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """A status condition (Kubernetes style)."""

    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class TargetDetail:
    """Everything the Rollouts detail view shows for one target."""

    state: RolloutState
    pods: tuple[PodInfo, ...] = ()
    conditions: tuple[Condition, ...] = ()
    events: tuple[TargetEvent, ...] = ()


# --------------------------------------------------------------------------
# Metrics and drift


@dataclass(frozen=True, slots=True)
class Series:
    """A named time series: ``points`` are (unix seconds, value) pairs, oldest first."""

    name: str
    points: tuple[tuple[float, float], ...]
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Histogram:
    """A classic histogram as Prometheus exposes it.

    ``bounds`` are the upper bounds (``le``) in increasing order, the last one
    ``float('inf')``; ``cumulative`` are the matching cumulative counts.
    """

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]

    @property
    def total(self) -> float:
        """The total sample count (the ``+Inf`` bucket)."""
        return self.cumulative[-1] if self.cumulative else 0.0


class DriftBand(enum.StrEnum):
    """Where a drift score falls relative to the configured thresholds."""

    OK = "ok"
    WARN = "warn"
    ALERT = "alert"
    NOT_ENOUGH_DATA = "not enough data"


@dataclass(frozen=True, slots=True)
class DriftScore:
    """A drift score, or the reason there is none.

    ``value`` is None exactly when ``band`` is ``NOT_ENOUGH_DATA``; ``missing``
    then says what was missing: ``"reference"`` (no reference to compare
    with), ``"samples"`` (a side has too few samples) or ``""`` (another
    reason, in ``reason``).
    """

    method: str  # "psi" or "js"
    value: float | None
    band: DriftBand
    samples: float = 0.0
    reason: str = ""
    missing: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    """A firing or pending alert (from Prometheus or from a local threshold)."""

    name: str
    state: str  # "firing", "pending"
    severity: str = ""
    summary: str = ""
    since: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Marker:
    """A release event drawn as a vertical line on every chart of a model."""

    time: datetime
    label: str
    kind: str  # "rollout" or "rollback"
    target: str = ""


# --------------------------------------------------------------------------
# Journal


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
