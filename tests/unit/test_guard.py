"""The post-release guard against a fake metrics source and a recording rollback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.cancel import CancelToken
from core.domain import Alert, DriftBand, DriftScore, Histogram, Progress, Series
from core.errors import BackendUnavailable, Conflict, InvalidQuery, InvalidResponse
from core.metrics.base import MetricsSource, SourceHealth
from core.services import guard as g

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeSource(MetricsSource):
    """Answers instant queries from a script: query -> list of values per call (None = no data).

    ``healths`` scripts :meth:`health` the same way (default: healthy).
    """

    def __init__(
        self, answers: dict[str, list[Any]], healths: list[SourceHealth] | None = None
    ) -> None:
        self.answers = {k: list(v) for k, v in answers.items()}
        self.healths = list(healths or [SourceHealth()])
        self.calls: list[str] = []

    def health(self) -> SourceHealth:
        return self.healths.pop(0) if len(self.healths) > 1 else self.healths[0]

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
    on_inconclusive: str = "",
    max_errors: int = 4,
    healths: list[SourceHealth] | None = None,
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
        on_inconclusive=on_inconclusive,
        max_consecutive_errors=max_errors,
    )
    guard = g.Guard(
        FakeSource(answers, healths),
        settings,
        queries={"error_rate": "err", "latency_p95": "p95"},
        drift=drift,
        journal="the-journal",
        rollback=rb,
        clock=clock,
        now=lambda: T0 + timedelta(seconds=clock.t),
    )
    return guard, clock, rb


def run(
    guard: g.Guard, clock: Clock, cancel_after: float | None = None, *, production: bool = False
) -> list[g.GuardEvent]:
    token = SteppingToken(clock, cancel_after)
    target: Any = FakeTarget()
    return list(guard.watch("churn", target, T0, token, production=production))


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
    ("answer", "cause"),
    [
        (None, g.NO_DATA),
        (float("nan"), g.NO_DATA),
        (float("inf"), g.NO_DATA),
        (BackendUnavailable("down"), g.SOURCE_ERROR),
        (InvalidQuery("bad"), g.SOURCE_ERROR),
        (InvalidResponse("answered HTML"), g.SOURCE_ERROR),
        (BackendUnavailable("did not answer within 5s"), g.SOURCE_ERROR),
        (AttributeError("'list' object has no attribute 'get'"), g.SOURCE_ERROR),
    ],
    ids=["no series", "nan", "inf", "unreachable", "rejected", "garbled", "timeout", "raw bug"],
)
def test_a_window_without_data_is_inconclusive_never_passed(answer: Any, cause: str) -> None:
    guard, clock, rb = make_guard({"err": [answer], "p95": [answer]}, auto=False, max_errors=99)
    events = run(guard, clock)
    final = events[-1]
    assert final.kind == g.INCONCLUSIVE
    assert not any(e.kind == g.PASSED for e in events)
    assert final.reason.startswith(f"{cause} for error_rate")
    assert final.message.startswith(f"guard: inconclusive ({cause} for error_rate")
    assert final.action == g.ALERT_OPERATOR  # not production: the operator decides
    checks = [e for e in events if e.kind == g.CHECK]
    assert checks and all(e.value is None and e.reason.startswith(cause) for e in checks)
    assert rb.calls == []


def test_source_errors_end_the_window_at_the_consecutive_limit() -> None:
    down = BackendUnavailable("Prometheus at http://p did not answer within 5s")
    guard, clock, rb = make_guard(
        {"err": [0.01, down, 0.01, down, down, down, 0.01], "p95": [0.1]},
        auto=False,
        duration=300,
        max_errors=3,
    )
    events = run(guard, clock)
    final = events[-1]
    assert final.kind == g.INCONCLUSIVE
    assert final.check == "error_rate"
    assert final.reason == (
        "source error for error_rate: 3 consecutive errors, "
        "last: Prometheus at http://p did not answer within 5s"
    )
    assert clock.t == pytest.approx(25.0)  # the sixth round; the lone error was forgiven
    assert rb.calls == []


def test_one_check_without_data_makes_the_window_inconclusive() -> None:
    guard, clock, _rb = make_guard({"err": [0.01], "p95": [None]}, auto=False)
    events = run(guard, clock)
    assert events[-1].kind == g.INCONCLUSIVE
    assert events[-1].check == "latency_p95"
    assert events[-1].reason.startswith("no data for latency_p95 in 30s")


def test_a_check_that_had_data_once_is_not_missing() -> None:
    guard, clock, _rb = make_guard({"err": [None, 0.01, None], "p95": [0.2]})
    assert run(guard, clock)[-1].kind == g.PASSED


def test_a_stale_source_is_inconclusive_even_while_its_old_data_looks_fine() -> None:
    old = SourceHealth(
        "cannot scrape http://m/metrics: connection refused", T0 - timedelta(minutes=1)
    )
    guard, clock, _rb = make_guard(
        {"err": [0.01], "p95": [0.2]}, auto=False, duration=300, max_errors=2, healths=[old]
    )
    events = run(guard, clock)
    assert events[-1].kind == g.INCONCLUSIVE
    assert events[-1].reason.startswith("stale source for error_rate: 2 consecutive errors")
    assert "connection refused" in events[-1].reason
    assert all(e.value is None for e in events if e.kind == g.CHECK)


def test_inconclusive_rolls_back_through_the_journalled_path_when_configured() -> None:
    guard, clock, rb = make_guard(
        {"err": [None], "p95": [0.1]}, auto=False, on_inconclusive=g.ROLLBACK
    )
    events = run(guard, clock)
    kinds = [e.kind for e in events]
    after = kinds[kinds.index(g.INCONCLUSIVE) :]
    assert after == [g.INCONCLUSIVE, g.ROLLBACK_PROGRESS, g.ROLLBACK_PROGRESS, g.ROLLED_BACK]
    [call] = rb.calls
    assert call["reason"].startswith("guard: inconclusive (no data for error_rate in 30s: ")
    assert call["journal"] == "the-journal" and call["to"] is None
    assert events[-1].reason and not events[-1].breached


def test_inconclusive_accept_records_it_and_ends() -> None:
    guard, clock, rb = make_guard({"err": [None], "p95": [0.1]}, on_inconclusive=g.ACCEPT)
    events = run(guard, clock, production=True)
    assert events[-1].kind == g.INCONCLUSIVE and events[-1].action == g.ACCEPT
    assert "accepted" in events[-1].message
    assert rb.calls == []


@pytest.mark.parametrize(
    ("production", "auto", "expected"),
    [
        (True, True, g.ROLLBACK),
        (True, False, g.ALERT_OPERATOR),
        (False, True, g.ALERT_OPERATOR),
        (False, False, g.ALERT_OPERATOR),
    ],
)
def test_default_consequence_of_inconclusive(production: bool, auto: bool, expected: str) -> None:
    guard, clock, rb = make_guard({"err": [None], "p95": [0.1]}, auto=auto)
    events = run(guard, clock, production=production)
    verdict = next(e for e in events if e.kind == g.INCONCLUSIVE)
    assert verdict.action == expected
    assert bool(rb.calls) == (expected == g.ROLLBACK)


class FakeDrift:
    def __init__(self, scores: list[DriftScore]) -> None:
        self.scores = scores
        self.windows: list[tuple[datetime, datetime]] = []

    def score(self, start: datetime, end: datetime) -> DriftScore:
        self.windows.append((start, end))
        return self.scores.pop(0) if len(self.scores) > 1 else self.scores[0]


@pytest.mark.parametrize(
    ("score", "cause"),
    [
        (
            DriftScore("psi", None, DriftBand.NOT_ENOUGH_DATA, 10,
                       "current window has 10 samples (minimum 100)", "samples"),
            g.TOO_FEW_SAMPLES,
        ),
        (
            DriftScore("psi", None, DriftBand.NOT_ENOUGH_DATA, 0,
                       "drift.reference_path is not configured", "reference"),
            g.NO_REFERENCE,
        ),
    ],
    ids=["too few samples", "no reference"],
)  # fmt: skip
def test_drift_without_a_score_all_window_is_inconclusive_with_the_reason(
    score: DriftScore, cause: str
) -> None:
    guard, clock, _rb = make_guard(
        {"err": [0.0], "p95": [0.1]}, drift=FakeDrift([score]), max_drift=0.25, auto=False
    )
    events = run(guard, clock)
    assert events[-1].kind == g.INCONCLUSIVE
    assert events[-1].reason == f"{cause} for drift in 30s: {score.reason}"


def test_drift_probe_that_raises_garbage_is_a_source_error() -> None:
    class Broken:
        def score(self, start: datetime, end: datetime) -> DriftScore:
            raise ValueError("could not convert string to float: 'abc'")

    guard, clock, _rb = make_guard(
        {"err": [0.0], "p95": [0.1]}, drift=Broken(), max_drift=0.25, auto=False, max_errors=2
    )
    events = run(guard, clock)
    assert events[-1].kind == g.INCONCLUSIVE
    assert events[-1].reason.startswith("source error for drift: 2 consecutive errors, last: ")


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
    s = g.GuardSettings.from_config(GuardConfig(on_inconclusive="accept", max_consecutive_errors=2))
    assert (s.on_inconclusive, s.max_consecutive_errors) == ("accept", 2)
    with pytest.raises(ValueError, match="on_inconclusive"):
        g.GuardSettings.from_config({"on_inconclusive": "shrug"})
