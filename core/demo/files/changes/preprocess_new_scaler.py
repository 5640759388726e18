"""Input preprocessing: standardise each feature, then clip outliers.

The scaler was refitted on the customers of the current quarter
(``scaler_2026q2.json``), which reflect today's price plans better.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

SCALER_FILE = "scaler_2026q2.json"
CLIP = 5.0


def load_scaler(directory: Path) -> dict:
    """Return the scaler (``{"mean": {...}, "std": {...}}``) stored in ``directory``."""
    return json.loads((directory / SCALER_FILE).read_text())


def scale(values: Mapping[str, float], scaler: dict) -> dict[str, float]:
    """Return ``(value - mean) / std`` clipped to [-CLIP, CLIP] for every known feature."""
    mean, std = scaler["mean"], scaler["std"]
    return {name: max(-CLIP, min(CLIP, (values[name] - mean[name]) / std[name])) for name in mean}
