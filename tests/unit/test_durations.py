"""The one duration grammar: its own rules, and the same seconds wherever a duration is read
(the configuration file, a scrape source's range selectors, the guard's settings)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import config, durations
from core.errors import InvalidQuery
from core.metrics.scrape import ScrapeSource
from core.services.guard import GuardSettings

SPELLINGS = [
    ("250ms", 0.25),
    ("30s", 30.0),
    ("5m", 300.0),
    ("1h30m", 5400.0),
    ("1.5h", 5400.0),
    ("2d", 172800.0),
    ("1w", 604800.0),
    ("90", 90.0),
    ("1m30s", 90.0),
]

T0 = 1_700_000_000.0


def config_duration(tmp_path: Path, value: str) -> float:
    """Return ``[model.guard] duration`` as the configuration file loader reads it."""
    path = tmp_path / "mrc.toml"
    path.write_text(
        f'[[model]]\nname = "m"\nrepo = "repo"\n\n[model.guard]\nduration = {value}\n',
        encoding="utf-8",
    )
    return config.load_file(path, environ={}).models[0].guard.duration


def scrape_window(spelling: str, seconds: float) -> float | None:
    """Return rate(c[spelling]) at the last of three scrapes of a scrape source.

    The scrapes are at ``-seconds - 1`` (counter 0), ``-seconds`` (counter
    1000) and 0 (counter ``1000 + seconds``): a window of exactly ``seconds``
    spans the last two and gives a rate of 1.0; a longer one reaches the first
    scrape, a shorter one gives no point at all (None).
    """
    source = ScrapeSource("http://127.0.0.1:1/metrics")
    for offset, value in ((-seconds - 1, 0.0), (-seconds, 1000.0), (0.0, 1000.0 + seconds)):
        source.ingest(f"# TYPE c counter\nc_total {value}\n", T0 + offset)
    found = source.instant_query(f"rate(c_total[{spelling}])", datetime.fromtimestamp(T0, UTC))
    return found[0].points[-1][1] if found else None


@pytest.mark.parametrize(("spelling", "seconds"), SPELLINGS)
def test_a_spelling_means_the_same_seconds_everywhere(
    tmp_path: Path, spelling: str, seconds: float
) -> None:
    assert durations.parse(spelling) == seconds
    assert config_duration(tmp_path, f'"{spelling}"') == seconds
    assert scrape_window(spelling, seconds) == pytest.approx(1.0)
    assert GuardSettings.from_config({"duration": spelling}).duration == seconds
    loaded = config.load_file(tmp_path / "mrc.toml", environ={}).models[0].guard
    assert GuardSettings.from_config(loaded).duration == seconds


def test_a_toml_number_is_seconds(tmp_path: Path) -> None:
    assert config_duration(tmp_path, "90") == 90.0
    assert config_duration(tmp_path, "0.25") == 0.25
    assert GuardSettings.from_config({"duration": 90}).duration == 90.0
    assert GuardSettings.from_config({"duration": timedelta(minutes=2)}).duration == 120.0


@pytest.mark.parametrize(
    "text", ["", " ", "5x", "m5", "-3s", "+3s", "1h 30m", "s", "5m5", "1h30", "1e3", "inf", "nan"]
)
def test_what_is_not_a_duration_is_refused_everywhere(tmp_path: Path, text: str) -> None:
    with pytest.raises(durations.DurationError) as caught:
        durations.parse(text)
    assert isinstance(caught.value, ValueError)
    assert "250ms" in str(caught.value)  # the message shows what a duration looks like
    with pytest.raises(config.ConfigError, match=r"model\[0\]\.guard\.duration: "):
        config_duration(tmp_path, f'"{text}"')
    with pytest.raises(ValueError):
        GuardSettings.from_config({"duration": text})
    if text and " " not in text:  # a query's spaces are insignificant: "1h 30m" is "1h30m"
        with pytest.raises(InvalidQuery, match="duration"):
            scrape_window(text, 1.0)


def test_a_zero_range_selector_is_an_invalid_query() -> None:
    with pytest.raises(InvalidQuery, match="must be positive"):
        scrape_window("0s", 1.0)


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_negative_and_non_finite_numbers_are_refused(tmp_path: Path, value: float) -> None:
    with pytest.raises(durations.DurationError):
        durations.format(value)
    with pytest.raises(durations.DurationError):
        durations.seconds(value)
    with pytest.raises(ValueError):
        GuardSettings.from_config({"duration": value})


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.25, "250ms"),
        (90.0, "1m30s"),
        (5400.0, "1h30m"),
        (172800.0, "2d"),
        (3600.5, "1h0.5s"),
        (1.5, "1.5s"),
    ],
)
def test_format_writes_the_grammar(seconds: float, text: str) -> None:
    assert durations.format(seconds) == text


@given(st.floats(min_value=0.0, allow_nan=False, allow_infinity=False))
def test_parse_reads_back_what_format_writes(seconds: float) -> None:
    assert durations.parse(durations.format(seconds)) == seconds


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(durations.UNITS))),
        min_size=1,
        max_size=5,
    )
)
def test_parts_add_up_exactly(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * durations.UNITS[unit] for n, unit in parts)
    assert durations.parse(text) == float(expected)
