"""Drift math on classic (cumulative ``le``) histograms.

Pure functions, no I/O. A drift score compares the *reference* distribution
of a histogram (the training histogram, or a window before a release) with
the *current* one (the latest window):

1. per-bin counts are the differences of the cumulative buckets
   (:func:`bins_from_cumulative`), negative differences clipped to zero;
2. counts become proportions in which empty bins get a small ``epsilon``
   (:func:`smooth`) so that logarithms stay finite;
3. :func:`psi` (population stability index, natural log) or
   :func:`jensen_shannon` (base 2, in [0, 1]) measures the difference;
4. :func:`score` maps the value onto the warn/alert bands, or says "not
   enough data" when either side has fewer than ``min_samples`` samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from core.domain import DriftBand, DriftScore, Histogram

METHODS = ("psi", "js")
DEFAULT_EPSILON = 1e-4
#: Default (warn, alert) thresholds per method. PSI bands are the usual 0.1 / 0.25.
DEFAULT_BANDS = {"psi": (0.1, 0.25), "js": (0.05, 0.1)}


def bins_from_cumulative(h: Histogram) -> list[float]:
    """Return the per-bin counts of ``h``, the ``+Inf`` bucket being the last bin.

    Bin ``i`` holds ``cumulative[i] - cumulative[i-1]``. Windowed counts are
    extrapolated per bucket by Prometheus' ``increase()``, so cumulative counts
    can decrease slightly from one bucket to the next: such negative
    differences are clipped to 0.
    """
    out: list[float] = []
    previous = 0.0
    for value in h.cumulative:
        out.append(max(value - previous, 0.0))
        previous = value
    return out


def smooth(counts: Sequence[float], epsilon: float = DEFAULT_EPSILON) -> list[float]:
    """Return the proportions of ``counts`` with every bin at least ``epsilon``.

    Proportions below ``epsilon`` (empty bins) are raised to ``epsilon`` and the
    result renormalised to sum to 1. All-zero counts give the uniform
    distribution. Raises ValueError for an empty sequence or a negative count.
    """
    if not counts:
        raise ValueError("cannot smooth an empty histogram")
    if any(c < 0 for c in counts):
        raise ValueError(f"negative bin count in {list(counts)!r}")
    total = float(sum(counts))
    if total <= 0:
        return [1.0 / len(counts)] * len(counts)
    raised = [max(c / total, epsilon) for c in counts]
    norm = sum(raised)
    return [p / norm for p in raised]


def _check_pair(ref: Sequence[float], cur: Sequence[float]) -> None:
    if len(ref) != len(cur):
        raise ValueError(f"distributions have {len(ref)} and {len(cur)} bins")
    if not ref:
        raise ValueError("distributions are empty")


def psi(ref: Sequence[float], cur: Sequence[float]) -> float:
    """Return the population stability index ``sum((c - r) * ln(c / r))``.

    ``ref`` and ``cur`` are proportions with no zero bin (see :func:`smooth`).
    The result is >= 0 and 0 for identical distributions. Raises ValueError on
    a bin-count mismatch or a non-positive proportion.
    """
    _check_pair(ref, cur)
    total = 0.0
    for r, c in zip(ref, cur, strict=True):
        if r <= 0 or c <= 0:
            raise ValueError("psi needs strictly positive proportions: smooth() them first")
        total += (c - r) * math.log(c / r)
    return max(total, 0.0)


def jensen_shannon(ref: Sequence[float], cur: Sequence[float]) -> float:
    """Return the Jensen–Shannon divergence (base 2) of two distributions, in [0, 1].

    The inputs are normalised first; zero bins are allowed. Symmetric in its
    arguments. Raises ValueError on a bin-count mismatch or an all-zero input.
    """
    _check_pair(ref, cur)
    sr, sc = float(sum(ref)), float(sum(cur))
    if sr <= 0 or sc <= 0:
        raise ValueError("jensen_shannon needs two non-empty distributions")
    p = [x / sr for x in ref]
    q = [x / sc for x in cur]
    total = 0.0
    for a, b in zip(p, q, strict=True):
        m = (a + b) / 2
        if a > 0:
            total += 0.5 * a * math.log2(a / m)
        if b > 0:
            total += 0.5 * b * math.log2(b / m)
    return min(max(total, 0.0), 1.0)


def align(reference: Histogram, current: Histogram) -> tuple[Histogram, Histogram]:
    """Return both histograms restricted to the bucket bounds they have in common.

    Cumulative counts at a shared bound do not depend on the other buckets, so
    the restriction is exact. Raises ValueError when the highest bounds differ
    or fewer than two bounds are shared (nothing meaningful to compare).
    """
    if reference.bounds == current.bounds:
        return reference, current
    for h in (reference, current):
        if len(h.bounds) != len(h.cumulative):
            raise ValueError(f"histogram has {len(h.bounds)} bounds but {len(h.cumulative)} counts")
    common = sorted(set(reference.bounds) & set(current.bounds))
    if (
        len(common) < 2
        or not reference.bounds
        or not current.bounds
        or reference.bounds[-1] != current.bounds[-1]
    ):
        raise ValueError(
            "histogram bucket bounds do not match: reference has "
            f"{_fmt_bounds(reference.bounds)}, current has {_fmt_bounds(current.bounds)}"
        )

    def restrict(h: Histogram) -> Histogram:
        index = {b: i for i, b in enumerate(h.bounds)}
        return Histogram(tuple(common), tuple(h.cumulative[index[b]] for b in common))

    return restrict(reference), restrict(current)


def _fmt_bounds(bounds: Sequence[float]) -> str:
    return "[" + ", ".join("+Inf" if math.isinf(b) else f"{b:g}" for b in bounds) + "]"


def band_of(value: float, warn: float, alert: float) -> DriftBand:
    """Return the band of ``value``: ALERT from ``alert`` up, WARN from ``warn`` up, else OK."""
    if value >= alert:
        return DriftBand.ALERT
    if value >= warn:
        return DriftBand.WARN
    return DriftBand.OK


def score(
    reference: Histogram,
    current: Histogram,
    method: str = "psi",
    warn: float | None = None,
    alert: float | None = None,
    min_samples: float = 100,
    epsilon: float = DEFAULT_EPSILON,
) -> DriftScore:
    """Return the drift of ``current`` against ``reference``.

    ``warn``/``alert`` default to :data:`DEFAULT_BANDS` of ``method``. When
    either side has fewer than ``min_samples`` samples (or none at all) the
    score's band is NOT_ENOUGH_DATA, its value None, ``missing`` "samples" and
    ``reason`` says which side is short; ``samples`` is the current window's
    sample count. Raises
    ValueError for an unknown method or mismatched bucket bounds.
    """
    if method not in METHODS:
        raise ValueError(f"unknown drift method {method!r} (expected one of {', '.join(METHODS)})")
    default_warn, default_alert = DEFAULT_BANDS[method]
    warn = default_warn if warn is None else warn
    alert = default_alert if alert is None else alert
    ref_bins = bins_from_cumulative(reference)
    cur_bins = bins_from_cumulative(current)
    ref_n, cur_n = sum(ref_bins), sum(cur_bins)
    short = [
        f"{name} window has {n:g} samples (minimum {min_samples:g})"
        for name, n in (("reference", ref_n), ("current", cur_n))
        if n <= 0 or n < min_samples
    ]
    if short:
        return DriftScore(
            method, None, DriftBand.NOT_ENOUGH_DATA, cur_n, "; ".join(short), missing="samples"
        )
    reference, current = align(reference, current)
    ref_p = smooth(bins_from_cumulative(reference), epsilon)
    cur_p = smooth(bins_from_cumulative(current), epsilon)
    value = psi(ref_p, cur_p) if method == "psi" else jensen_shannon(ref_p, cur_p)
    return DriftScore(method, value, band_of(value, warn, alert), cur_n)


def rank_features(
    pairs: Mapping[str, tuple[Histogram, Histogram]],
    method: str = "psi",
    warn: float | None = None,
    alert: float | None = None,
    min_samples: float = 100,
    epsilon: float = DEFAULT_EPSILON,
) -> list[tuple[str, DriftScore]]:
    """Return ``(feature, score)`` for every ``name -> (reference, current)`` pair.

    Most drifted first; features without enough data come last (by name); a
    feature whose bounds do not match gets NOT_ENOUGH_DATA with the mismatch as
    reason rather than failing the whole ranking.
    """
    scored: list[tuple[str, DriftScore]] = []
    for name, (ref, cur) in pairs.items():
        try:
            s = score(ref, cur, method, warn, alert, min_samples, epsilon)
        except ValueError as exc:
            if method not in METHODS:
                raise
            s = DriftScore(method, None, DriftBand.NOT_ENOUGH_DATA, 0.0, str(exc))
        scored.append((name, s))
    return sorted(
        scored,
        key=lambda item: (item[1].value is None, -(item[1].value or 0.0), item[0]),
    )


def histogram_delta(later: Histogram, earlier: Histogram) -> Histogram:
    """Return the samples observed between two cumulative snapshots of one histogram.

    When any bucket decreased the counter was reset in between, and ``later``
    is returned as is (everything it holds was observed after the reset).
    Raises ValueError when the bounds differ.
    """
    if later.bounds != earlier.bounds:
        raise ValueError(
            f"cannot subtract histograms with bounds {_fmt_bounds(earlier.bounds)} "
            f"and {_fmt_bounds(later.bounds)}"
        )
    if any(a < b for a, b in zip(later.cumulative, earlier.cumulative, strict=True)):
        return later
    return Histogram(
        later.bounds,
        tuple(a - b for a, b in zip(later.cumulative, earlier.cumulative, strict=True)),
    )


def quantile(q: float, h: Histogram) -> float | None:
    """Return the ``q`` quantile of ``h`` the way PromQL's ``histogram_quantile`` does.

    Linear interpolation inside the bucket holding the rank; the first bucket
    starts at 0 when its bound is positive; a rank in the ``+Inf`` bucket gives
    the highest finite bound. Cumulative counts are made monotone first.
    Returns None for an empty histogram or ``q`` outside [0, 1].
    """
    if not h.cumulative or h.total <= 0 or not 0 <= q <= 1 or len(h.bounds) < 2:
        return None
    cum: list[float] = []
    running = 0.0
    for c in h.cumulative:
        running = max(running, c)
        cum.append(running)
    rank = q * cum[-1]
    i = next(k for k, c in enumerate(cum) if c >= rank)
    if math.isinf(h.bounds[i]):
        return h.bounds[-2]
    lower = 0.0 if i == 0 else h.bounds[i - 1]
    if i == 0 and h.bounds[0] <= 0:
        return h.bounds[0]
    below = 0.0 if i == 0 else cum[i - 1]
    in_bucket = cum[i] - below
    if in_bucket <= 0:
        return h.bounds[i]
    return lower + (h.bounds[i] - lower) * (rank - below) / in_bucket
