"""Training reference histograms shipped in a model repository.

The file (JSON, path configured by ``drift.reference_path``) holds the
distributions the model saw in training::

    {
      "prediction": {"bounds": [0.1, 0.2, ..., 1.0], "counts": [12, 40, ..., 3]},
      "features": {
        "age": {"bounds": [18, 30, 45, 65, "+Inf"], "counts": [5, 40, 30, 20, 5]}
      }
    }

``bounds`` are the bucket upper bounds (the ``le`` of the live histogram),
increasing; the last may be ``"+Inf"`` (JSON has no infinity). ``counts``
are per-bin (not cumulative) counts, one per bound. When ``"+Inf"`` is
missing, an empty ``+Inf`` bin is added so the reference lines up with the
live histogram's ``+Inf`` bucket. ``prediction`` is required, ``features``
optional.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.domain import Histogram
from core.errors import MrcError


class InvalidReference(MrcError):
    """A training reference file is missing, not JSON, or not in the expected shape.

    The message names the file and the key.
    """


@dataclass(frozen=True, slots=True)
class Reference:
    """The training distributions of a model: its predictions and its input features."""

    prediction: Histogram
    features: dict[str, Histogram] = field(default_factory=dict)


def _bound(value: Any) -> float:
    if isinstance(value, str) and value.strip() in ("+Inf", "Inf", "inf", "+inf"):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f'bound {value!r} is not a number or "+Inf"')
    return float(value)


def histogram_from_json(data: Any, where: str) -> Histogram:
    """Return the Histogram of one ``{"bounds": [...], "counts": [...]}`` object.

    ``where`` names the file and key for messages. Raises InvalidReference.
    """
    if not isinstance(data, dict):
        raise InvalidReference(f"{where}: expected an object with bounds and counts")
    for key in ("bounds", "counts"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise InvalidReference(f"{where}.{key}: expected a non-empty list")
    try:
        bounds = [_bound(b) for b in data["bounds"]]
    except ValueError as exc:
        raise InvalidReference(f"{where}.bounds: {exc}") from None
    counts = data["counts"]
    if len(counts) != len(bounds):
        raise InvalidReference(
            f"{where}: {len(bounds)} bounds but {len(counts)} counts (one count per bound)"
        )
    for i, c in enumerate(counts):
        if isinstance(c, bool) or not isinstance(c, int | float) or c < 0 or math.isnan(c):
            raise InvalidReference(f"{where}.counts[{i}]: {c!r} is not a count (a number >= 0)")
    if any(b >= a for a, b in zip(bounds[1:], bounds, strict=False)):
        raise InvalidReference(f"{where}.bounds: must be strictly increasing")
    if not math.isinf(bounds[-1]):
        bounds.append(math.inf)
        counts = [*counts, 0]
    cumulative, running = [], 0.0
    for c in counts:
        running += float(c)
        cumulative.append(running)
    return Histogram(tuple(bounds), tuple(cumulative))


def histogram_to_json(h: Histogram) -> dict[str, list[Any]]:
    """Return the JSON object of ``h`` (per-bin counts, ``"+Inf"`` as a string)."""
    counts, previous = [], 0.0
    for c in h.cumulative:
        counts.append(c - previous)
        previous = c
    bounds: list[Any] = ["+Inf" if math.isinf(b) else b for b in h.bounds]
    return {"bounds": bounds, "counts": counts}


def loads(text: str, name: str = "<reference>") -> Reference:
    """Return the Reference in JSON ``text``; ``name`` (the file) prefixes every message.

    Raises InvalidReference naming the file and key of the first problem.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidReference(f"{name}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidReference(f"{name}: expected a JSON object with a prediction key")
    if "prediction" not in data:
        raise InvalidReference(f"{name}: prediction: required key missing")
    prediction = histogram_from_json(data["prediction"], f"{name}: prediction")
    features_data = data.get("features", {})
    if not isinstance(features_data, dict):
        raise InvalidReference(f"{name}: features: expected an object of name -> histogram")
    features = {
        str(k): histogram_from_json(v, f"{name}: features.{k}") for k, v in features_data.items()
    }
    return Reference(prediction, features)


def load(path: str | Path) -> Reference:
    """Return the Reference stored at ``path``. Raises InvalidReference (also when unreadable)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidReference(f"{path}: cannot read: {exc.strerror or exc}") from None
    return loads(text, str(path))


def dumps(reference: Reference) -> str:
    """Return ``reference`` as JSON text that :func:`loads` reads back unchanged."""
    data = {
        "prediction": histogram_to_json(reference.prediction),
        "features": {k: histogram_to_json(v) for k, v in sorted(reference.features.items())},
    }
    return json.dumps(data, indent=2) + "\n"


def dump(reference: Reference, path: str | Path) -> None:
    """Write ``reference`` to ``path`` as JSON."""
    Path(path).write_text(dumps(reference), encoding="utf-8")
