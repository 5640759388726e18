"""One metrics factory, one drift scorer: the console, the guard and the CLI agree.

Real pieces only: a git repository holding the training reference, a local
target running a commit of it, and a live exporter over HTTP that refuses
requests without the configured bearer token. Every scrape of the exporter
sees exactly one more batch of traffic drawn from the shifted distribution,
so any window of scrapes has the same proportions and the same score.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.config import parse
from core.domain import Artifact, DriftBand
from core.errors import BackendUnavailable
from core.metrics import reference
from core.metrics.scrape import ScrapeSource
from core.services.views import build_view
from core.services.workspace import Workspace
from core.targets.local import free_port
from tests.support.exporter import AFTER, BEFORE, Exporter, training_histogram
from tests.support.repos import BASE_TIME, commit_files, init_repo

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token"
PER_SCRAPE = 500  # requests per scrape: one scrape interval is enough for min_samples
HOUR = timedelta(hours=1)


@dataclass
class Setup:
    config: Path
    state: Path
    exporter: Exporter


def write_config(tmp_path: Path, exporter: Exporter, token: str, *, target: bool) -> Path:
    """A model whose training reference is in its repository, scraped behind a token."""
    repo = init_repo(tmp_path / "repo")
    ref = reference.Reference(training_histogram(BEFORE))
    commit_files(repo, {"reference.json": reference.dumps(ref)}, "training", when=BASE_TIME)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    local = f"""
  [[model.target]]
  name = "local"
  kind = "local"
  command = "{{python}} -m http.server {{port}} --bind 127.0.0.1"
  port = {free_port()}
  health_path = "/"
"""
    path = tmp_path / "mrc.toml"
    path.write_text(
        f"""
[[model]]
name = "churn"
repo = "{repo}"
{local if target else ""}
  [model.metrics]
  source = "scrape"
  url = "{exporter.url}"
  token_file = "{token_file}"
  refresh = "0.2s"
  timeout = "2s"
  prediction_histogram = "model_prediction_score"

  [model.drift]
  reference = "training"
  reference_path = "reference.json"
  window = "1h"
  min_samples = 200
"""
    )
    return path


def workspace(setup: Setup) -> Workspace:
    config = parse(setup.config.read_text(), source=setup.config)
    return Workspace(config, state_dir=setup.state)


def wait_for_scrapes(source: ScrapeSource, n: int) -> None:
    deadline = time.monotonic() + 20
    while len(source) < n:
        assert time.monotonic() < deadline, f"only {len(source)} scrapes: {source.last_error}"
        time.sleep(0.05)


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    with Exporter(token=TOKEN, per_scrape=PER_SCRAPE) as e:
        e.shift(AFTER)
        yield e


def test_scrape_source_behind_a_bearer_token_through_the_console_path(
    exporter: Exporter, tmp_path: Path
) -> None:
    """The console's Workspace sends the configured token to a scrape source, and the Drift
    screen's view reads through it."""
    setup = Setup(write_config(tmp_path, exporter, TOKEN, target=False), tmp_path, exporter)
    ws = workspace(setup)
    try:
        start = datetime.now(UTC)
        source = ws.metrics("churn")
        assert isinstance(source, ScrapeSource)
        source.scrape_once()  # answered 401 when the token was dropped
        assert exporter.refused == 0

        view = build_view(ws, "churn", start, datetime.now(UTC), width=40)
        assert not view.stale
        wait_for_scrapes(source, 10)  # scrapes 0.2 s apart: windows end every second
        view = build_view(ws, "churn", start, datetime.now(UTC), width=40)
        assert all(q.points for q in view.quantiles)  # histograms read through the token
        assert "no target runs a known commit" in view.current.reason
        assert exporter.refused == 0
    finally:
        ws.close()


def test_a_wrong_token_is_refused_and_named(exporter: Exporter, tmp_path: Path) -> None:
    setup = Setup(write_config(tmp_path, exporter, "wrong", target=False), tmp_path, exporter)
    ws = workspace(setup)
    try:
        source = ws.metrics("churn")
        assert source is not None
        with pytest.raises(BackendUnavailable, match="401"):
            source.refresh()
        assert exporter.refused == 1
    finally:
        ws.close()


def test_guard_drift_screen_and_cli_report_the_same_score_against_training(
    exporter: Exporter, tmp_path: Path
) -> None:
    """``reference = "training"``: the guard, the Drift screen and ``mrc status --json``
    judge the live window against the training histograms at the deployed commit."""
    setup = Setup(
        write_config(tmp_path, exporter, TOKEN, target=True), tmp_path / "state", exporter
    )
    ws = workspace(setup)
    try:
        sha = ws.resolve_commit("churn", "HEAD")
        events = list(ws.run_rollout(ws.target("churn", "local"), Artifact(commit=sha)))
        assert ws.target("churn", "local").status().commit == sha, events[-1:]

        # The guard first: it gathers its own reference (no screen has been opened).
        source = ws.metrics("churn")
        assert isinstance(source, ScrapeSource)
        guard = ws.guard("churn")  # starts the scraper
        wait_for_scrapes(source, 3)
        since = datetime.now(UTC) - HOUR
        value, note = guard.evaluate("drift", since)
        assert value is not None, note
        assert note == DriftBand.ALERT.value

        probe = ws.drift_probe("churn")
        assert probe is not None
        direct = probe.score(since, datetime.now(UTC))
        assert direct.band is DriftBand.ALERT and direct.value == pytest.approx(value, rel=1e-9)

        now = datetime.now(UTC)
        view = build_view(ws, "churn", now - HOUR, now, width=40)
        assert view.reference == "training histograms"
        assert view.current.band is DriftBand.ALERT
        assert view.current.value == pytest.approx(value, rel=1e-9)

        env = {
            **os.environ,
            "MRC_CONFIG": str(setup.config),
            "MRC_STATE_DIR": str(setup.state),
            "PYTHONPATH": str(ROOT),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "tui.cli", "status", "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    finally:
        ws.close()
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (row,) = doc["drift"]
    assert row["model"] == "churn"
    assert row["method"] == "psi"
    assert row["band"] == DriftBand.ALERT.value
    assert row["reference"] == "training histograms"
    assert row["value"] == pytest.approx(value, rel=1e-9)
    assert exporter.refused == 0
