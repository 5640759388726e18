"""The post-release guard against a fake metrics source and a recording rollback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.cancel import CancelToken
from core.domain import Alert, DriftBand, DriftScore, Histogram, Progress, Series
from core.errors import BackendUnavailable, Conflict, InvalidQuery
from core.services import guard as g

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeSource:
    """Answers instant queries from a script: query -> list of values per call (None = no data)."""

    def __init__(self, answers: dict[str, list[Any]]) -> None:
        self.answers = {k: list(v) for k, v in answers.items()}
        self.calls: list[str] = []

    def instant_query(self, query: str, at: datetime | None = None) -> list[Series]:
        self.calls.append(query)
        script = self.answers.get(query, [None])
        value = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(value, Exception):
            raise value
        if value is None:
            return []
        values = value if isinstance(value, list) else [value]
        return [Series(query, ((0.0, v),), {"i": str(i)}) for i, v in enumerate(values)]

    def range_query(self, *a: Any, **k: Any) -> list[Series]:
        return []

    def histogram_window(self, metric: str, start: datetime, end: datetime) -> Histogram:
        return Histogram((), ())

    def alerts(self) -> list[Alert]:
        return []

    def close(self) -> None:
        pass


class FakeTarget:
    model = "churn"
    name = "local"
    kind = "local"


class Clock:
    """A monotonic clock that advances only when the guard sleeps (via the cancel token)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class SteppingToken(CancelToken):
    """A cancel token whose wait() advances the fake clock instead of sleeping."""

    def __init__(self, clock: Clock, cancel_after: float | None = None) -> None:
        super().__init__()
        self.clock = clock
        self.cancel_after = cancel_after

    def wait(self, seconds: float) -> bool:
        self.clock.t += seconds
        if self.cancel_after is not None and self.clock.t >= self.cancel_after:
            self.cancel()
        return self.cancelled


class RecordingRollback:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def __call__(
        self, journal: Any, target: Any, to_revision: Any, *, reason: str, cancel: Any
    ) -> Iterator[Progress]:
        self.calls.append(
            {"journal": journal, "target": target, "to": to_revision, "reason": reason}
        )
        yield Progress("rollback", "rolling back")
        if self.error is not None:
            raise self.error
        yield Progress("rollback", "rolled back")


def make_guard(
    answers: dict[str, list[Any]],
    *,
    auto: bool = True,
    duration: float = 30.0,
    rollback: RecordingRollback | None = None,
    drift: Any = None,
    max_drift: float | None = None,
) -> tuple[g.Guard, Clock, RecordingRollback]:
    clock = Clock()
    rb = rollback or RecordingRollback()
    settings = g.GuardSettings(
        duration=duration,
        auto_rollback=auto,
        max_error_rate=0.05,
        max_latency_p95=0.5,
        max_drift=max_drift,
        interval=5.0,
    )
    guard = g.Guard(
        FakeSource(answers),
        settings,
        queries={"error_rate": "err", "latency_p95": "p95"},
        drift=drift,
        journal="the-journal",
        rollback=rb,
        clock=clock,
        now=lambda: T0 + timedelta(seconds=clock.t),
    )
    return guard, clock, rb


def run(guard: g.Guard, clock: Clock, cancel_after: float | None = None) -> list[g.GuardEvent]:
    token = SteppingToken(clock, cancel_after)
    return list(guard.watch("churn", FakeTarget(), T0, token))  # type: ignore[arg-type]


def test_healthy_window_passes_after_the_duration_and_never_rolls_back() -> None:
    guard, clock, rb = make_guard({"err": [0.01], "p95": [0.2]})
    events = run(guard, clock)
    assert events[0].kind == g.STARTED
    assert events[-1].kind == g.PASSED
    assert clock.t >= 30.0
    checks = [e for e in events if e.kind == g.CHECK]
    # evaluated at t=0,5,...,30: 7 rounds of both checks
    assert len(checks) == 14
    assert {e.check for e in checks} == {"error_rate", "latency_p95"}
    assert rb.calls == []


def test_error_rate_breach_rolls_back_with_the_documented_reason() -> None:
    guard, clock, rb = make_guard({"err": [0.01, 0.01, 0.2], "p95": [0.1]})
    events = run(guard, clock)
    kinds = [e.kind for e in events]
    assert kinds[-2:] == [g.ROLLBACK_PROGRESS, g.ROLLED_BACK]
    breach = next(e for e in events if e.kind == g.BREACH)
    assert breach.check == "error_rate"
    assert breach.value == pytest.approx(0.2)
    assert breach.limit == pytest.approx(0.05)
    assert clock.t == pytest.approx(10.0)  # third evaluation
    assert len(rb.calls) == 1
    call = rb.calls[0]
    assert call["reason"] == "guard: error_rate breached: 0.2 > 0.05"
    assert call["to"] is None  # the previous revision
    assert call["journal"] == "the-journal"


def test_worst_series_decides() -> None:
    guard, clock, rb = make_guard({"err": [[0.01, 0.3]], "p95": [0.1]})
    events = run(guard, clock)
    assert events[-1].kind == g.ROLLED_BACK
    assert rb.calls[0]["reason"].startswith("guard: error_rate breached: 0.3 >")


def test_latency_breach_without_auto_rollback_is_an_alert() -> None:
    guard, clock, rb = make_guard({"err": [0.0], "p95": [0.9]}, auto=False)
    events = run(guard, clock)
    assert events[-1].kind == g.ALERT
    assert events[-1].check == "latency_p95"
    assert "roll back by hand" in events[-1].message
    assert rb.calls == []


@pytest.mark.parametrize(
    "answer",
    [None, float("nan"), BackendUnavailable("down"), InvalidQuery("bad")],
    ids=["no series", "nan", "unreachable", "rejected"],
)
def test_missing_data_is_not_enough_data_never_a_breach(answer: Any) -> None:
    guard, clock, rb = make_guard({"err": [answer], "p95": [answer]})
    events = run(guard, clock)
    assert events[-1].kind == g.PASSED
    checks = [e for e in events if e.kind == g.CHECK]
    assert checks and all(e.value is None for e in checks)
    assert all("not enough data" in e.message or "no " in e.message for e in checks)
    assert rb.calls == []


class FakeDrift:
    def __init__(self, scores: list[DriftScore]) -> None:
        self.scores = scores
        self.windows: list[tuple[datetime, datetime]] = []

    def score(self, start: datetime, end: datetime) -> DriftScore:
        self.windows.append((start, end))
        return self.scores.pop(0) if len(self.scores) > 1 else self.scores[0]


def test_drift_breach_and_not_enough_data() -> None:
    drift = FakeDrift(
        [
            DriftScore("psi", None, DriftBand.NOT_ENOUGH_DATA, 10, "current window has 10 samples"),
            DriftScore("psi", 0.4, DriftBand.ALERT, 500),
        ]
    )
    guard, clock, rb = make_guard({"err": [0.0], "p95": [0.1]}, drift=drift, max_drift=0.25)
    events = run(guard, clock)
    drift_checks = [e for e in events if e.kind == g.CHECK and e.check == "drift"]
    assert drift_checks[0].value is None
    assert "10 samples" in drift_checks[0].message
    assert events[-1].kind == g.ROLLED_BACK
    assert rb.calls[0]["reason"] == "guard: drift breached: 0.4 > 0.25"
    assert drift.windows[0][0] == T0  # scored from the rollout on


def test_cancel_stops_the_watch_without_rolling_back() -> None:
    guard, clock, rb = make_guard({"err": [0.0], "p95": [0.1]}, duration=300)
    token = SteppingToken(clock, cancel_after=12)
    events = list(guard.watch("churn", FakeTarget(), T0, token))  # type: ignore[arg-type]
    assert events[-1].kind == g.CANCELLED
    assert clock.t < 300
    assert rb.calls == []


def test_failed_rollback_is_reported_not_raised() -> None:
    rb = RecordingRollback(error=Conflict("deployment changed meanwhile"))
    guard, clock, _ = make_guard({"err": [0.5], "p95": [0.1]}, rollback=rb)
    events = run(guard, clock)
    assert events[-1].kind == g.ROLLBACK_FAILED
    assert "deployment changed meanwhile" in events[-1].message
    assert "guard: error_rate breached" in events[-1].message


def test_settings_from_config_and_durations() -> None:
    from core.config import GuardConfig

    s = g.GuardSettings.from_config(GuardConfig(duration=120.0, max_error_rate=0.1))
    assert s.duration == 120.0
    assert s.limits() == {"error_rate": 0.1}
    assert 1.0 <= s.interval <= 15.0
    assert g.GuardSettings.from_config({"duration": "1m30s", "max_drift": 0.2}).duration == 90
    assert g.GuardSettings.from_config({"duration": "1m", "interval": "250ms"}).interval == 0.25
    assert g.GuardSettings.from_config({"duration": timedelta(minutes=2)}).duration == 120
    with pytest.raises(ValueError):
        g.GuardSettings.from_config({"duration": "soon"})
