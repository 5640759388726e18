"""Drift math checked against values computed by hand (arithmetic in the comments)."""

from __future__ import annotations

import math
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain import DriftBand, Histogram
from core.metrics import drift, reference

INF = math.inf


def hist(bounds: tuple[float, ...], per_bin: tuple[float, ...]) -> Histogram:
    """A histogram from per-bin counts (cumulated here)."""
    cumulative, running = [], 0.0
    for c in per_bin:
        running += c
        cumulative.append(running)
    return Histogram(bounds, tuple(cumulative))


# -- bins ---------------------------------------------------------------


def test_bins_are_differences_of_cumulative_buckets_with_inf_last() -> None:
    # cumulative 3, 7, 10 -> bins 3, 7-3=4, 10-7=3 (the last one is the +Inf bucket)
    h = Histogram((0.5, 1.0, INF), (3, 7, 10))
    assert drift.bins_from_cumulative(h) == [3, 4, 3]


def test_non_monotone_cumulative_counts_are_clipped_to_zero() -> None:
    # cumulative 5, 4, 10 -> 5, max(4-5, 0)=0, 10-4=6
    h = Histogram((1.0, 2.0, INF), (5, 4, 10))
    assert drift.bins_from_cumulative(h) == [5, 0, 6]


def test_smooth_gives_proportions_and_raises_empty_bins_to_epsilon() -> None:
    assert drift.smooth([1, 3]) == pytest.approx([0.25, 0.75])
    # [100, 0] -> proportions [1, 0] -> [1, 1e-4] -> divided by 1.0001
    assert drift.smooth([100, 0], epsilon=1e-4) == pytest.approx([1 / 1.0001, 1e-4 / 1.0001])
    assert drift.smooth([0, 0, 0, 0]) == [0.25] * 4
    with pytest.raises(ValueError, match="negative"):
        drift.smooth([1, -1])


# -- PSI ----------------------------------------------------------------


def test_psi_of_identical_distributions_is_zero() -> None:
    p = drift.smooth([10, 20, 30, 40])
    assert drift.psi(p, p) == 0.0


def test_psi_two_bins_hand_computed() -> None:
    # ref 0.5/0.5, cur 0.8/0.2:
    # (0.8-0.5)*ln(0.8/0.5) + (0.2-0.5)*ln(0.2/0.5)
    # = 0.3*0.4700036 + 0.3*0.9162907 = 0.1410011 + 0.2748872 = 0.4158883
    assert drift.psi([0.5, 0.5], [0.8, 0.2]) == pytest.approx(0.4158883, abs=1e-7)


def test_psi_four_bins_hand_computed() -> None:
    # ref 0.25 each, cur 0.1/0.2/0.3/0.4:
    # (-0.15)*ln(0.4) = 0.1374436   (-0.05)*ln(0.8) = 0.0111572
    # ( 0.05)*ln(1.2) = 0.0091161   ( 0.15)*ln(1.6) = 0.0705005
    # sum = 0.2282174
    ref = drift.smooth([25, 25, 25, 25])
    cur = drift.smooth([10, 20, 30, 40])
    assert drift.psi(ref, cur) == pytest.approx(0.2282174, abs=1e-7)


def test_psi_with_an_empty_bin_uses_epsilon() -> None:
    # ref [100, 0] smoothed -> r = [0.99990001, 0.000099990001]; cur [0.5, 0.5]
    # (0.5-0.99990001)*ln(0.5/0.99990001)  = -0.49990001 * -0.6930472 = 0.3464543
    # (0.5-0.00009999)*ln(0.5/0.00009999)  =  0.49990001 *  8.5172932 = 4.2577950
    # sum = 4.6042492
    ref = drift.smooth([100, 0], epsilon=1e-4)
    cur = drift.smooth([50, 50], epsilon=1e-4)
    assert drift.psi(ref, cur) == pytest.approx(4.6042492, abs=1e-6)


def test_psi_rejects_unsmoothed_or_mismatched_input() -> None:
    with pytest.raises(ValueError, match="smooth"):
        drift.psi([1.0, 0.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="2 and 3 bins"):
        drift.psi([0.5, 0.5], [0.2, 0.3, 0.5])


# -- Jensen-Shannon ---------------------------------------------------


def test_js_hand_computed() -> None:
    # p=[0.5,0.5], q=[1,0], m=[0.75,0.25]
    # KL(p||m) = 0.5*log2(0.5/0.75) + 0.5*log2(0.5/0.25) = -0.2924813 + 0.5 = 0.2075187
    # KL(q||m) = 1*log2(1/0.75) = 0.4150375
    # JS = (0.2075187 + 0.4150375) / 2 = 0.3112781
    assert drift.jensen_shannon([0.5, 0.5], [1, 0]) == pytest.approx(0.3112781, abs=1e-7)
    assert drift.jensen_shannon([1, 0], [0.5, 0.5]) == pytest.approx(0.3112781, abs=1e-7)


def test_js_is_one_for_disjoint_and_zero_for_identical() -> None:
    # disjoint: m=[0.5,0.5], each KL = log2(1/0.5) = 1 -> JS = 1
    assert drift.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert drift.jensen_shannon([3, 1], [6, 2]) == pytest.approx(0.0, abs=1e-12)


# -- score ------------------------------------------------------------


BOUNDS2 = (0.5, INF)


def test_score_bands_for_hand_computed_psi() -> None:
    ref = hist(BOUNDS2, (50, 50))
    alert = drift.score(ref, hist(BOUNDS2, (80, 20)), "psi", 0.1, 0.25, min_samples=10)
    assert alert.band is DriftBand.ALERT
    assert alert.value == pytest.approx(0.4158883, abs=1e-6)
    assert alert.samples == 100
    bounds4 = (0.25, 0.5, 0.75, INF)
    warn = drift.score(hist(bounds4, (25,) * 4), hist(bounds4, (10, 20, 30, 40)), min_samples=10)
    assert warn.band is DriftBand.WARN  # 0.228 is in [0.1, 0.25)
    same = drift.score(ref, hist(BOUNDS2, (5, 5)), min_samples=10)
    assert same.band is DriftBand.OK and same.value == 0.0


def test_score_with_shift_into_the_inf_bucket() -> None:
    # bins ref [100, 0] (nothing above 1.0), cur [50, 50]: the empty-bin value above
    ref = Histogram((1.0, INF), (100, 100))
    cur = Histogram((1.0, INF), (50, 100))
    s = drift.score(ref, cur, min_samples=10)
    assert s.value == pytest.approx(4.6042492, abs=1e-6)
    assert s.band is DriftBand.ALERT


def test_too_few_samples_is_not_enough_data_never_a_number() -> None:
    ref = hist(BOUNDS2, (500, 500))
    s = drift.score(ref, hist(BOUNDS2, (80, 19)), min_samples=100)
    assert s.band is DriftBand.NOT_ENOUGH_DATA
    assert s.value is None
    assert "current window has 99 samples (minimum 100)" in s.reason
    empty = drift.score(Histogram((), ()), ref, min_samples=0)
    assert empty.band is DriftBand.NOT_ENOUGH_DATA and "reference" in empty.reason


def test_score_realigns_onto_common_bounds() -> None:
    fine = Histogram((0.25, 0.5, 0.75, INF), (10, 50, 60, 100))
    coarse = Histogram((0.5, INF), (50, 100))
    s = drift.score(fine, coarse, min_samples=10)
    assert s.value == 0.0  # both are 50/50 on the common bounds 0.5 and +Inf


def test_score_with_mismatched_bounds_says_which() -> None:
    with pytest.raises(ValueError, match=r"reference has \[0.3, \+Inf\], current has \[0.5, \+Inf"):
        drift.score(Histogram((0.3, INF), (5, 100)), Histogram((0.5, INF), (5, 100)), min_samples=1)


def test_score_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown drift method 'kl'"):
        drift.score(hist(BOUNDS2, (1, 1)), hist(BOUNDS2, (1, 1)), "kl")


def test_js_score_uses_js_bands() -> None:
    # bins [50,50] vs [100,0]; smoothed current [1/1.0001, 1e-4/1.0001] ~ the 0.311 case
    s = drift.score(hist(BOUNDS2, (50, 50)), hist(BOUNDS2, (100, 0)), "js", min_samples=10)
    assert s.value == pytest.approx(0.3112781, abs=1e-3)
    assert s.band is DriftBand.ALERT


# -- ranking, delta, quantile -----------------------------------------


def test_rank_features_most_drifted_first_not_enough_data_last() -> None:
    ref = hist(BOUNDS2, (50, 50))
    ranked = drift.rank_features(
        {
            "stable": (ref, hist(BOUNDS2, (51, 49))),
            "sparse": (ref, hist(BOUNDS2, (1, 1))),
            "moved": (ref, hist(BOUNDS2, (90, 10))),
            "bad_bounds": (ref, Histogram((0.3, INF), (10, 100))),
            "some": (ref, hist(BOUNDS2, (70, 30))),
        },
        min_samples=10,
    )
    names = [name for name, _ in ranked]
    assert names[:3] == ["moved", "some", "stable"]
    assert set(names[3:]) == {"sparse", "bad_bounds"}
    assert all(s.band is DriftBand.NOT_ENOUGH_DATA for _, s in ranked[3:])
    assert "do not match" in dict(ranked)["bad_bounds"].reason


def test_histogram_delta_and_counter_reset() -> None:
    earlier = Histogram(BOUNDS2, (10, 30))
    later = Histogram(BOUNDS2, (15, 40))
    assert drift.histogram_delta(later, earlier) == Histogram(BOUNDS2, (5, 10))
    restarted = Histogram(BOUNDS2, (2, 3))  # total went from 30 to 3: a reset
    assert drift.histogram_delta(restarted, earlier) == restarted
    with pytest.raises(ValueError, match="bounds"):
        drift.histogram_delta(Histogram((1.0, INF), (1, 2)), earlier)


def test_quantile_interpolates_like_promql() -> None:
    h = Histogram((1.0, 2.0, 4.0, INF), (10, 30, 40, 40))
    # q=0.5: rank 20 falls in (1, 2] holding 20 with 10 below: 1 + (20-10)/20 = 1.5
    assert drift.quantile(0.5, h) == pytest.approx(1.5)
    # q=0.1: rank 4 in the first bucket (0, 1]: 4/10 = 0.4
    assert drift.quantile(0.1, h) == pytest.approx(0.4)
    # rank in the +Inf bucket gives the highest finite bound
    assert drift.quantile(0.9, Histogram((1.0, 2.0, 4.0, INF), (10, 10, 10, 20))) == 4.0
    assert drift.quantile(0.5, Histogram((1.0, INF), (0, 0))) is None


# -- properties -------------------------------------------------------

counts = st.lists(st.integers(min_value=0, max_value=10_000), min_size=2, max_size=12)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), ref=counts)
def test_psi_non_negative_and_js_bounded_symmetric(data: st.DataObject, ref: list[int]) -> None:
    cur = data.draw(st.lists(st.integers(0, 10_000), min_size=len(ref), max_size=len(ref)))
    p, q = drift.smooth(ref), drift.smooth(cur)
    assert drift.psi(p, q) >= 0
    assert drift.psi(p, p) == pytest.approx(0.0, abs=1e-12)
    js = drift.jensen_shannon(p, q)
    assert 0.0 <= js <= 1.0
    assert js == pytest.approx(drift.jensen_shannon(q, p), abs=1e-12)


# -- training reference file -------------------------------------------


def test_reference_file_round_trip_and_inf_bin_added(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "histograms.json"
    path.write_text(
        '{"prediction": {"bounds": [0.5, 1.0], "counts": [30, 70]},'
        ' "features": {"age": {"bounds": [30, 60, "+Inf"], "counts": [1, 2, 3]}}}'
    )
    ref = reference.load(path)
    # per-bin 30, 70 -> cumulative 30, 100, plus an empty +Inf bin
    assert ref.prediction == Histogram((0.5, 1.0, INF), (30, 100, 100))
    assert ref.features["age"] == Histogram((30, 60, INF), (1, 3, 6))
    reference.dump(ref, tmp_path / "copy.json")
    assert reference.load(tmp_path / "copy.json") == ref


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "h.json: not valid JSON"),
        ('{"features": {}}', "h.json: prediction: required key missing"),
        ('{"prediction": {"bounds": [1], "counts": [1, 2]}}', "prediction: 1 bounds but 2 counts"),
        ('{"prediction": {"bounds": [2, 1], "counts": [1, 2]}}', "strictly increasing"),
        ('{"prediction": {"bounds": ["x"], "counts": [1]}}', "prediction.bounds: bound 'x'"),
        (
            '{"prediction": {"bounds": [1], "counts": [1]}, "features": {"age": {"counts": [-1]}}}',
            "h.json: features.age.bounds: expected a non-empty list",
        ),
        ('{"prediction": {"bounds": [1], "counts": [-1]}}', "prediction.counts[0]: -1"),
    ],
)
def test_reference_errors_name_file_and_key(
    tmp_path: pathlib.Path, text: str, message: str
) -> None:
    path = tmp_path / "h.json"
    path.write_text(text)
    with pytest.raises(reference.InvalidReference) as info:
        reference.load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_reference_file_names_it(tmp_path: pathlib.Path) -> None:
    with pytest.raises(reference.InvalidReference, match=r"missing\.json: cannot read"):
        reference.load(tmp_path / "missing.json")
