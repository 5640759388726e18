"""Retrain the churn model on recent customers: new weights and a new drift reference.

    python train.py --inputs PATH [--min-rows N]

``PATH`` holds recent requests and their observed outcomes, one JSON object
a line: ``{"t": unix seconds, "features": {...}, "churned": 0 or 1}``. The
rows inside the window ``$MRC_RETRAIN_WINDOW_START`` ..
``$MRC_RETRAIN_WINDOW_END`` (RFC 3339; every row when unset) are used.

The model keeps its features and its input preprocessing (``model/``); only
its weights are refitted. Writes, in place:

* ``model/weights.json``: logistic regression fitted by Newton's method;
* ``reference/histograms.json``: prediction and input distributions of the
  rows it was trained on (the reference drift is measured against);

and the training metrics to ``$MRC_RETRAIN_OUTPUT/metrics.json`` (when set).
Exits 1 when the window holds too few usable rows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from model import FEATURES, load
from model import HERE as MODEL_DIR
from model.preprocess import load_scaler, scale

ROOT = Path(__file__).resolve().parent
#: The server's histogram buckets (server.py), so the reference matches what it exports.
PREDICTION_BOUNDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
FEATURE_BOUNDS = (1, 2, 3, 5, 8, 12, 18, 24, 36, 48, 60, 80, 100, 120)
L2 = 0.5
ITERATIONS = 8


def window() -> tuple[float, float]:
    """Return the data window (unix seconds) from the environment; open ends are infinite."""

    def moment(name: str, default: float) -> float:
        value = os.environ.get(name, "")
        if not value:
            return default
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

    return moment("MRC_RETRAIN_WINDOW_START", -math.inf), moment("MRC_RETRAIN_WINDOW_END", math.inf)


def read_rows(path: Path, features: Sequence[str], start: float, end: float) -> list[tuple]:
    """Return (features, label) of the usable rows of ``path`` inside [start, end]."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            if not start <= float(record["t"]) <= end:
                continue
            values = {f: float(record["features"][f]) for f in features}
            rows.append((values, 1 if record["churned"] else 0))
        except (ValueError, KeyError, TypeError):
            continue  # a torn or foreign line
    return rows


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def fit(xs: list[list[float]], ys: list[int]) -> list[float]:
    """Return logistic-regression coefficients (bias first), L2-penalised, by Newton's method."""
    d = len(xs[0])
    beta = [0.0] * d
    for iteration in range(ITERATIONS):
        grad = [0.0] * d
        hess = [[0.0] * d for _ in range(d)]
        loss = 0.0
        for x, y in zip(xs, ys, strict=True):
            p = sigmoid(sum(b * xi for b, xi in zip(beta, x, strict=True)))
            loss -= math.log(max(p if y else 1 - p, 1e-12))
            for i in range(d):
                grad[i] += (p - y) * x[i]
                for j in range(d):
                    hess[i][j] += p * (1 - p) * x[i] * x[j]
        for i in range(1, d):
            grad[i] += L2 * beta[i]
            hess[i][i] += L2
        beta = [b - s for b, s in zip(beta, solve(hess, grad), strict=True)]
        print(f"iteration {iteration + 1}: log loss {loss / len(xs):.4f}", flush=True)
    return beta


def solve(a: list[list[float]], b: list[float]) -> list[float]:
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


def histogram(values: Iterable[float], bounds: Sequence[float]) -> dict[str, object]:
    """Return per-bin counts of ``values`` for ``le`` bounds plus +Inf."""
    counts = [0] * (len(bounds) + 1)
    for v in values:
        counts[next((i for i, b in enumerate(bounds) if v <= b), len(bounds))] += 1
    return {"bounds": [*bounds, "+Inf"], "counts": counts}


def quality(scores: Sequence[float], labels: Sequence[int]) -> dict[str, float]:
    """Return accuracy, ROC AUC and log loss of ``scores``."""
    n = len(labels)
    accuracy = sum((p >= 0.5) == (y == 1) for p, y in zip(scores, labels, strict=True)) / n
    pos = [p for p, y in zip(scores, labels, strict=True) if y == 1]
    neg = [p for p, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    auc = wins / (len(pos) * len(neg)) if pos and neg else 0.5
    logloss = -sum(
        math.log(max(p if y else 1 - p, 1e-12)) for p, y in zip(scores, labels, strict=True)
    )
    return {"accuracy": round(accuracy, 4), "auc": round(auc, 4), "logloss": round(logloss / n, 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Retrain the churn model on recent customers.")
    parser.add_argument("--inputs", type=Path, required=True, help="recent requests (JSON lines)")
    parser.add_argument("--min-rows", type=int, default=200, help="fewest rows worth training on")
    args = parser.parse_args(argv)
    current = json.loads((MODEL_DIR / "weights.json").read_text())
    features = list(current["weights"])
    start, end = window()
    try:
        rows = read_rows(args.inputs, FEATURES, start, end)
    except OSError as exc:
        print(f"cannot read the recent inputs: {exc}", file=sys.stderr)
        return 1
    print(f"{len(rows)} customers in the window from {args.inputs}", flush=True)
    if len(rows) < args.min_rows:
        print(
            f"too few customers to retrain on ({len(rows)} < {args.min_rows}): "
            "let the traffic run longer",
            file=sys.stderr,
        )
        return 1
    scaler = load_scaler(MODEL_DIR)
    xs = [[1.0] + [scale(values, scaler)[f] for f in features] for values, _ in rows]
    ys = [label for _, label in rows]
    beta = fit(xs, ys)
    weights = {
        "bias": round(beta[0], 4),
        "weights": {f: round(b, 4) for f, b in zip(features, beta[1:], strict=True)},
    }
    (MODEL_DIR / "weights.json").write_text(json.dumps(weights, indent=2) + "\n")
    model = load()
    scores = [model.predict(values) for values, _ in rows]
    reference = {
        "prediction": histogram(scores, PREDICTION_BOUNDS),
        "features": {
            f: histogram((values[f] for values, _ in rows), FEATURE_BOUNDS) for f in FEATURES
        },
    }
    (ROOT / "reference" / "histograms.json").write_text(json.dumps(reference, indent=2) + "\n")
    metrics = {**quality(scores, ys), "samples": float(len(rows))}
    print("trained: " + ", ".join(f"{k} {v:g}" for k, v in metrics.items()), flush=True)
    output = os.environ.get("MRC_RETRAIN_OUTPUT")
    if output:
        Path(output, "metrics.json").write_text(json.dumps(metrics) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
