"""Which action the Drift screen advises, from the data its chart shows.

Drift that began at a release marker suggests a rollback (``u``); drift that
began without one suggests retraining (``R``); no drift, or too little data,
gives no advice (never advise on missing data).
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from core.domain import DriftBand, DriftScore, Marker
from core.services.views import drift_advice

T0 = 1_800_000_000.0
WARN = 0.1
LEAD = 40.0  # a 30 s drift window plus a step or two


def series(values: list[float], step: float = 5.0) -> list[tuple[float, float]]:
    return [(T0 + i * step, v) for i, v in enumerate(values)]


def score(value: float | None) -> DriftScore:
    if value is None:
        return DriftScore("psi", None, DriftBand.NOT_ENOUGH_DATA, 12, "too few samples", "samples")
    band = DriftBand.ALERT if value >= 0.25 else DriftBand.WARN if value >= WARN else DriftBand.OK
    return DriftScore("psi", value, band, 600)


def marker(at: float, label: str = "v1.3.0", kind: str = "rollout") -> Marker:
    return Marker(datetime.fromtimestamp(at, UTC), label, kind, "local")


FLAT_THEN_RISE = [0.01, 0.02, 0.01, 0.02, 0.01, 0.08, 0.2, 0.35, 0.45, 0.5]
#: Index of the first point at or above WARN in FLAT_THEN_RISE.
CROSS = 6


def test_a_marker_then_a_rise_advises_rollback() -> None:
    points = series(FLAT_THEN_RISE)
    release = marker(points[CROSS][0] - 12)
    advice = drift_advice(points, [release], score(0.5), WARN, LEAD)
    assert advice.action == "rollback"
    assert advice.marker == release
    assert "v1.3.0" in advice.why and "(u)" in advice.why
    assert advice.since == datetime.fromtimestamp(points[CROSS][0], UTC)


def test_a_rise_without_a_marker_advises_retrain() -> None:
    advice = drift_advice(series(FLAT_THEN_RISE), [], score(0.5), WARN, LEAD)
    assert advice.action == "retrain"
    assert advice.marker is None
    assert "(R)" in advice.why


def test_a_marker_long_before_the_rise_or_after_it_is_not_where_it_began() -> None:
    points = series(FLAT_THEN_RISE)
    old = marker(points[CROSS][0] - LEAD - 30, "v1.2.0")
    later = marker(points[CROSS][0] + 3, "v1.4.0")
    advice = drift_advice(points, [old, later], score(0.5), WARN, LEAD)
    assert advice.action == "retrain"


def test_the_latest_rise_counts_not_an_earlier_one_at_a_release() -> None:
    # A release drifted, was rolled back (drift fell), then the data moved.
    values = [0.01, 0.3, 0.4, 0.05, 0.02, 0.01, 0.01, 0.02, 0.3, 0.4]
    points = series(values, step=20.0)
    release = marker(points[1][0] - 5)
    advice = drift_advice(points, [release], score(0.4), WARN, LEAD)
    assert advice.action == "retrain"


def test_no_drift_gives_no_advice() -> None:
    points = series([0.01, 0.02, 0.03, 0.02, 0.01])
    advice = drift_advice(points, [marker(points[2][0])], score(0.01), WARN, LEAD)
    assert advice.action == ""
    assert advice.marker is None and advice.since is None


def test_drift_that_fell_below_warn_gives_no_advice() -> None:
    points = series([0.01, 0.4, 0.5, 0.3, 0.05])
    assert drift_advice(points, [], score(0.05), WARN, LEAD).action == ""


def test_too_little_data_gives_no_advice() -> None:
    # The current window has too few samples: no advice, whatever the history says.
    points = series(FLAT_THEN_RISE)
    advice = drift_advice(points, [], score(None), WARN, LEAD)
    assert advice.action == "" and "not enough data" in advice.why
    # Too few points to see where it began.
    assert drift_advice(series([0.01, 0.5]), [], score(0.5), WARN, LEAD).action == ""
    assert drift_advice([], [], score(0.5), WARN, LEAD).action == ""


def test_drift_already_high_at_the_start_of_the_range_gives_no_advice() -> None:
    points = series([0.4, 0.45, 0.5, 0.5])
    advice = drift_advice(points, [marker(T0 - 5)], score(0.5), WARN, LEAD)
    assert advice.action == ""
    assert "longer range" in advice.why


@given(
    st.lists(st.floats(0, 2, allow_nan=False), max_size=40),
    st.one_of(st.none(), st.floats(0, 2, allow_nan=False)),
    st.lists(st.floats(-100, 400, allow_nan=False), max_size=4),
)
def test_advice_is_always_one_of_three_and_never_on_missing_data(
    values: list[float], now: float | None, at: list[float]
) -> None:
    points = series(values)
    advice = drift_advice(points, [marker(T0 + a) for a in at], score(now), WARN, LEAD)
    assert advice.action in ("", "rollback", "retrain")
    if now is None or now < WARN or len(values) < 3:
        assert advice.action == ""
    assert (advice.marker is not None) == (advice.action == "rollback")


def test_a_rollback_made_while_drift_was_high_is_not_where_new_drift_began() -> None:
    # Drift high, rolled back (marker while still high), fell, then the data moved soon after.
    values = [0.4, 0.45, 0.5, 0.3, 0.12, 0.05, 0.04, 0.2, 0.4]
    points = series(values, step=5.0)
    rollback = marker(points[2][0] + 1, "revision 2", "rollback")
    advice = drift_advice(points, [rollback], score(0.4), WARN, LEAD)
    assert advice.action == "retrain"


def test_drift_that_went_on_after_a_rollback_advises_retrain() -> None:
    # The release drifted, the rollback's window passed, the drift did not end (a shift
    # the chart's steps are too coarse to separate from the release's): the data moved.
    values = [0.01, 0.02, 0.3, 0.4, 0.4, 0.35, 0.3, 0.4, 0.45, 0.5, 0.5, 0.5]
    points = series(values, step=10.0)
    release = marker(points[2][0] - 5)
    rollback = marker(points[4][0] + 1, "revision 2", "rollback")
    advice = drift_advice(points, [release, rollback], score(0.5), WARN, LEAD)
    assert advice.action == "retrain"
    assert "rollback" in advice.why
    # Within its window a rollback may still end the drift: the release is where it began.
    soon = drift_advice(points[:7], [release, rollback], score(0.3), WARN, LEAD)
    assert soon.action == "rollback" and soon.marker == release


def test_drift_on_since_the_range_began_and_past_a_rollback_advises_retrain() -> None:
    # Coarse steps: the score never shows below warn, yet a rollback a window ago did not end it.
    values = [0.2, 0.15, 0.4, 0.5, 0.3, 0.2, 0.4, 0.5, 0.5, 0.5]
    points = series(values, step=20.0)
    rollback = marker(points[3][0] + 2, "revision 2", "rollback")
    advice = drift_advice(points, [rollback], score(0.5), WARN, LEAD)
    assert advice.action == "retrain" and "went on after the rollback" in advice.why
    # Without a marker nobody can tell where it began.
    assert drift_advice(points, [], score(0.5), WARN, LEAD).action == ""


def test_drift_right_after_a_rollback_advises_retrain() -> None:
    # The rollback went back to a revision that ran before; the data moved just after it.
    points = series(FLAT_THEN_RISE)
    rollback = marker(points[CROSS][0] - 10, "revision 2", "rollback")
    assert drift_advice(points, [rollback], score(0.5), WARN, LEAD).action == "retrain"


def test_a_gap_without_data_ends_a_run() -> None:
    # A release drifted; a rollback restarted the server (no data: a gap); the data moved.
    values = [0.01, 0.02, 0.3, 0.4, 0.45]
    before = series(values, step=10.0)
    after = [(before[-1][0] + 60 + 10 * i, v) for i, v in enumerate([0.3, 0.4, 0.5])]
    release = marker(before[2][0] - 5)
    rollback = marker(before[-1][0] + 5, "revision 2", "rollback")
    advice = drift_advice(before + after, [release, rollback], score(0.5), WARN, LEAD, step=10.0)
    assert advice.action == "retrain"
    # Read as one run (no step given), the drift seems to have begun at the release.
    joined = drift_advice(before + after, [release], score(0.5), WARN, LEAD)
    assert joined.action == "rollback"


def test_a_release_whose_drift_ended_in_a_gap_is_not_where_new_drift_began() -> None:
    # Release, drift, rollback (a restart: no data), then the data moved within a window.
    before = series([0.01, 0.02, 0.3, 0.4, 0.45], step=10.0)
    after = [(before[-1][0] + 25 + 10 * i, v) for i, v in enumerate([0.3, 0.4, 0.5])]
    release = marker(before[2][0] - 5)
    rollback = marker(before[-1][0] + 5, "revision 2", "rollback")
    advice = drift_advice(before + after, [release, rollback], score(0.5), WARN, 90.0, step=10.0)
    assert advice.action == "retrain"
