"""``mrc watch`` as the operator runs it: a subprocess serving /metrics.

Real pieces only: a git repository holding the training reference, a local
target running a commit of it, and a live exporter over HTTP. Every scrape of
the exporter sees exactly one more batch of traffic drawn from the shifted
distribution, so any window has the same proportions: the score ``mrc watch``
exports must equal the one ``mrc status --json`` prints. Then the exporter
stops: ``mrc watch`` keeps serving, says the source is down and drops the
scores. SIGTERM stops it with exit code 0, and it never imported Textual.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.config import parse
from core.domain import Artifact
from core.metrics import reference
from core.services.workspace import Workspace
from core.targets.local import free_port
from tests.support.exporter import AFTER, BEFORE, Exporter, training_histogram
from tests.support.repos import BASE_TIME, commit_files, init_repo

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "watch-token"
PER_SCRAPE = 500
FEATURES = ("age", "income")

#: Runs ``mrc`` like the console script, then says on stderr whether Textual was imported.
_MRC_REPORTING_TEXTUAL = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('textual imported: %s' % ('textual' in sys.modules),"
    " file=sys.stderr, flush=True))\n"
    "from tui.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)

Sample = tuple[str, dict[str, str], float]


def write_config(tmp_path: Path, exporter: Exporter) -> Path:
    """A model with a local target, scraped behind a token; training reference in the repo."""
    repo = init_repo(tmp_path / "repo")
    ref = reference.Reference(
        training_histogram(BEFORE), {name: training_histogram(BEFORE) for name in FEATURES}
    )
    commit_files(repo, {"reference.json": reference.dumps(ref)}, "training", when=BASE_TIME)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    features = ", ".join(f"'model_feature_value{{feature=\"{f}\"}}'" for f in FEATURES)
    path = tmp_path / "mrc.toml"
    path.write_text(
        f"""
[[model]]
name = "churn"
repo = "{repo}"

  [[model.target]]
  name = "local"
  kind = "local"
  command = "{{python}} -m http.server {{port}} --bind 127.0.0.1"
  port = {free_port()}
  health_path = "/"

  [model.metrics]
  source = "scrape"
  url = "{exporter.url}"
  token_file = "{token_file}"
  refresh = "0.2s"
  timeout = "2s"
  prediction_histogram = "model_prediction_score"
  feature_histograms = [{features}]

  [model.drift]
  reference = "training"
  reference_path = "reference.json"
  window = "1h"
  min_samples = 200

  [model.guard]
  max_drift = 0.2
"""
    )
    return path


def deploy(config: Path, state: Path) -> tuple[Workspace, str]:
    """Roll the repository's HEAD out to the local target; return the open workspace and
    the commit (close the workspace to stop the target)."""
    ws = Workspace(parse(config.read_text(), source=config), state_dir=state)
    sha = ws.resolve_commit("churn", "HEAD")
    events = list(ws.run_rollout(ws.target("churn", "local"), Artifact(commit=sha)))
    assert ws.target("churn", "local").status().commit == sha, events[-1:]
    return ws, sha


def env_for(config: Path, state: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MRC_CONFIG": str(config),
        "MRC_STATE_DIR": str(state),
        "PYTHONPATH": str(ROOT),
    }


class Watch:
    """A running ``mrc watch`` subprocess; its stderr lines are collected as they come."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MRC_REPORTING_TEXTUAL, "watch", "--listen",
             "127.0.0.1:0", "--interval", "0.3s"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_for_url()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """Return the first stderr line matching ``pattern`` (fail with all lines seen)."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if m := re.search(pattern, line):
                return m
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no line matching {pattern!r}; stderr: {self.lines}"
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            self.lines.append(line)
            if m := re.search(pattern, line):
                return m

    def _wait_for_url(self) -> str:
        return self.wait_line(r"serving (http://\S+/metrics)").group(1)

    def samples(self) -> list[Sample]:
        with urllib.request.urlopen(self.url, timeout=10) as r:
            text = r.read().decode()
        return [
            (s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]

    def wait_for(self, what: str, found: Callable[[list[Sample]], bool]) -> list[Sample]:
        """Poll /metrics until ``found(samples)``; fail with the last samples seen."""
        deadline = time.monotonic() + 60
        samples: list[Sample] = []
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"mrc watch exited: {self.lines}"
            samples = self.samples()
            if found(samples):
                return samples
            time.sleep(0.2)
        pytest.fail(f"/metrics never showed {what}: {samples}\nstderr: {self.lines}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.wait_line(r"textual imported: ", timeout=10)
        return code


def find(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in samples if s[0] == name and all(s[1].get(k) == v for k, v in labels.items())]


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    with Exporter(features=FEATURES, token=TOKEN, per_scrape=PER_SCRAPE) as e:
        e.shift(AFTER, features={"age": AFTER})
        yield e


def test_watch_exports_the_scores_status_reports_and_survives_a_lost_source(
    exporter: Exporter, tmp_path: Path
) -> None:
    config, state = write_config(tmp_path, exporter), tmp_path / "state"
    ws, sha = deploy(config, state)
    watch: Watch | None = None
    try:
        live = ws.target("churn", "local").status()

        env = env_for(config, state)
        watch = Watch(env)

        def scored(samples: list[Sample]) -> bool:
            return len(find(samples, "mrc_drift_score", model="churn")) == 1 + len(FEATURES)

        samples = watch.wait_for("a prediction and a score per feature", scored)
        (prediction,) = find(samples, "mrc_drift_score", model="churn", kind="prediction")
        assert prediction[1] == {
            "model": "churn", "target": "local", "kind": "prediction", "feature": ""
        }  # fmt: skip
        age = find(samples, "mrc_drift_score", kind="feature", feature="age")[0][2]
        income = find(samples, "mrc_drift_score", kind="feature", feature="income")[0][2]
        assert age == pytest.approx(prediction[2], rel=1e-9)  # the same shift
        assert income == pytest.approx(0.0, abs=1e-9)  # not shifted
        (prediction_samples,) = find(samples, "mrc_drift_samples", kind="prediction")
        assert prediction_samples[2] >= 200
        assert find(samples, "mrc_source_up", model="churn")[0][2] == 1.0
        (info,) = find(samples, "mrc_release_info", model="churn", target="local")
        assert info[1]["commit"] == sha and info[1]["revision"] == str(live.revision)
        (guard,) = find(samples, "mrc_guard_breached", model="churn", check="drift")
        assert guard[2] == 1.0
        assert find(samples, "mrc_last_evaluation_timestamp_seconds")

        status = subprocess.run(
            [sys.executable, "-m", "tui.cli", "status", "--json"],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        (row,) = json.loads(status.stdout)["drift"]
        assert row["value"] == pytest.approx(prediction[2], rel=1e-9)

        exporter.stop()
        watch.wait_line(r"churn: source down")
        samples = watch.wait_for(
            "mrc_source_up 0",
            lambda s: [x[2] for x in find(s, "mrc_source_up", model="churn")] == [0.0],
        )
        assert not find(samples, "mrc_drift_score")
        assert not find(samples, "mrc_drift_samples")
        assert not find(samples, "mrc_guard_value")
        assert find(samples, "mrc_release_info", model="churn", commit=sha)
        code = watch.stop()
        assert code == 0, watch.lines
        assert "textual imported: False" in watch.lines
        assert "mrc watch: stopped" in watch.lines
    finally:
        if watch is not None and watch.proc.poll() is None:
            watch.proc.kill()
            watch.proc.wait(timeout=10)
        ws.close()


def test_watch_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    """A malformed ``--listen`` is a usage error (exit 2) naming the option."""
    proc = subprocess.run(
        [sys.executable, "-m", "tui.cli", "watch", "--listen", "nowhere"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MRC_CONFIG": str(tmp_path / "none.toml")},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--listen" in proc.stderr
