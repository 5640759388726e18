"""Input preprocessing: standardise each feature with the training mean and deviation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

SCALER_FILE = "scaler.json"


def load_scaler(directory: Path) -> dict:
    """Return the scaler (``{"mean": {...}, "std": {...}}``) stored in ``directory``."""
    return json.loads((directory / SCALER_FILE).read_text())


def scale(values: Mapping[str, float], scaler: dict) -> dict[str, float]:
    """Return ``(value - mean) / std`` for every feature the scaler knows."""
    mean, std = scaler["mean"], scaler["std"]
    return {name: (values[name] - mean[name]) / std[name] for name in mean}
