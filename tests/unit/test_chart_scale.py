"""The live charts' stable scales: band and "nice" y limits, clock ticks on the x axis."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from tui.widgets.chart import band_limits, nice_ceil, nice_limits, time_ticks

values = st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=50)


@given(st.floats(1e-9, 1e12, allow_nan=False))
def test_nice_ceil_is_the_next_1_2_2_5_or_5_times_a_power_of_ten(value: float) -> None:
    nice = nice_ceil(value)
    assert nice >= value * (1 - 1e-9)
    assert nice < value * 2.5 * (1 + 1e-9)  # the widest gap, from 2 to 5 in steps of 2.5


@given(values)
def test_nice_limits_hold_every_value(data: list[float]) -> None:
    bottom, top = nice_limits(data, None)
    assert bottom < top
    assert all(bottom <= v <= top * (1 + 1e-9) for v in data)


def test_nice_limits_grow_at_once_and_shrink_only_when_the_data_fill_little() -> None:
    assert nice_limits([0.9], None) == (0.0, 1.0)
    assert nice_limits([1.1], (0.0, 1.0)) == (0.0, 2.0)  # grows at once
    assert nice_limits([0.9], (0.0, 2.0)) == (0.0, 2.0)  # kept: 0.9 fills enough of it
    assert nice_limits([0.5], (0.0, 2.0)) == (0.0, 0.5)  # shrinks: under a third
    assert nice_limits([], (0.0, 2.0)) == (0.0, 2.0)
    assert nice_limits([], None) == (0.0, 1.0)


@given(values)
def test_band_limits_show_every_band_and_every_value(data: list[float]) -> None:
    bottom, top = band_limits(data, [0.1, 0.25])
    assert top >= 0.5 and bottom <= 0.0
    assert all(bottom <= v <= top for v in data)


def test_band_limits_stay_put_while_the_values_fit() -> None:
    assert band_limits([0.01, 0.3, 0.49], [0.1, 0.25]) == (0.0, 0.5)
    assert band_limits([0.6], [0.1, 0.25]) == (0.0, 1.0)


def test_time_ticks_are_utc_clock_times_at_fixed_multiples() -> None:
    end = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()
    ticks = time_ticks(end - 1050, end, 90)
    labels = [label for _, label in ticks]
    assert labels == [
        "11:44",
        "11:46",
        "11:48",
        "11:50",
        "11:52",
        "11:54",
        "11:56",
        "11:58",
        "12:00",
    ]
    assert ticks[-1][0] == 0.0 and ticks[0][0] == -16.0
    # A window that stays put keeps its ticks; a week shows dates.
    assert time_ticks(end - 1050, end, 90) == ticks
    assert [label for _, label in time_ticks(end - 1050, end, 40)] == [
        "11:45",
        "11:50",
        "11:55",
        "12:00",
    ]
    week = time_ticks(end - 8 * 86400, end, 80)
    assert all(len(label) == 5 and label[2] == "-" for _, label in week)
