"""The sample model's ``train.py``, run as ``[model.retrain]`` runs it, on shifted traffic.

After a data shift the live predictions drift far from v1.2.0's training
reference; retraining on the recent (shifted) requests writes new weights and
a new reference, the repository's quality tests still pass, and the same
traffic scores well below ``warn`` against the new reference.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.config import load_file
from core.demo import Sandbox, build_sandbox, churn
from core.metrics import drift

pytestmark = pytest.mark.integration


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def write_recent(sandbox: Sandbox, customers: list[churn.Customer], start: float) -> None:
    """Write what the traffic generator keeps: requests 50 ms apart, with outcomes."""
    rng = random.Random(5)
    lines = []
    for i, c in enumerate(customers):
        churned = 1 if rng.random() < churn.churn_probability(c) else 0
        lines.append(json.dumps({"t": start + i * 0.05, "features": c, "churned": churned}))
    lines.append('{"t": torn')  # a line cut short is skipped
    sandbox.recent_inputs.write_text("\n".join(lines) + "\n")


def psi_against(reference: dict, customers: list[churn.Customer], tree: Path) -> float:
    weights = json.loads((tree / "model" / "weights.json").read_text())
    scaler = json.loads((tree / "model" / "scaler.json").read_text())
    w = churn.Weights(weights["bias"], weights["weights"])
    s = churn.Scaler(scaler["mean"], scaler["std"])
    current = churn.bin_counts((churn.predict(c, w, s) for c in customers), churn.PREDICTION_BOUNDS)
    ref = reference["prediction"]["counts"]
    return drift.psi(drift.smooth(ref), drift.smooth(current))


def test_retraining_on_shifted_traffic_passes_the_tests_and_removes_the_drift(
    tmp_path: Path,
) -> None:
    sandbox = build_sandbox(tmp_path / "sandbox")
    retrain = load_file(sandbox.config).models[0].retrain
    assert retrain is not None and retrain.executor == "local"
    rng = random.Random(9)
    now = time.time()
    window = [churn.customer(rng, shifted=True) for _ in range(600)]
    write_recent(sandbox, window, now - 30)
    live = [churn.customer(rng, shifted=True) for _ in range(2000)]

    tree = tmp_path / "tree"
    git(sandbox.repo, "worktree", "add", "-q", "--detach", str(tree), sandbox.commits["v3"])
    before = json.loads((tree / "reference" / "histograms.json").read_text())
    assert psi_against(before, live, tree) >= 0.25  # the data shift, against v1.2.0

    output = tmp_path / "out"
    output.mkdir()
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    env = {
        "PATH": os.environ["PATH"],
        "MRC_RETRAIN_OUTPUT": str(output),
        "MRC_RETRAIN_WINDOW_START": datetime.fromtimestamp(now - 31, UTC).strftime(stamp),
        "MRC_RETRAIN_WINDOW_END": datetime.fromtimestamp(now + 1, UTC).strftime(stamp),
    }
    run = subprocess.run(
        retrain.command, shell=True, cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "600 customers in the window" in run.stdout
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["samples"] == 600 and 0.5 < metrics["auc"] <= 1

    changed = git(tree, "status", "--porcelain").splitlines()
    assert sorted(line.split()[-1] for line in changed) == [
        "model/weights.json",
        "reference/histograms.json",
    ]
    after = json.loads((tree / "reference" / "histograms.json").read_text())
    assert psi_against(after, live, tree) < 0.1  # below warn once the retrained commit is live

    config = load_file(sandbox.config).models[0]
    tests = subprocess.run(
        config.test_command, shell=True, cwd=tree, capture_output=True, text=True, timeout=120
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_too_few_recent_requests_fail_with_the_reason(tmp_path: Path) -> None:
    sandbox = build_sandbox(tmp_path / "sandbox")
    retrain = load_file(sandbox.config).models[0].retrain
    assert retrain is not None
    write_recent(sandbox, [churn.customer(random.Random(1)) for _ in range(20)], time.time())
    tree = tmp_path / "tree"
    git(sandbox.repo, "worktree", "add", "-q", "--detach", str(tree), sandbox.commits["v3"])
    run = subprocess.run(
        retrain.command, shell=True, cwd=tree, capture_output=True, text=True, timeout=120,
        env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert run.returncode == 1
    assert "too few customers to retrain on (20 < 200)" in run.stderr
    assert git(tree, "status", "--porcelain") == ""
