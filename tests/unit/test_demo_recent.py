"""The demo traffic's record of recent requests: bounded, whole lines, replaced atomically."""

from __future__ import annotations

import json
import random
from pathlib import Path

from core.demo import churn
from core.demo.traffic import Recent


def test_recent_keeps_the_last_requests_with_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "traffic-recent.jsonl"
    recent = Recent(path, keep=5, seed=3)
    rng = random.Random(1)
    sent = [churn.customer(rng) for _ in range(12)]
    for i, features in enumerate(sent):
        recent.add(1000.0 + i, features)
    assert not path.exists()  # written on flush only
    recent.flush()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["t"] for r in rows] == [1007.0, 1008.0, 1009.0, 1010.0, 1011.0]
    assert [r["features"] for r in rows] == sent[-5:]
    assert {r["churned"] for r in rows} <= {0, 1}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_a_flush_replaces_the_file_and_an_unwritable_one_is_retried(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "recent.jsonl"
    recent = Recent(path, keep=3)
    recent.add(1.0, churn.customer(random.Random(2)))
    recent.flush()  # the directory does not exist: kept for the next flush
    assert not path.exists() and recent.dirty
    path.parent.mkdir()
    recent.flush()
    assert len(path.read_text().splitlines()) == 1 and not recent.dirty
