"""The post-release guard: watch a model's health for a while after a rollout.

After a rollout the guard evaluates the configured checks (error rate,
latency p95, drift score) every ``interval`` seconds for ``guard.duration``
and ends with one verdict, as Argo Rollouts' analysis runs do:

* **breached** — a check's value exceeded its limit (BREACH, with the value
  and the limit). With ``guard.auto_rollback`` the guard rolls the target back
  through :func:`core.services.actions.run_rollback` (journalled like any other
  rollback) with the reason ``"guard: <check> breached: <value> > <limit>"``;
  without it the guard emits ALERT and the console offers the one-key rollback.
* **inconclusive** — a configured check never produced a value in the whole
  window (no data, too few samples, no reference), or one check's source
  failed ``max_consecutive_errors`` times in a row (source error: unreachable,
  garbled or timed-out answers; stale source: the source's own collection is
  failing). INCONCLUSIVE carries the reason; what follows is
  ``guard.on_inconclusive`` (:meth:`GuardSettings.inconclusive_action`):
  a rollback through the same journalled path as a breach, an operator
  decision as after ALERT, or nothing more (accepted).
* **passed** — every configured check had data and none breached (PASSED).

Missing or bad data is never a pass, and no metric problem ever raises out
of :meth:`Guard.watch`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from core import durations
from core.cancel import CancelToken
from core.domain import DriftBand, DriftScore, Progress
from core.errors import Cancelled, MrcError, OperationFailed
from core.metrics.base import MetricsSource
from core.targets.base import Target

if TYPE_CHECKING:
    from core.config import GuardConfig
    from core.journal import Journal

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
PASSED = "passed"  # the whole window elapsed, every check had data, none breached
INCONCLUSIVE = "inconclusive"  # no verdict: a check never had data, or its source kept failing
CANCELLED = "cancelled"

# What an inconclusive window leads to (GuardEvent.action of INCONCLUSIVE).
ROLLBACK = "rollback"
ALERT_OPERATOR = "alert"
ACCEPT = "accept"
ON_INCONCLUSIVE = (ROLLBACK, ALERT_OPERATOR, ACCEPT)

# Why a check had no value (the first words of GuardEvent.reason of INCONCLUSIVE).
NO_DATA = "no data"
TOO_FEW_SAMPLES = "too few samples"
NO_REFERENCE = "no reference"
SOURCE_ERROR = "source error"
STALE_SOURCE = "stale source"


@dataclass(frozen=True, slots=True)
class GuardEvent:
    """Something the guard observed or did.

    ``kind`` is one of STARTED, CHECK, BREACH, ALERT, INCONCLUSIVE,
    ROLLBACK_PROGRESS, ROLLED_BACK, ROLLBACK_FAILED, PASSED, CANCELLED.
    ``value`` is None for a check without a value (``reason`` then says why:
    ``"<no data|too few samples|no reference|source error|stale source>: ..."``).
    INCONCLUSIVE carries the verdict's ``reason`` and the ``action`` that
    follows (ROLLBACK, ALERT_OPERATOR or ACCEPT); the rollback events that
    follow an inconclusive verdict carry the same ``reason``. ``remaining`` is
    the number of seconds left in the verify window when the event was made.
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
    reason: str = ""
    action: str = ""

    @property
    def breached(self) -> bool:
        """True for BREACH, ALERT and the rollback events that follow a breach (not those
        that follow an inconclusive verdict)."""
        if self.kind in (BREACH, ALERT):
            return True
        rollback = (ROLLED_BACK, ROLLBACK_FAILED, ROLLBACK_PROGRESS)
        return self.kind in rollback and not self.reason


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """The guard part of a model's configuration, in plain numbers.

    ``duration`` and ``interval`` are seconds. A limit of None disables that
    check. ``on_inconclusive`` is ROLLBACK, ALERT_OPERATOR, ACCEPT or ""
    (the default of :meth:`inconclusive_action`). ``max_consecutive_errors``
    source errors in a row make a check, and the window, inconclusive.
    ``stale_after`` (seconds) is how old a source's last successful
    collection may be while it reports an error; 0 means any reported error
    makes the source stale.
    """

    duration: float = 300.0
    auto_rollback: bool = False
    max_error_rate: float | None = None
    max_latency_p95: float | None = None
    max_drift: float | None = None
    interval: float = 5.0
    on_inconclusive: str = ""
    max_consecutive_errors: int = 4
    stale_after: float = 0.0

    def __post_init__(self) -> None:
        if self.on_inconclusive not in ("", *ON_INCONCLUSIVE):
            raise ValueError(
                f"unknown on_inconclusive {self.on_inconclusive!r} "
                f"(expected {', '.join(ON_INCONCLUSIVE)})"
            )
        if self.max_consecutive_errors < 1:
            raise ValueError("max_consecutive_errors must be at least 1")

    @classmethod
    def from_config(
        cls,
        guard: GuardConfig | Mapping[str, Any] | None,
        *,
        interval: float | None = None,
    ) -> GuardSettings:
        """Build settings from a ``[model.guard]`` table (:class:`core.config.GuardConfig`)
        or a mapping of the same keys; None gives defaults.

        Durations may be seconds, ``timedelta`` or strings in the grammar of
        :mod:`core.durations` such as ``"5m"``. Raises ValueError
        (:class:`~core.durations.DurationError`) for a duration that cannot be
        parsed, or for an unknown ``on_inconclusive``.
        """
        if guard is None:
            return cls() if interval is None else cls(interval=interval)

        values: Mapping[str, Any] = guard if isinstance(guard, Mapping) else asdict(guard)

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
            on_inconclusive=str(get("on_inconclusive", "") or ""),
            max_consecutive_errors=int(get("max_consecutive_errors", 4) or 4),
        )

    def limits(self) -> dict[str, float]:
        """Return ``{check name: limit}`` for every enabled check, in :data:`CHECKS` order."""
        all_limits = {
            "error_rate": self.max_error_rate,
            "latency_p95": self.max_latency_p95,
            "drift": self.max_drift,
        }
        return {k: v for k, v in all_limits.items() if v is not None}

    def inconclusive_action(self, production: bool) -> str:
        """Return what an inconclusive window does on a (``production``) target.

        ``on_inconclusive`` when set; otherwise ROLLBACK on production targets
        with ``auto_rollback``, else ALERT_OPERATOR.
        """
        if self.on_inconclusive:
            return self.on_inconclusive
        return ROLLBACK if production and self.auto_rollback else ALERT_OPERATOR


@dataclass(frozen=True, slots=True)
class Measurement:
    """One evaluation of one check: its ``value``, or None and why (``cause``, ``note``).

    ``cause`` is "" with a value, else NO_DATA, TOO_FEW_SAMPLES, NO_REFERENCE,
    SOURCE_ERROR or STALE_SOURCE; ``note`` is the detail shown to the operator.
    """

    value: float | None
    note: str = ""
    cause: str = ""

    @property
    def error(self) -> bool:
        """True when the source failed (counted towards the consecutive-error limit)."""
        return self.cause in (SOURCE_ERROR, STALE_SOURCE)


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
    """Evaluates a model's guard checks after a rollout and acts on its verdict.

    ``source`` answers the error-rate and latency queries (``queries`` maps
    check name to the query text, from the model's metrics config); ``drift``
    computes the drift score. Either may be None: its checks then have no
    data (and the window is inconclusive). ``journal`` is handed to the
    rollback action. ``rollback`` defaults to
    :func:`core.services.actions.run_rollback`.
    """

    def __init__(
        self,
        source: MetricsSource | None,
        settings: GuardSettings,
        *,
        queries: dict[str, str] | None = None,
        drift: DriftProbe | None = None,
        journal: Journal | None = None,
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
        """Return ``(value, note)`` of one check now; value None means no value (the note
        says why). Never raises for metric problems; see :meth:`measure`."""
        m = self.measure(check, since)
        return m.value, m.note

    def measure(self, check: str, since: datetime) -> Measurement:
        """Return one evaluation of ``check`` over the window from ``since`` to now.

        Never raises for metric problems: a source that fails (any error,
        garbled answers and time-outs included) gives cause SOURCE_ERROR, a
        source whose own collection is failing gives STALE_SOURCE, and missing
        data gives NO_DATA, TOO_FEW_SAMPLES or NO_REFERENCE.
        """
        try:
            stale = self._stale()
            if stale:
                return Measurement(None, f"{STALE_SOURCE}: {stale}", STALE_SOURCE)
            if check == "drift":
                return self._measure_drift(since)
            query = self.queries.get(check, "")
            if self.source is None or not query:
                return Measurement(None, f"{NO_DATA}: no query configured for {check}", NO_DATA)
            series = self.source.instant_query(query)
        except Exception as exc:  # a source failure is a missing value, never a crash
            detail = str(exc) if isinstance(exc, MrcError) else f"{type(exc).__name__}: {exc}"
            return Measurement(None, f"{SOURCE_ERROR}: {detail}", SOURCE_ERROR)
        values = [
            p[1] for s in series for p in s.points[-1:] if p[1] is not None and math.isfinite(p[1])
        ]
        if not values:
            return Measurement(None, f"{NO_DATA}: the query returned no value", NO_DATA)
        # several series (e.g. per pod): the worst one decides
        return Measurement(max(values))

    def _measure_drift(self, since: datetime) -> Measurement:
        if self.drift is None:
            return Measurement(None, f"{NO_DATA}: no drift source configured", NO_DATA)
        score = self.drift.score(since, self._now())
        if score.value is None or score.band is DriftBand.NOT_ENOUGH_DATA:
            cause = {"samples": TOO_FEW_SAMPLES, "reference": NO_REFERENCE}.get(
                score.missing, NO_DATA
            )
            return Measurement(None, f"{cause}: {score.reason or 'not enough data'}", cause)
        if not math.isfinite(score.value):
            return Measurement(None, f"{SOURCE_ERROR}: drift score {score.value}", SOURCE_ERROR)
        return Measurement(float(score.value), score.band.value)

    def _stale(self) -> str:
        """Return why the source's data is stale ("" when it is not)."""
        if self.source is None:
            return ""
        health = self.source.health()
        if not health.last_error:
            return ""
        if health.last_success is None:
            return f"no successful collection yet ({health.last_error})"
        age = (self._now() - health.last_success).total_seconds()
        if age <= self.settings.stale_after:
            return ""
        return f"last good data {age:.0f}s ago ({health.last_error})"

    # ------------------------------------------------------------------- watch

    def watch(
        self,
        model: str,
        target: Target,
        since: datetime,
        cancel: CancelToken | None = None,
        *,
        production: bool = False,
    ) -> Iterator[GuardEvent]:
        """Watch ``target`` for ``settings.duration`` seconds; yield what happens.

        Ends after PASSED, ALERT, INCONCLUSIVE (with action ALERT_OPERATOR or
        ACCEPT), ROLLED_BACK, ROLLBACK_FAILED or CANCELLED (the last event).
        ``production`` picks the default consequence of an inconclusive
        window (:meth:`GuardSettings.inconclusive_action`). Cancelling stops
        the watch between evaluations; a rollback in progress is handed the
        same token. Never raises for metric problems (they make a check
        inconclusive).
        """
        cancel = cancel or CancelToken()
        settings = self.settings
        limits = settings.limits()
        start = self._clock()
        deadline = start + settings.duration
        name = target.name
        had_value = dict.fromkeys(limits, False)
        last = dict.fromkeys(limits, Measurement(None, f"{NO_DATA}: not evaluated", NO_DATA))
        errors = dict.fromkeys(limits, 0)

        def remaining() -> float:
            return max(0.0, deadline - self._clock())

        checks_text = ", ".join(f"{k} <= {v:g}" for k, v in limits.items()) or "no checks"
        yield GuardEvent(
            STARTED,
            model,
            name,
            message=f"watching for {settings.duration:g}s: {checks_text}",
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
                m = self.measure(check, since)
                value = m.value
                yield GuardEvent(
                    CHECK,
                    model,
                    name,
                    check=check,
                    value=value,
                    limit=limit,
                    message=m.note or f"{check} = {value:g} (limit {limit:g})",
                    remaining=remaining(),
                    time=self._now(),
                    reason=m.note if value is None else "",
                )
                last[check] = m
                errors[check] = errors[check] + 1 if m.error else 0
                if value is not None:
                    had_value[check] = True
                    if value > limit:
                        yield from self._on_breach(model, target, check, value, limit, cancel)
                        return
                if errors[check] >= settings.max_consecutive_errors:
                    reason = (
                        f"{m.cause} for {check}: {errors[check]} consecutive errors, "
                        f"last: {_detail(m.note)}"
                    )
                    yield from self._on_inconclusive(
                        model, target, check, reason, production, cancel
                    )
                    return
            left = remaining()
            if left <= 0:
                missing = [c for c, seen in had_value.items() if not seen]
                if missing:
                    check = missing[0]
                    m = last[check]
                    reason = f"{m.cause} for {check} in {settings.duration:g}s: {_detail(m.note)}"
                    yield from self._on_inconclusive(
                        model, target, check, reason, production, cancel
                    )
                    return
                yield GuardEvent(
                    PASSED,
                    model,
                    name,
                    message=f"no breach in {settings.duration:g}s, every check had data",
                    time=self._now(),
                )
                return
            if cancel.wait(min(settings.interval, left)):
                continue  # reported at the top of the loop

    def _on_inconclusive(
        self,
        model: str,
        target: Target,
        check: str,
        reason: str,
        production: bool,
        cancel: CancelToken,
    ) -> Iterator[GuardEvent]:
        action = self.settings.inconclusive_action(production)
        text = f"guard: inconclusive ({reason})"
        follow = {
            ROLLBACK: "rolling back",
            ALERT_OPERATOR: "not verified: roll back by hand or accept",
            ACCEPT: "accepted as configured, not verified",
        }[action]
        yield GuardEvent(
            INCONCLUSIVE,
            model,
            target.name,
            check=check,
            message=f"{text}; {follow}",
            time=self._now(),
            reason=reason,
            action=action,
        )
        if action == ROLLBACK:
            yield from self._roll_back(model, target, check, None, None, text, cancel, reason)

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
        yield from self._roll_back(model, target, check, value, limit, reason, cancel, "")

    def _roll_back(
        self,
        model: str,
        target: Target,
        check: str,
        value: float | None,
        limit: float | None,
        why: str,
        cancel: CancelToken,
        inconclusive: str,
    ) -> Iterator[GuardEvent]:
        """Roll back through the journalled rollback with reason ``why``; yield its events.

        ``inconclusive`` is the verdict's reason when an inconclusive window (not a
        breach) caused the rollback; the events carry it.
        """
        name = target.name
        common: dict[str, Any] = {
            "check": check,
            "value": value,
            "limit": limit,
            "reason": inconclusive,
        }
        try:
            if self._rollback is not None:
                steps = self._rollback(self.journal, target, None, reason=why, cancel=cancel)
            elif self.journal is not None:
                from core.services.actions import run_rollback

                steps = run_rollback(self.journal, target, None, reason=why, cancel=cancel)
            else:
                raise OperationFailed("no journal to record the rollback in")
            for progress in steps:
                yield GuardEvent(
                    ROLLBACK_PROGRESS,
                    model,
                    name,
                    message=progress.message,
                    progress=progress,
                    **common,
                )
        except Exception as exc:  # MrcError (Cancelled included), or a bug: reported, not raised
            what = "cancelled" if isinstance(exc, Cancelled) else "failed"
            if not isinstance(exc, MrcError):
                exc = OperationFailed(f"{type(exc).__name__}: {exc}")
            yield GuardEvent(
                ROLLBACK_FAILED,
                model,
                name,
                message=f"{why}; rollback {what}: {exc}",
                time=self._now(),
                **common,
            )
            return
        yield GuardEvent(
            ROLLED_BACK, model, name, message=f"{why}; rolled back", time=self._now(), **common
        )


def _detail(note: str) -> str:
    """Return ``note`` without its leading cause (``"no data: x"`` -> ``"x"``)."""
    cause, sep, rest = note.partition(": ")
    causes = (NO_DATA, TOO_FEW_SAMPLES, NO_REFERENCE, SOURCE_ERROR, STALE_SOURCE)
    return rest if sep and cause in causes else note


def breach_reason(check: str, value: float, limit: float) -> str:
    """Return the journal reason of a breach: ``"guard: <check> breached: <value> > <limit>"``."""
    return f"guard: {check} breached: {value:.4g} > {limit:.4g}"
