"""The demo's logistic regression: the weights it returns are the penalised optimum."""

from __future__ import annotations

import random

import pytest

from core.demo import churn


def penalised_gradient(
    rows: list[tuple[churn.Customer, int]],
    weights: churn.Weights,
    scaler: churn.Scaler,
    l2: float,
) -> list[float]:
    """Return the gradient of the L2-penalised log loss at ``weights``, row by row."""
    features = list(weights.weights)
    grad = [0.0] * (len(features) + 1)
    for customer, label in rows:
        residual = churn.predict(customer, weights, scaler) - label
        x = [1.0] + [(customer[f] - scaler.mean[f]) / scaler.std[f] for f in features]
        for i, xi in enumerate(x):
            grad[i] += residual * xi
    for i, f in enumerate(features, start=1):
        grad[i] += l2 * weights.weights[f]
    return grad


@pytest.mark.parametrize(
    ("features", "l2"),
    [(churn.FEATURES[:2], 1.0), (churn.FEATURES, 0.5), (churn.FEATURES[1:], 0.5)],
)
def test_train_returns_the_weights_where_the_penalised_loss_is_flat(
    features: tuple[str, ...], l2: float
) -> None:
    rng = random.Random(3)
    rows = churn.dataset(rng, 800)
    scaler = churn.fit_scaler([c for c, _ in rows])
    weights = churn.train(rows, features, scaler, l2=l2)
    assert list(weights.weights) == list(features)
    # Rounding to 4 decimals moves each weight by at most 5e-5; over 800 rows the
    # gradient is then a few hundredths at most, where an unfitted model's is tens.
    assert max(abs(g) for g in penalised_gradient(rows, weights, scaler, l2)) < 0.5
    unfitted = churn.Weights(0.0, dict.fromkeys(features, 0.0))
    assert max(abs(g) for g in penalised_gradient(rows, unfitted, scaler, l2)) > 10


def test_one_newton_step_is_not_the_optimum() -> None:
    rng = random.Random(3)
    rows = churn.dataset(rng, 800)
    scaler = churn.fit_scaler([c for c, _ in rows])
    once = churn.train(rows, churn.FEATURES, scaler, iterations=1)
    assert max(abs(g) for g in penalised_gradient(rows, once, scaler, 1.0)) > 0.5


def test_bin_counts_put_each_value_in_the_first_bin_whose_bound_holds_it() -> None:
    bounds = churn.FEATURE_BOUNDS
    rng = random.Random(3)
    values = [rng.uniform(-5, bounds[-1] + 20) for _ in range(2000)]
    values += [float(b) for b in bounds]  # exactly on a bound: that bin (``le``)
    values += [float("nan"), float("inf"), float("-inf")]
    expected = [0] * (len(bounds) + 1)
    for v in values:
        index = next((i for i, b in enumerate(bounds) if v <= b), len(bounds))
        expected[index] += 1
    assert churn.bin_counts(values, bounds) == expected
    assert sum(expected) == len(values)
