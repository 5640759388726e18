"""``mrc retrain`` as a user runs it: ``python -m tui.cli ... retrain`` subprocesses.

Exit codes and the JSON document are the contract (see :mod:`tui.cli.output`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core import paths
from core.domain import Outcome
from core.journal import Journal
from tests.support.repos import BASE_TIME, commit_files, git, init_repo
from tui.cli.output import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_PERMISSION,
    EXIT_USAGE,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

TRAIN = """\
echo "training $MRC_RETRAIN_MODEL"
printf 'hostile \\033]0;pwned title\\007 \\033[31mred\\033[0m\\n'
echo "weights $MRC_RETRAIN_WINDOW_START" > model.txt
echo '{"accuracy": 0.93}' > "$MRC_RETRAIN_OUTPUT/metrics.json"
"""


def env_for(state: Path) -> dict[str, str]:
    env = {**os.environ, "MRC_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    env.pop("MRC_CONFIG", None)
    return env


def mrc(*args: str, config: Path, state: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tui.cli --config CONFIG ARGS`` (stdin not a terminal); never raises."""
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "--config", str(config), *args],
        input="",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env_for(state),
        timeout=120,
    )


def write_config(tmp_path: Path, repo: Path, command: str | None = "sh train.sh") -> Path:
    retrain = f"\n  [model.retrain]\n  command = '''{command}'''\n" if command else ""
    path = tmp_path / "mrc.toml"
    path.write_text(f'[[model]]\nname = "churn"\nrepo = "{repo}"\n{retrain}')
    return path


def journal_rows(state: Path) -> list:
    if not (state / paths.JOURNAL_FILE).exists():
        return []
    journal = Journal(state / paths.JOURNAL_FILE)
    try:
        return journal.entries(limit=10)
    finally:
        journal.close()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = init_repo(tmp_path / "churn")
    commit_files(path, {"model.txt": "v1\n", "train.sh": TRAIN}, "v1", when=BASE_TIME)
    return path


def test_json_document_names_the_commit_and_branch_and_output_is_inert(
    tmp_path: Path, repo: Path
) -> None:
    config, state = write_config(tmp_path, repo), tmp_path / "state"
    proc = mrc("retrain", "churn", "--window", "2h", "--reason", "drift", "--yes", "--json",
               config=config, state=state)  # fmt: skip
    assert proc.returncode == EXIT_OK, proc.stderr
    doc = json.loads(proc.stdout)
    assert proc.stdout == json.dumps(doc, sort_keys=True, indent=2) + "\n"
    assert set(doc) == {
        "model", "base", "commit", "branch", "metrics", "files", "journal_id", "trigger",
        "warnings",
    }  # fmt: skip
    assert doc["base"] == git(repo, "rev-parse", "HEAD")
    assert git(repo, "rev-parse", doc["branch"]) == doc["commit"]
    assert doc["branch"].startswith("retrain/churn/")
    assert (doc["files"], doc["metrics"]) == (["model.txt"], {"accuracy": 0.93})
    assert doc["trigger"]["reason"] == "drift" and doc["trigger"]["score"] is None
    assert "training churn" in proc.stderr  # the command's output, streamed
    assert "hostile" in proc.stderr
    assert "\x1b" not in proc.stderr + proc.stdout and "\x07" not in proc.stderr + proc.stdout
    [row] = journal_rows(state)
    assert (row.id, row.action, row.outcome) == (doc["journal_id"], "retrain", Outcome.DONE)
    assert row.details["window_seconds"] == 7200

    text = mrc("retrain", "churn", "-y", config=config, state=state)
    assert text.returncode == EXIT_OK, text.stderr
    first = text.stdout.splitlines()[0]
    assert first.startswith("churn: retrained ") and " on retrain/churn/" in first
    assert "accuracy = 0.93" in text.stdout


def test_a_failing_command_exits_1_with_its_output_and_commits_nothing(
    tmp_path: Path, repo: Path
) -> None:
    config = write_config(tmp_path, repo, "echo changed > model.txt; echo boom >&2; exit 3")
    state = tmp_path / "state"
    proc = mrc("retrain", "churn", "--yes", "--json", config=config, state=state)
    assert proc.returncode == EXIT_FAILED
    assert "exited with code 3" in json.loads(proc.stdout)["error"]
    assert "boom" in proc.stderr
    assert git(repo, "branch", "--list", "retrain/*") == ""
    [row] = journal_rows(state)
    assert row.outcome is Outcome.FAILED


def test_read_only_refuses_before_anything_runs(tmp_path: Path, repo: Path) -> None:
    config, state = write_config(tmp_path, repo), tmp_path / "state"
    proc = mrc("--read-only", "retrain", "churn", "--yes", "--json", config=config, state=state)
    assert proc.returncode == EXIT_PERMISSION
    assert "retrain refused: read-only mode" in json.loads(proc.stdout)["error"]
    assert "training" not in proc.stderr
    assert journal_rows(state) == []
    assert git(repo, "branch", "--list", "retrain/*") == ""


def test_a_model_without_a_retrain_table_is_refused_with_the_reason(
    tmp_path: Path, repo: Path
) -> None:
    config, state = write_config(tmp_path, repo, command=None), tmp_path / "state"
    proc = mrc("retrain", "churn", "--yes", "--json", config=config, state=state)
    assert proc.returncode == EXIT_USAGE
    assert "no [model.retrain] table" in json.loads(proc.stdout)["error"]
    assert journal_rows(state) == []


def test_not_confirmed_unknown_model_and_unknown_commit(tmp_path: Path, repo: Path) -> None:
    config, state = write_config(tmp_path, repo), tmp_path / "state"
    unconfirmed = mrc("retrain", "churn", config=config, state=state)
    assert unconfirmed.returncode == EXIT_USAGE
    assert "pass --yes" in unconfirmed.stderr
    assert mrc("retrain", "nope", "-y", config=config, state=state).returncode == EXIT_NOT_FOUND
    missing = mrc("retrain", "churn", "--commit", "deadbeef", "-y", config=config, state=state)
    assert missing.returncode == EXIT_NOT_FOUND
    assert mrc("retrain", "churn", "--window", "soon", config=config, state=state).returncode == 2
    assert journal_rows(state) == []


def test_ctrl_c_cancels_the_command_and_exits_130(tmp_path: Path, repo: Path) -> None:
    config = write_config(tmp_path, repo, "echo x > model.txt; echo ready; sleep 300")
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "--config", str(config), "retrain", "churn", "-y"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env_for(state),
    )
    assert proc.stderr is not None
    seen = []
    try:
        for line in proc.stderr:  # waits for the command's own output
            seen.append(line)
            if line.strip() == "ready":
                proc.send_signal(signal.SIGINT)
                break
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_CANCELLED, "".join(seen) + rest
    assert "cancelled" in rest
    [row] = journal_rows(state)
    assert (row.outcome, row.error) == (Outcome.FAILED, "cancelled")
    assert git(repo, "branch", "--list", "retrain/*") == ""
