"""Retraining with the local executor: a real git repository, real processes, the real journal.

Each test calls :func:`core.services.retrain.run_retrain` (what the console's
``R`` and ``mrc retrain`` call) on a small repository whose ``train.sh``
stands in for a training script.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core import audit, procs
from core.cancel import CancelToken
from core.config import load_file, parse
from core.domain import Outcome, Progress
from core.errors import Cancelled, OperationFailed
from core.retrain.base import Trigger
from core.retrain.result import NOTHING_CHANGED, branch_name
from core.services import release as r
from core.services.retrain import RetrainResult, run_retrain
from core.services.workspace import Workspace
from core.targets.local import free_port
from tests.integration.test_release_local import make_served_repo, served, write_config
from tests.support.repos import BASE_TIME, commit_files, git, init_repo

pytestmark = pytest.mark.integration

TRAIN = """\
set -e
echo "training $MRC_RETRAIN_MODEL from $MRC_RETRAIN_COMMIT"
echo "weights for $MRC_RETRAIN_WINDOW_START..$MRC_RETRAIN_WINDOW_END" > model.txt
env | sort > env.txt
echo '{"accuracy": 0.93, "loss": 0.21}' > "$MRC_RETRAIN_OUTPUT/metrics.json"
echo "a warning on stderr" >&2
"""

TRIGGER = Trigger(0.888, "psi", "training", "maya@bastion", "drift alert")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = init_repo(tmp_path / "churn")
    commit_files(path, {"model.txt": "v1\n", "train.sh": TRAIN}, "v1", when=BASE_TIME)
    return path


def workspace(
    tmp_path: Path, repo: Path, command: str = "sh train.sh", extra: str = ""
) -> Workspace:
    text = f"""
[console]
child_env = ["PATH", "HOME", "MRC_TEST_*"]

[[model]]
name = "churn"
repo = "{repo}"

  [model.metrics]
  source = "prometheus"
  url = "http://reader:hunter2@127.0.0.1:9/"
  token_env = "MRC_TEST_SECRET"
  prediction_histogram = "model_prediction_score"

  [model.retrain]
  command = '''{command}'''
  {extra}
"""
    config = parse(text, environ={**os.environ, "MRC_TEST_SECRET": "s3cr3t-token"})
    return Workspace(config, state_dir=tmp_path / "state")


def run(ws: Workspace, cancel: CancelToken | None = None) -> tuple[list[Progress], RetrainResult]:
    items = list(run_retrain(ws, "churn", trigger=TRIGGER, cancel=cancel))
    assert items[-1].step == "done"
    assert isinstance(items[-1].result, RetrainResult)
    return items, items[-1].result


def retrain_branches(repo: Path) -> list[str]:
    out = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/retrain")
    return out.split()


def test_the_changed_files_become_a_commit_with_trailers_on_a_retrain_branch(
    tmp_path: Path, repo: Path
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (repo / "notes.txt").write_text("the operator's uncommitted work\n")  # a dirty tree is fine
    ws = workspace(tmp_path, repo)
    items, result = run(ws)

    assert result.base == head
    assert result.branch.startswith("retrain/churn/") and retrain_branches(repo) == [result.branch]
    assert git(repo, "rev-parse", result.branch) == result.commit
    assert git(repo, "rev-parse", f"{result.commit}^") == head
    assert result.files == ("env.txt", "model.txt")
    assert result.metrics == {"accuracy": 0.93, "loss": 0.21}
    assert git(repo, "show", f"{result.commit}:model.txt").startswith("weights for 20")
    # the user's own working tree and branch are untouched
    assert git(repo, "rev-parse", "HEAD") == head
    assert (repo / "notes.txt").read_text() == "the operator's uncommitted work\n"
    assert (repo / "model.txt").read_text() == "v1\n"
    assert git(repo, "status", "--porcelain") == "?? notes.txt"

    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", result.commit)
    lines = set(trailers.splitlines())
    window = next(line for line in lines if line.startswith("Retrain-Window: "))
    assert {
        "Retrain-Model: churn",
        f"Retrain-Base: {head}",
        "Retrain-Trigger-Score: 0.888",
        "Retrain-Trigger-Method: psi",
        "Retrain-Trigger-Reference: training",
        "Retrain-Started-By: maya@bastion",
        "Retrain-Reason: drift alert",
        "Retrain-Executor: local",
        "Retrain-Metric-accuracy: 0.93",
        "Retrain-Metric-loss: 0.21",
    } <= lines
    start, end = window.removeprefix("Retrain-Window: ").split("/")
    span = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    assert span == timedelta(hours=6)  # the default window
    subject = git(repo, "log", "-1", "--format=%s", result.commit)
    assert subject == f"Retrain churn on 6h of data up to {end}"
    # the author is the operator, without any global git configuration
    author = git(repo, "log", "-1", "--format=%an|%cn", result.commit)
    assert author == f"{audit.whoami().user}|{audit.whoami().user}"

    output = [p.message for p in items if p.step == "output"]
    assert output[0] == f"training churn from {head}"
    assert "a warning on stderr" in output

    entry = ws.journal.entry(result.entry)
    assert (entry.action, entry.model, entry.target, entry.outcome) == (
        "retrain", "churn", "", Outcome.DONE,
    )  # fmt: skip
    assert entry.reason == "drift alert"
    details = entry.details
    assert details["commit"] == head and details["executor"] == "local"
    assert details["trigger"]["score"] == 0.888
    assert details["branch"] == result.branch and details["new_commit"] == result.commit
    assert details["metrics"] == {"accuracy": 0.93, "loss": 0.21}
    assert "training churn" in Path(details["output"]).read_text()


def test_the_command_gets_the_documented_variables_and_never_a_secret(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MRC_TEST_VISIBLE", "allowed by child_env")
    monkeypatch.setenv("MRC_TEST_SECRET", "s3cr3t-token")  # named by token_env: never passed
    ws = workspace(tmp_path, repo, extra='window = "2h"')
    _, result = run(ws)
    env = dict(
        line.split("=", 1)
        for line in git(repo, "show", f"{result.commit}:env.txt").splitlines()
        if "=" in line
    )
    assert env["MRC_TEST_VISIBLE"] == "allowed by child_env"
    assert "MRC_TEST_SECRET" not in env
    assert "s3cr3t-token" not in git(repo, "show", f"{result.commit}:env.txt")
    assert env["MRC_RETRAIN_MODEL"] == "churn"
    assert env["MRC_RETRAIN_COMMIT"] == result.base
    assert env["MRC_RETRAIN_TRIGGER_SCORE"] == "0.888"
    assert env["MRC_RETRAIN_TRIGGER_METHOD"] == "psi"
    assert env["MRC_RETRAIN_TRIGGER_REFERENCE"] == "training"
    assert env["MRC_RETRAIN_BRANCH"] == result.branch
    assert env["MRC_RETRAIN_METRICS_URL"] == "http://reader:******@127.0.0.1:9/"
    start = datetime.strptime(env["MRC_RETRAIN_WINDOW_START"], "%Y-%m-%dT%H:%M:%SZ")
    end = datetime.strptime(env["MRC_RETRAIN_WINDOW_END"], "%Y-%m-%dT%H:%M:%SZ")
    assert end - start == timedelta(hours=2)
    assert Path(env["PWD"]).name != repo.name  # a worktree, not the user's clone
    assert env["MRC_RETRAIN_WORKDIR"] == env["PWD"]
    assert not Path(env["MRC_RETRAIN_OUTPUT"]).exists()  # a temporary directory, removed
    # (sh adds PWD, SHLVL, _; Python's C-locale coercion may add LC_CTYPE)
    assert set(env) - {"PWD", "SHLVL", "_", "OLDPWD", "LC_CTYPE"} <= {
        "PATH", "HOME", "MRC_TEST_VISIBLE", "PYTHONUNBUFFERED", *(k for k in env if
        k.startswith("MRC_RETRAIN_")),
    }  # fmt: skip


def test_a_failing_command_commits_nothing_and_keeps_its_output(tmp_path: Path, repo: Path) -> None:
    ws = workspace(tmp_path, repo, "echo before; echo changed > model.txt; echo boom >&2; exit 3")
    seen: list[Progress] = []
    with pytest.raises(OperationFailed) as caught:
        for progress in run_retrain(ws, "churn", trigger=TRIGGER):
            seen.append(progress)
    message = str(caught.value)
    assert "exited with code 3" in message and "boom" in message
    assert [p.message for p in seen if p.step == "output"] == ["before", "boom"]
    assert retrain_branches(repo) == []
    assert (repo / "model.txt").read_text() == "v1\n"
    [entry] = ws.journal.entries(limit=5)
    assert entry.outcome is Outcome.FAILED and "exited with code 3" in entry.error
    log = Path(entry.details["output"]).read_text()
    assert "before" in log and "boom" in log


def test_a_command_that_changes_nothing_makes_no_commit(tmp_path: Path, repo: Path) -> None:
    ws = workspace(tmp_path, repo, "echo looked at the data; echo v1 > model.txt")
    with pytest.raises(OperationFailed, match=NOTHING_CHANGED):
        list(run_retrain(ws, "churn", trigger=TRIGGER))
    assert retrain_branches(repo) == []
    [entry] = ws.journal.entries(limit=5)
    assert (entry.outcome, entry.error) == (Outcome.FAILED, NOTHING_CHANGED)


def test_a_taken_branch_name_gets_a_suffix_and_says_so(tmp_path: Path, repo: Path) -> None:
    # Take every name the retrain could pick in the next two minutes.
    now = datetime.now(UTC)
    head = git(repo, "rev-parse", "HEAD")
    names = {branch_name("churn", now + timedelta(seconds=s)) for s in range(-1, 120)}
    for name in names:
        git(repo, "branch", name, head)
    ws = workspace(tmp_path, repo)
    items, result = run(ws)
    first = result.branch.removesuffix("-2")
    assert result.branch == f"{first}-2" and first in names
    assert git(repo, "rev-parse", first) == head  # the existing branch did not move
    notes = [p for p in items if p.step == "commit" and p.level == "warning"]
    assert [p.message for p in notes] == [
        f"branch {first} already exists: the commit is on {result.branch}"
    ]


def test_a_command_past_its_timeout_is_stopped(tmp_path: Path, repo: Path) -> None:
    ws = workspace(tmp_path, repo, "echo started; echo x > model.txt; sleep 300", 'timeout = "1s"')
    group = 0
    with pytest.raises(OperationFailed) as caught:
        for progress in run_retrain(ws, "churn", trigger=TRIGGER):
            if progress.step == "executor":
                group = int(progress.message.rsplit(" ", 1)[1].rstrip(")"))
    assert "timed out after 1s" in str(caught.value) and "started" in str(caught.value)
    assert group and procs.live_group_members(group) == []
    assert retrain_branches(repo) == []
    [entry] = ws.journal.entries(limit=5)
    assert entry.outcome is Outcome.FAILED and "timed out after 1s" in entry.error


def test_cancel_stops_the_whole_process_group(tmp_path: Path, repo: Path) -> None:
    command = "sleep 300 & echo child $!; echo x > model.txt; wait"
    ws = workspace(tmp_path, repo, command)
    cancel = CancelToken()
    child = 0
    with pytest.raises(Cancelled):
        for progress in run_retrain(ws, "churn", trigger=TRIGGER, cancel=cancel):
            if progress.step == "output" and progress.message.startswith("child "):
                child = int(progress.message.split()[1])
                assert procs.proc_stat(child) is not None  # running before the cancel
                cancel.cancel()
    assert child
    stat = procs.proc_stat(child)
    assert stat is None or not stat.live  # no survivor
    assert retrain_branches(repo) == []
    [entry] = ws.journal.entries(limit=5)
    assert (entry.outcome, entry.error) == (Outcome.FAILED, "cancelled")


def test_auto_release_sends_the_commit_through_the_pipeline_never_to_production(
    tmp_path: Path,
) -> None:
    sample = make_served_repo(tmp_path / "churn")
    port, prod_port = free_port(), free_port()
    prod = (
        '[[model.target]]\nname = "prod"\nkind = "local"\n'
        f'command = "{{python}} server.py {{port}}"\nport = {prod_port}\n'
        'health_path = "/healthz"\nproduction = true\n'
    )
    path = write_config(tmp_path, sample.path, port, duration="1s", extra_targets=prod)
    path.write_text(
        path.read_text()
        + '\n  [model.retrain]\n  command = "echo v9-retrained > VERSION"\n  auto_release = true\n'
    )
    ws = Workspace(load_file(path), state_dir=tmp_path / "state")
    try:
        items, result = run(ws)
        releases = [p.message for p in items if p.step == "release"]
        assert "auto_release never releases to production: prod skipped" in releases
        assert releases[-1] == f"local: done: churn {result.commit[:8]} is live on local"
        assert served(port)["version"] == "v9-retrained"
        assert served(port)["commit"] == result.commit
        rows = ws.journal.releases("churn")
        assert [(x.target, x.commit, x.status) for x in rows] == [("local", result.commit, r.DONE)]
        assert [e.action for e in ws.journal.entries(limit=10) if e.target == "prod"] == []
    finally:
        ws.close()
