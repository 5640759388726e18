"""The demo's synthetic churn problem: customers, labels, training and reference histograms.

Everything is pure Python and seeded, so the sample repository built from it
is identical on every machine. The same customer distribution feeds the
training set, the held-out set shipped in the repository and the traffic
generator; its *shifted* variant (newer, cheaper, more demanding customers)
is what the traffic generator sends when the data-shift switch is on.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import add, mul, sub

#: Input features of the model, in the order of the CSV columns.
FEATURES = ("tenure_months", "monthly_charges", "support_calls", "data_usage_gb")

#: Buckets (``le`` upper bounds) of the server's prediction-score histogram.
PREDICTION_BOUNDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: Buckets of the per-feature input histogram (one metric for all features).
FEATURE_BOUNDS = (1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 18.0, 24.0, 36.0, 48.0, 60.0, 80.0, 100.0, 120.0)

Customer = dict[str, float]


def customer(rng: random.Random, shifted: bool = False) -> Customer:
    """Return one customer's features drawn from the population (or the shifted one)."""
    if shifted:
        tenure = min(72.0, rng.expovariate(1 / 11.0) + 1)
        charges = min(130.0, max(18.0, rng.gauss(76.0, 20.0)))
    else:
        tenure = min(72.0, rng.expovariate(1 / 22.0) + 1)
        charges = min(130.0, max(18.0, rng.gauss(65.0, 22.0)))
    calls = float(min(12, _poisson(rng, 1.3)))
    usage = min(60.0, max(0.5, rng.gauss(15.0, 7.0)))
    return {
        "tenure_months": round(tenure, 1),
        "monthly_charges": round(charges, 2),
        "support_calls": calls,
        "data_usage_gb": round(usage, 1),
    }


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def churn_probability(c: Mapping[str, float]) -> float:
    """Return the true probability that customer ``c`` leaves (the hidden ground truth)."""
    z = (
        -0.9
        - 0.07 * (c["tenure_months"] - 20)
        + 0.035 * (c["monthly_charges"] - 65)
        + 0.55 * (c["support_calls"] - 1.3)
        - 0.05 * (c["data_usage_gb"] - 15)
    )
    return sigmoid(z)


def sigmoid(z: float) -> float:
    """Return the logistic function of ``z`` without overflowing."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def dataset(rng: random.Random, n: int) -> list[tuple[Customer, int]]:
    """Return ``n`` labelled customers."""
    rows = []
    for _ in range(n):
        c = customer(rng)
        rows.append((c, 1 if rng.random() < churn_probability(c) else 0))
    return rows


@dataclass(frozen=True)
class Scaler:
    """Per-feature standardisation: ``(x - mean) / std``."""

    mean: dict[str, float]
    std: dict[str, float]

    def to_json(self) -> dict[str, dict[str, float]]:
        """Return the ``model/scaler.json`` content."""
        return {"mean": dict(self.mean), "std": dict(self.std)}


def fit_scaler(rows: Iterable[Customer], features: Sequence[str] = FEATURES) -> Scaler:
    """Return the scaler fitted on ``rows`` (rounded so the committed file stays readable)."""
    data = list(rows)
    mean, std = {}, {}
    for f in features:
        values = [r[f] for r in data]
        m = sum(values) / len(values)
        v = sum((x - m) ** 2 for x in values) / len(values)
        mean[f] = round(m, 3)
        std[f] = round(math.sqrt(v) or 1.0, 3)
    return Scaler(mean, std)


@dataclass(frozen=True)
class Weights:
    """A logistic model: ``sigmoid(bias + sum(w[f] * scaled x[f]))``."""

    bias: float
    weights: dict[str, float]

    def to_json(self) -> dict[str, object]:
        """Return the ``model/weights.json`` content."""
        return {"bias": self.bias, "weights": dict(self.weights)}


def predict(c: Mapping[str, float], w: Weights, s: Scaler) -> float:
    """Return the churn score of ``c`` (what the repository's model code computes)."""
    z = w.bias
    for f, wf in w.weights.items():
        z += wf * (c[f] - s.mean[f]) / s.std[f]
    return sigmoid(z)


def train(
    rows: Sequence[tuple[Customer, int]],
    features: Sequence[str],
    scaler: Scaler,
    *,
    l2: float = 1.0,
    iterations: int = 8,
    tolerance: float = 1e-6,
) -> Weights:
    """Return logistic-regression weights fitted by Newton's method with an L2 penalty.

    Deterministic and fast: at most ``iterations`` steps on a few features,
    stopping after the first step that moves no weight by ``tolerance`` or more
    (Newton converges quadratically, so the weights, rounded to 4 decimals,
    no longer change).
    """
    d = len(features) + 1
    n = len(rows)
    # Column-wise, so the sums over the rows run in C: the scaled features (a column of
    # ones for the bias first) and the products of every pair of them.
    cols = [[1.0] * n] + [
        [(c[f] - scaler.mean[f]) / scaler.std[f] for c, _ in rows] for f in features
    ]
    pairs = {(i, j): list(map(mul, cols[i], cols[j])) for i in range(d) for j in range(i, d)}
    ys = [float(y) for _, y in rows]
    beta = [0.0] * d
    for _ in range(iterations):
        z = [beta[0]] * n
        for b, col in zip(beta[1:], cols[1:], strict=True):
            z = list(map(add, z, map(b.__mul__, col)))
        ps = list(map(sigmoid, z))
        residuals = list(map(sub, ps, ys))
        weights = [p * (1 - p) for p in ps]
        grad = [sum(map(mul, residuals, col)) for col in cols]
        hess = [[0.0] * d for _ in range(d)]
        for (i, j), products in pairs.items():
            hess[i][j] = hess[j][i] = sum(map(mul, weights, products))
        for i in range(1, d):
            grad[i] += l2 * beta[i]
            hess[i][i] += l2
        step = _solve(hess, grad)
        beta = [b - s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < tolerance:
            break
    return Weights(
        round(beta[0], 4), {f: round(b, 4) for f, b in zip(features, beta[1:], strict=True)}
    )


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Solve ``a x = b`` by Gaussian elimination with partial pivoting."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            factor = m[r][col] / m[col][col]
            for k in range(col, n + 1):
                m[r][k] -= factor * m[col][k]
    x = [0.0] * n
    for i in range(n - 1, -1, -1):
        x[i] = (m[i][n] - sum(m[i][k] * x[k] for k in range(i + 1, n))) / m[i][i]
    return x


def bin_counts(values: Iterable[float], bounds: Sequence[float]) -> list[int]:
    """Return per-bin counts of ``values`` for ascending ``le`` ``bounds`` plus a final +Inf bin.

    A value counts in the first bin whose bound is at least the value (a
    binary search); a value above every bound, or NaN, in the +Inf bin.
    """
    counts = [0] * (len(bounds) + 1)
    beyond = len(bounds)
    for v in values:
        counts[bisect_left(bounds, v) if v == v else beyond] += 1
    return counts


def reference_histograms(
    rows: Sequence[Customer], w: Weights, s: Scaler
) -> dict[str, dict[str, object]]:
    """Return the ``reference/histograms.json`` content for model ``w`` on training ``rows``.

    The layout is the one :mod:`core.metrics.reference` reads: per-bin counts,
    one per bound, the last bound ``"+Inf"``.
    """

    def hist(values: Iterable[float], bounds: Sequence[float]) -> dict[str, object]:
        return {"bounds": [*bounds, "+Inf"], "counts": bin_counts(values, bounds)}

    return {
        "prediction": hist((predict(c, w, s) for c in rows), PREDICTION_BOUNDS),
        "features": {f: hist((c[f] for c in rows), FEATURE_BOUNDS) for f in FEATURES},
    }


def metrics(rows: Sequence[tuple[Customer, int]], scores: Sequence[float]) -> dict[str, float]:
    """Return accuracy (threshold 0.5), ROC AUC and log loss of ``scores`` on ``rows``."""
    labels = [y for _, y in rows]
    n = len(labels)
    accuracy = sum((p >= 0.5) == (y == 1) for p, y in zip(scores, labels, strict=True)) / n
    eps = 1e-12
    logloss = -sum(
        y * math.log(max(p, eps)) + (1 - y) * math.log(max(1 - p, eps))
        for p, y in zip(scores, labels, strict=True)
    )
    pos = [p for p, y in zip(scores, labels, strict=True) if y == 1]
    neg = [p for p, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    auc = wins / (len(pos) * len(neg)) if pos and neg else 0.5
    return {"accuracy": accuracy, "auc": auc, "logloss": logloss / n}
