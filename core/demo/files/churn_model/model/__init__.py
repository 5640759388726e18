"""Churn model: a logistic regression on standardised customer features.

``load()`` reads ``weights.json`` and the scaler next to this file;
``Model.predict`` returns the probability that a customer leaves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from model.preprocess import load_scaler, scale

HERE = Path(__file__).resolve().parent

#: Inputs a request must carry.
FEATURES = ("tenure_months", "monthly_charges", "support_calls", "data_usage_gb")


class InvalidInput(ValueError):
    """A request lacks a feature or carries a value that is not a number."""


class Model:
    """Logistic regression: ``sigmoid(bias + sum(weight * scaled feature))``."""

    def __init__(self, bias: float, weights: Mapping[str, float], scaler: dict) -> None:
        self.bias = bias
        self.weights = dict(weights)
        self.scaler = scaler

    def predict(self, features: Mapping[str, object]) -> float:
        """Return the churn probability; raise InvalidInput for a bad request."""
        values = {}
        for name in FEATURES:
            value = features.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"feature {name!r} must be a number, got {value!r}")
            values[name] = float(value)
        scaled = scale(values, self.scaler)
        z = self.bias + sum(w * scaled[name] for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def load(directory: Path = HERE) -> Model:
    """Return the model stored in ``directory``."""
    data = json.loads((directory / "weights.json").read_text())
    return Model(float(data["bias"]), data["weights"], load_scaler(directory))
