"""The post-release guard: watch a model's health for a while after a rollout.

After a rollout the guard evaluates the configured checks (error rate,
latency p95, drift score) every ``interval`` seconds for ``guard.duration``.
A check whose value exceeds its limit is a breach. With
``guard.auto_rollback`` the guard rolls the target back through
:func:`core.services.actions.run_rollback` (so the rollback is journalled like any
other) with the reason ``"guard: <check> breached: <value> > <limit>"``;
without it the guard emits an ``alert`` event and the console offers the
one-key rollback. A check with no data is "not enough data", never a breach.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from core import durations
from core.cancel import CancelToken
from core.domain import DriftBand, DriftScore, Progress
from core.errors import BackendUnavailable, Cancelled, InvalidQuery, MrcError
from core.metrics.base import MetricsSource
from core.targets.base import Target

#: Names of the checks the guard knows, in evaluation order.
CHECKS = ("error_rate", "latency_p95", "drift")

# GuardEvent.kind values.
STARTED = "started"
CHECK = "check"  # one evaluation of one check (value may be None: not enough data)
BREACH = "breach"
ALERT = "alert"  # breach without auto rollback: the operator decides
ROLLBACK_PROGRESS = "rollback_progress"
ROLLED_BACK = "rolled_back"
ROLLBACK_FAILED = "rollback_failed"
PASSED = "passed"  # the whole window elapsed without a breach
CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class GuardEvent:
    """Something the guard observed or did.

    ``kind`` is one of STARTED, CHECK, BREACH, ALERT, ROLLBACK_PROGRESS,
    ROLLED_BACK, ROLLBACK_FAILED, PASSED, CANCELLED. ``value`` is None for a
    check without enough data. ``remaining`` is the number of seconds left in
    the verify window when the event was made.
    """

    kind: str
    model: str
    target: str
    check: str = ""
    value: float | None = None
    limit: float | None = None
    message: str = ""
    remaining: float = 0.0
    time: datetime | None = None
    progress: Progress | None = None

    @property
    def breached(self) -> bool:
        """True for BREACH, ALERT and the rollback events that follow a breach."""
        return self.kind in (BREACH, ALERT, ROLLED_BACK, ROLLBACK_FAILED, ROLLBACK_PROGRESS)


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """The guard part of a model's configuration, in plain numbers.

    ``duration`` and ``interval`` are seconds. A limit of None disables that check.
    """

    duration: float = 300.0
    auto_rollback: bool = False
    max_error_rate: float | None = None
    max_latency_p95: float | None = None
    max_drift: float | None = None
    interval: float = 5.0

    @classmethod
    def from_config(cls, guard: Any, *, interval: float | None = None) -> GuardSettings:
        """Build settings from a config object (attributes) or a mapping; None gives defaults.

        Durations may be seconds, ``timedelta`` or strings in the grammar of
        :mod:`core.durations` such as ``"5m"``. Raises ValueError
        (:class:`~core.durations.DurationError`) for a duration that cannot be parsed.
        """
        if guard is None:
            return cls() if interval is None else cls(interval=interval)

        # A [model.guard] table (core.config.GuardConfig) or a mapping of the same keys.
        values: dict[str, Any] = guard if isinstance(guard, dict) else asdict(guard)

        def get(name: str, default: Any = None) -> Any:
            return values.get(name, default)

        duration = durations.seconds(get("duration", 300.0))
        step = interval if interval is not None else durations.seconds(get("interval", None) or 0)
        if not step:
            # about 20 evaluations per window, between 1 s and 15 s apart
            step = min(15.0, max(1.0, duration / 20))
        return cls(
            duration=duration,
            auto_rollback=bool(get("auto_rollback", False)),
            max_error_rate=_opt_float(get("max_error_rate")),
            max_latency_p95=_opt_float(get("max_latency_p95")),
            max_drift=_opt_float(get("max_drift")),
            interval=step,
        )

    def limits(self) -> dict[str, float]:
        """Return ``{check name: limit}`` for every enabled check, in :data:`CHECKS` order."""
        all_limits = {
            "error_rate": self.max_error_rate,
            "latency_p95": self.max_latency_p95,
            "drift": self.max_drift,
        }
        return {k: v for k, v in all_limits.items() if v is not None}


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


class DriftProbe(Protocol):
    """Computes the drift score of a model: a window against its configured reference.

    The workspace's is :class:`core.metrics.scoring.DriftScorer` (the scorer the
    Drift screen and the CLI use too).
    """

    def score(self, start: datetime, end: datetime) -> DriftScore:
        """Return the drift score of [start, end); band NOT_ENOUGH_DATA when too few samples."""
        ...


RollbackFn = Callable[..., Iterator[Progress]]


class Guard:
    """Evaluates a model's guard checks after a rollout and acts on a breach.

    ``source`` answers the error-rate and latency queries (``queries`` maps
    check name to the query text, from the model's metrics config); ``drift``
    computes the drift score. Either may be None: its checks then report
    "not enough data". ``journal`` is handed to the rollback action.
    ``rollback`` defaults to :func:`core.services.actions.run_rollback`.
    """

    def __init__(
        self,
        source: MetricsSource | None,
        settings: GuardSettings,
        *,
        queries: dict[str, str] | None = None,
        drift: DriftProbe | None = None,
        journal: Any = None,
        rollback: RollbackFn | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.source = source
        self.settings = settings
        self.queries = dict(queries or {})
        self.drift = drift
        self.journal = journal
        self._rollback = rollback
        self._clock = clock
        self._now = now

    # ------------------------------------------------------------------ checks

    def evaluate(self, check: str, since: datetime) -> tuple[float | None, str]:
        """Return ``(value, note)`` of one check now; value None means not enough data.

        Backend errors are reported in ``note`` with a None value: an
        unreachable metrics backend is not a breach.
        """
        try:
            if check == "drift":
                if self.drift is None:
                    return None, "no drift source configured"
                score = self.drift.score(since, self._now())
                if score.value is None or score.band is DriftBand.NOT_ENOUGH_DATA:
                    return None, score.reason or "not enough data"
                return float(score.value), score.band.value
            query = self.queries.get(check, "")
            if self.source is None or not query:
                return None, f"no query configured for {check}"
            series = self.source.instant_query(query)
        except (BackendUnavailable, InvalidQuery) as exc:
            return None, f"not enough data ({exc})"
        values = [
            p[1] for s in series for p in s.points[-1:] if p[1] is not None and math.isfinite(p[1])
        ]
        if not values:
            return None, "not enough data"
        # several series (e.g. per pod): the worst one decides
        return max(values), ""

    # ------------------------------------------------------------------- watch

    def watch(
        self, model: str, target: Target, since: datetime, cancel: CancelToken | None = None
    ) -> Iterator[GuardEvent]:
        """Watch ``target`` for ``settings.duration`` seconds; yield what happens.

        Ends after PASSED, ALERT, ROLLED_BACK, ROLLBACK_FAILED or CANCELLED
        (the last event). Cancelling stops the watch between evaluations;
        a rollback in progress is handed the same token. Never raises for
        metric problems (they are "not enough data").
        """
        cancel = cancel or CancelToken()
        limits = self.settings.limits()
        start = self._clock()
        deadline = start + self.settings.duration
        name = target.name

        def remaining() -> float:
            return max(0.0, deadline - self._clock())

        checks_text = ", ".join(f"{k} <= {v:g}" for k, v in limits.items()) or "no checks"
        yield GuardEvent(
            STARTED,
            model,
            name,
            message=f"watching for {self.settings.duration:g}s: {checks_text}",
            remaining=remaining(),
            time=self._now(),
        )
        while True:
            if cancel.cancelled:
                yield GuardEvent(
                    CANCELLED, model, name, message="guard cancelled", remaining=remaining()
                )
                return
            for check, limit in limits.items():
                value, note = self.evaluate(check, since)
                yield GuardEvent(
                    CHECK,
                    model,
                    name,
                    check=check,
                    value=value,
                    limit=limit,
                    message=note or f"{check} = {value:g} (limit {limit:g})",
                    remaining=remaining(),
                    time=self._now(),
                )
                if value is not None and value > limit:
                    yield from self._on_breach(model, target, check, value, limit, cancel)
                    return
            left = remaining()
            if left <= 0:
                yield GuardEvent(
                    PASSED,
                    model,
                    name,
                    message=f"no breach in {self.settings.duration:g}s",
                    time=self._now(),
                )
                return
            if cancel.wait(min(self.settings.interval, left)):
                continue  # reported at the top of the loop

    def _on_breach(
        self,
        model: str,
        target: Target,
        check: str,
        value: float,
        limit: float,
        cancel: CancelToken,
    ) -> Iterator[GuardEvent]:
        reason = breach_reason(check, value, limit)
        name = target.name
        yield GuardEvent(
            BREACH,
            model,
            name,
            check=check,
            value=value,
            limit=limit,
            message=reason,
            time=self._now(),
        )
        if not self.settings.auto_rollback:
            yield GuardEvent(
                ALERT,
                model,
                name,
                check=check,
                value=value,
                limit=limit,
                message=f"{reason}; automatic rollback is off: roll back by hand",
                time=self._now(),
            )
            return
        rollback = self._rollback
        if rollback is None:
            from core.services.actions import run_rollback

            rollback = run_rollback
        try:
            for progress in rollback(self.journal, target, None, reason=reason, cancel=cancel):
                yield GuardEvent(
                    ROLLBACK_PROGRESS,
                    model,
                    name,
                    check=check,
                    value=value,
                    limit=limit,
                    message=progress.message,
                    progress=progress,
                )
        except MrcError as exc:  # Cancelled included
            what = "cancelled" if isinstance(exc, Cancelled) else "failed"
            yield GuardEvent(
                ROLLBACK_FAILED,
                model,
                name,
                check=check,
                value=value,
                limit=limit,
                message=f"{reason}; rollback {what}: {exc}",
                time=self._now(),
            )
            return
        yield GuardEvent(
            ROLLED_BACK,
            model,
            name,
            check=check,
            value=value,
            limit=limit,
            message=f"{reason}; rolled back",
            time=self._now(),
        )


def breach_reason(check: str, value: float, limit: float) -> str:
    """Return the journal reason of a breach: ``"guard: <check> breached: <value> > <limit>"``."""
    return f"guard: {check} breached: {value:.4g} > {limit:.4g}"
