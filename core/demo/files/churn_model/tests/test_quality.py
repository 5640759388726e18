"""Quality gate: the model must be good enough on the held-out customers.

The metrics are written to ``$MRC_METRICS_FILE`` (when set) so the release
console records them with the test run.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import model
import pytest

ROOT = Path(__file__).resolve().parents[1]
MIN_ACCURACY = 0.72
MIN_AUC = 0.75


@pytest.fixture(scope="module")
def scored() -> list[tuple[float, int]]:
    m = model.load()
    with open(ROOT / "data" / "holdout.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        (m.predict({f: float(row[f]) for f in model.FEATURES}), int(row["churned"])) for row in rows
    ]


@pytest.fixture(scope="module")
def quality(scored: list[tuple[float, int]]) -> dict[str, float]:
    n = len(scored)
    accuracy = sum((p >= 0.5) == (y == 1) for p, y in scored) / n
    logloss = -sum(y * math.log(p) + (1 - y) * math.log(1 - p) for p, y in scored) / n
    pos = [p for p, y in scored if y == 1]
    neg = [p for p, y in scored if y == 0]
    auc = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))
    result = {"accuracy": round(accuracy, 4), "auc": round(auc, 4), "logloss": round(logloss, 4)}
    target = os.environ.get("MRC_METRICS_FILE")
    if target:
        Path(target).write_text(json.dumps(result))
    return result


def test_accuracy_meets_the_release_bar(quality: dict[str, float]) -> None:
    assert quality["accuracy"] >= MIN_ACCURACY, f"accuracy {quality['accuracy']} < {MIN_ACCURACY}"


def test_ranking_quality_meets_the_release_bar(quality: dict[str, float]) -> None:
    assert quality["auc"] >= MIN_AUC, f"AUC {quality['auc']} < {MIN_AUC}"


def test_scores_are_probabilities(scored: list[tuple[float, int]]) -> None:
    assert all(0.0 < p < 1.0 for p, _ in scored)


def test_missing_feature_is_rejected() -> None:
    with pytest.raises(model.InvalidInput):
        model.load().predict({"tenure_months": 3})
