"""The demo sandbox: its repository's story, its tests, its server, its traffic and its drift."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core import procs
from core.config import load_file
from core.demo import Sandbox, SandboxError, build_sandbox
from core.demo.churn import FEATURES
from core.domain import Artifact, DriftBand, Histogram, Phase, Series
from core.metrics import drift
from core.metrics.reference import Reference, loads

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    return build_sandbox(tmp_path_factory.mktemp("demo") / "sandbox")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def run_model_tests(sandbox: Sandbox, sha: str, tmp: Path) -> tuple[int, dict[str, float], str]:
    """Run the repository's test command at ``sha`` in a worktree; return (rc, metrics, output)."""
    tree = tmp / f"wt-{sha[:8]}"
    git(sandbox.repo, "worktree", "add", "-q", "--detach", str(tree), sha)
    try:
        command = load_file(sandbox.config).models[0].test_command
        metrics_file = tmp / f"metrics-{sha[:8]}.json"
        env = {**os.environ, "MRC_METRICS_FILE": str(metrics_file)}
        env.pop("PYTEST_ADDOPTS", None)
        result = subprocess.run(
            command, shell=True, cwd=tree, env=env, capture_output=True, text=True, timeout=120
        )
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        return result.returncode, metrics, result.stdout + result.stderr
    finally:
        git(sandbox.repo, "worktree", "remove", "--force", str(tree))


def scrape(url: str) -> dict[str, Histogram]:
    """Return the cumulative histograms on ``url``/metrics: prediction and one per feature."""
    text = httpx.get(url + "/metrics", timeout=5).text
    buckets: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            if sample.name == "model_prediction_score_bucket":
                key = "prediction"
            elif sample.name == "model_feature_value_bucket":
                key = sample.labels["feature"]
            else:
                continue
            buckets.setdefault(key, {})[float(sample.labels["le"])] = sample.value
    return {
        key: Histogram(tuple(sorted(b)), tuple(b[le] for le in sorted(b)))
        for key, b in buckets.items()
    }


def reference_at(sandbox: Sandbox, sha: str) -> Reference:
    return loads(git(sandbox.repo, "show", f"{sha}:reference/histograms.json"), sha)


def send_traffic(sandbox: Sandbox, count: int, *, shifted: bool, seed: int = 11) -> None:
    """Send ``count`` requests with the real traffic generator (fast, bounded)."""
    shift = sandbox.root / ("shift-on" if shifted else "shift-never")
    if shifted:
        shift.touch()
    argv = [sys.executable, "-m", "core.demo.traffic", "--url", sandbox.url, "--rate", "2000"]
    argv += ["--count", str(count), "--seed", str(seed), "--shift-file", str(shift), "--bad", "0"]
    subprocess.run(
        argv,
        cwd=ROOT,
        check=True,
        timeout=60,
    )


def test_history_tells_the_story_with_reproducible_commits(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    log = git(sandbox.repo, "log", "--reverse", "--format=%H %an|%s").splitlines()
    roles = ["v1", "ci", "v2", "docs", "v3", "shift", "failing"]
    assert [line.split()[0] for line in log] == [sandbox.commits[r] for r in roles]
    assert "scaler" in log[5].lower() and "tenure" in log[6].lower()
    assert {git(sandbox.repo, "rev-parse", f"{t}^{{commit}}") for t in sandbox.tags.values()} == {
        sandbox.commits[r] for r in ("v1", "v2", "v3", "shift")
    }
    assert sandbox.good == (sandbox.commits["v1"], sandbox.commits["v2"], sandbox.commits["v3"])
    # The work tree is the last commit's, on main, with nothing to commit.
    assert git(sandbox.repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(sandbox.repo, "rev-parse", "HEAD") == sandbox.failing
    assert git(sandbox.repo, "status", "--porcelain") == ""
    # The shifting release keeps the training reference of the release before it.
    changed = git(sandbox.repo, "show", "--name-only", "--format=", sandbox.shifting).split()
    assert "reference/histograms.json" not in changed and "model/preprocess.py" in changed
    # Same seed and clock, same shas, anywhere; the clock can be pinned for screenshots.
    again = build_sandbox(tmp_path / "again")
    assert again.commits == sandbox.commits
    pinned = build_sandbox(tmp_path / "pinned", fixed_time=datetime(2027, 3, 1, 12, tzinfo=UTC))
    assert git(pinned.repo, "log", "-1", "--format=%cI") == "2027-03-01T11:00:00+00:00"
    assert pinned.commits["v1"] != sandbox.commits["v1"]


def test_config_uses_the_local_target_and_scrapes_its_stable_port(sandbox: Sandbox) -> None:
    model = load_file(sandbox.config).models[0]
    (target,) = model.targets
    assert target.kind == "local" and target.port == sandbox.port
    assert model.repo == sandbox.repo
    assert model.metrics is not None and model.metrics.source == "scrape"
    assert model.metrics.url == f"http://127.0.0.1:{sandbox.port}/metrics"
    assert (model.drift.warn, model.drift.alert, model.drift.reference) == (0.1, 0.25, "training")
    assert model.drift.min_samples <= 20 * model.drift.window / 2


def test_reusing_a_directory_keeps_the_repo_and_refuses_foreign_ones(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    again = build_sandbox(sandbox.root)
    assert again.commits == sandbox.commits and again.repo == sandbox.repo
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(SandboxError):
        build_sandbox(foreign)


def test_model_tests_pass_on_releases_and_fail_on_the_experiment(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    quality = load_file(sandbox.config).models[0].quality
    results = {
        role: run_model_tests(sandbox, sandbox.commits[role], tmp_path)
        for role in ("v3", "shift", "failing")
    }
    for role in ("v3", "shift"):
        rc, metrics, output = results[role]
        assert rc == 0, output
        assert all(metrics[name] >= minimum for name, minimum in quality.items()), metrics
    rc, metrics, output = results["failing"]
    assert rc == 1 and "failed" in output
    assert metrics["accuracy"] < quality["accuracy"]
    assert results["v3"][1]["accuracy"] > metrics["accuracy"]


@pytest.fixture(scope="module")
def served(sandbox: Sandbox) -> Iterator[object]:
    background = sandbox.start_background(history=("v3",), traffic=False)
    yield background
    background.stop()


def test_server_answers_predict_healthz_version_and_metrics(sandbox: Sandbox, served) -> None:
    assert httpx.get(sandbox.url + "/healthz", timeout=5).status_code == 200
    version = httpx.get(sandbox.url + "/version", timeout=5).json()
    assert version["commit"] == sandbox.commits["v3"] and version["version"] == "1.2.0"
    risky = {"tenure_months": 2, "monthly_charges": 110, "support_calls": 5, "data_usage_gb": 3}
    loyal = {"tenure_months": 60, "monthly_charges": 30, "support_calls": 0, "data_usage_gb": 25}
    p_risky = httpx.post(sandbox.url + "/predict", json=risky, timeout=5).json()["score"]
    p_loyal = httpx.post(sandbox.url + "/predict", json={"features": loyal}, timeout=5).json()
    assert 0.5 < p_risky < 1 and 0 < p_loyal["score"] < 0.5
    bad = httpx.post(sandbox.url + "/predict", json={"tenure_months": 1}, timeout=5)
    assert bad.status_code == 400
    text = httpx.get(sandbox.url + "/metrics", timeout=5).text
    for name in ("model_latency_seconds_bucket", "model_requests_total", "model_errors_total"):
        assert name in text
    assert "model_errors_total 1.0" in text
    # The live histograms line up with the committed training reference.
    live = scrape(sandbox.url)
    reference = reference_at(sandbox, sandbox.commits["v3"])
    assert live["prediction"].bounds == reference.prediction.bounds
    assert set(reference.features) == set(FEATURES)
    for name in FEATURES:
        assert live[name].bounds == reference.features[name].bounds


def test_shifting_release_moves_predictions_and_rollback_restores_them(
    sandbox: Sandbox, served
) -> None:
    target = served.target  # type: ignore[attr-defined]
    reference = reference_at(sandbox, sandbox.commits["v3"])

    def prediction_drift() -> float:
        before = scrape(sandbox.url)["prediction"]
        send_traffic(sandbox, 400, shifted=False)
        after = scrape(sandbox.url)["prediction"]
        score = drift.score(reference.prediction, drift.histogram_delta(after, before))
        assert score.value is not None, score.reason
        return score.value

    healthy = prediction_drift()
    list(target.rollout(Artifact(commit=sandbox.shifting), reason="release v1.3.0"))
    assert httpx.get(sandbox.url + "/version", timeout=5).json()["version"] == "1.3.0"
    # The training reference at the shifting commit is the same file.
    assert reference_at(sandbox, sandbox.shifting) == reference
    shifted = prediction_drift()
    assert healthy < 0.1 <= 0.25 < shifted

    list(target.rollback(reason="prediction drift"))
    assert target.status().phase is Phase.COMPLETE
    assert httpx.get(sandbox.url + "/version", timeout=5).json()["commit"] == sandbox.commits["v3"]
    assert prediction_drift() < 0.1


def test_data_shift_moves_the_features_it_should(sandbox: Sandbox, served) -> None:
    reference = reference_at(sandbox, sandbox.commits["v3"])
    before = scrape(sandbox.url)
    send_traffic(sandbox, 400, shifted=True, seed=5)
    after = scrape(sandbox.url)
    pairs = {
        name: (reference.features[name], drift.histogram_delta(after[name], before[name]))
        for name in FEATURES
    }
    ranked = dict(drift.rank_features(pairs, min_samples=100))
    assert ranked["tenure_months"].band is DriftBand.ALERT
    assert ranked["support_calls"].band is DriftBand.OK
    assert ranked["data_usage_gb"].band is DriftBand.OK
    prediction = drift.score(
        reference.prediction, drift.histogram_delta(after["prediction"], before["prediction"])
    )
    assert prediction.band is not DriftBand.OK


def processes_mentioning(text: str) -> list[str]:
    """Return the command lines of live processes whose command line or cwd contain ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        cmdline = raw.replace(b"\0", b" ").decode("utf-8", "replace")
        if (text in cmdline or text in cwd) and state != "Z":
            found.append(cmdline)
    return found


def test_background_starts_traffic_and_stop_leaves_no_process(tmp_path: Path) -> None:
    sandbox = build_sandbox(tmp_path / "bg")
    background = sandbox.start_background(rate=50, wait=False)
    try:
        assert background.wait(60)
        assert background.traffic is not None
        history = background.target.history()
        assert [r.commit for r in history] == [sandbox.commits["v3"], sandbox.commits["v2"]]
        assert history[0].current
        groups = [p.pid for p in background.target._all_procs()] + [background.traffic.pid]
        deadline = 50
        for _ in range(deadline):
            total = scrape(sandbox.url)["prediction"].total
            if total >= 20:
                break
            time.sleep(0.1)
        assert total >= 20
        # Guards, forwarder, shell and server, traffic generator.
        assert len(processes_mentioning(str(sandbox.root))) >= 7
    finally:
        background.stop()
    assert all(not procs.group_alive(pid) for pid in groups)
    assert processes_mentioning(str(sandbox.root)) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(sandbox.url + "/healthz", timeout=2)


def test_stopping_while_the_start_runs_leaves_no_process(tmp_path: Path) -> None:
    sandbox = build_sandbox(tmp_path / "early")
    background = sandbox.start_background(wait=False)
    time.sleep(0.3)
    background.stop()
    assert background.ready.is_set()
    assert background.traffic is None or not procs.group_alive(background.traffic.pid)
    assert processes_mentioning(str(sandbox.root)) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(sandbox.url + "/healthz", timeout=2)


def test_traffic_and_its_collection_start_with_the_sandbox_before_any_release(
    tmp_path: Path,
) -> None:
    """`make demo` order: the console's metrics source collects from the first
    release of the sandbox on, with no screen opened and nothing released by the
    operator, so the drift chart has history before a later release's marker and
    the first drift score comes within seconds."""
    from core.journal import Journal
    from core.services.views import current_drift
    from core.services.workspace import Workspace

    sandbox = build_sandbox(tmp_path / "order")
    workspace = Workspace(
        load_file(sandbox.config),
        journal=Journal(tmp_path / "journal.sqlite3"),
        state_dir=sandbox.state_dir,
    )
    background = sandbox.start_background(workspace, rate=50)
    try:
        source = workspace.metrics("churn")
        assert source is not None
        seen: list[Series] = []
        for _ in range(300):  # up to 30 s: polls the condition, never sleeps to synchronise
            now = datetime.now(UTC)
            seen = source.range_query(
                "sum(model_requests_total)", now - timedelta(minutes=5), now, width=600
            )
            if seen and len(seen[0].points) >= 2 and seen[0].points[-1][1] >= 100:
                break
            time.sleep(0.1)
        assert seen and seen[0].points[-1][1] >= 100, f"collected: {seen}"
        # The collection began with the sandbox: its first scrape came no later than one
        # scrape interval after the sandbox's own last release finished (the scraper and
        # the releases run concurrently, so which comes first within that interval is a
        # race), and traffic had been served within that interval. (The first scrape may
        # precede the first request: the releases can be live before the traffic
        # generator has started.)
        releases = [e for e in workspace.journal.entries(model="churn") if e.action == "rollout"]
        assert len(releases) == 2
        last_release = max(e.finished_at or e.time for e in releases).timestamp()
        metrics = workspace.model("churn").metrics
        assert metrics is not None
        first_time = seen[0].points[0][0]
        assert first_time < last_release + metrics.refresh, (seen[0].points[:3], last_release)
        early = [count for t, count in seen[0].points if t < last_release + metrics.refresh]
        assert max(early) > 0, (seen[0].points[:4], last_release)
        score = None
        for _ in range(300):
            drift_now = current_drift(workspace, "churn")
            assert drift_now is not None
            score = drift_now.score.value
            if score is not None:
                break
            time.sleep(0.1)
        assert score is not None, drift_now
    finally:
        background.stop()
        workspace.close()


def test_the_first_drift_window_is_full_once_the_sandbox_has_started(tmp_path: Path) -> None:
    """`mrc demo` shows a drift score at once: when the start returns, the live
    release's window already holds the configured minimum of samples (a burst of
    requests right after the first scrape), not after seconds of steady traffic."""
    from core.journal import Journal
    from core.services.workspace import Workspace

    sandbox = build_sandbox(tmp_path / "first")
    config = load_file(sandbox.config)
    workspace = Workspace(
        config, journal=Journal(tmp_path / "journal.sqlite3"), state_dir=sandbox.state_dir
    )
    background = sandbox.start_background(workspace, rate=1)
    try:
        source = workspace.metrics("churn")
        assert source is not None
        model = config.models[0]
        assert model.metrics is not None
        end = datetime.now(UTC)
        window = source.histogram_window(
            model.metrics.prediction_histogram, end - timedelta(seconds=model.drift.window), end
        )
        assert window.total >= model.drift.min_samples
    finally:
        background.stop()
        workspace.close()


def test_a_first_release_made_elsewhere_is_found_within_a_second(tmp_path: Path) -> None:
    """While no target runs a commit, the training reference is looked for every
    NOTHING_DEPLOYED_SECONDS, not every SLOW_SECONDS: a first release made outside
    the journal (another tool) is judged against its own histograms within a second."""
    from core.services.references import NOTHING_DEPLOYED_SECONDS, TrainingReferences
    from core.services.workspace import Workspace

    sandbox = build_sandbox(tmp_path / "late")
    workspace = Workspace(load_file(sandbox.config), state_dir=sandbox.state_dir)
    target = workspace.target("churn", "local")
    clock = [0.0]
    training = TrainingReferences(workspace, "churn", clock=lambda: clock[0])
    try:
        assert training() == (None, "no target runs a known commit")
        for _ in target.rollout(Artifact(commit=sandbox.commits["v3"])):  # not journalled
            pass
        assert training() == (None, "no target runs a known commit")  # not looked for yet
        clock[0] += NOTHING_DEPLOYED_SECONDS
        assert training() == (reference_at(sandbox, sandbox.commits["v3"]), "")
    finally:
        target.stop_all()
        workspace.close()


def test_a_release_through_the_workspace_is_judged_against_its_own_training_reference(
    tmp_path: Path,
) -> None:
    """Right after a release (journalled by the workspace), drift is judged against the
    training histograms of the commit now live, not those of the one before it."""
    from core.services.workspace import Workspace

    sandbox = build_sandbox(tmp_path / "next")
    workspace = Workspace(load_file(sandbox.config), state_dir=sandbox.state_dir)
    background = sandbox.start_background(workspace, history=("v2",), traffic=False)
    try:
        v2, v3 = (reference_at(sandbox, sandbox.commits[role]) for role in ("v2", "v3"))
        training, _markers = workspace.drift_inputs("churn")
        assert training() == (v2, "")
        assert v2 != v3
        target = workspace.target("churn", "local")
        for _ in workspace.run_rollout(target, Artifact(commit=sandbox.commits["v3"])):
            pass
        assert training() == (v3, "")
    finally:
        background.stop()
        workspace.close()
