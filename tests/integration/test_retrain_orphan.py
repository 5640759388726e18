"""A front end killed mid-retrain leaves a journal row the next process marks ``unknown``.

``mrc retrain`` (local executor) runs as a subprocess and is killed with
SIGKILL while the command runs, so nothing of it can record an outcome. The
next ``mrc`` that opens the journal (here ``mrc history --json``) turns the
row left in ``intent`` into ``unknown``, keeping what was running in its
details, among them the file its output went to; the command's process group
does not outlive the killed front end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import paths, procs
from core.domain import Outcome
from core.journal import Journal
from tests.integration.test_cli_retrain import ROOT, env_for, write_config
from tests.support.repos import BASE_TIME, commit_files, git, init_repo
from tui.cli.output import EXIT_OK

pytestmark = pytest.mark.integration

COMMAND = 'echo "training in group $$"; echo x > model.txt; exec sleep 300'


def test_a_cli_killed_mid_retrain_leaves_a_row_the_next_open_marks_unknown(
    tmp_path: Path,
) -> None:
    repo = init_repo(tmp_path / "churn")
    base = commit_files(repo, {"model.txt": "v1\n"}, "v1", when=BASE_TIME)
    config, state = write_config(tmp_path, repo, COMMAND), tmp_path / "state"
    scratch = tmp_path / "tmp"  # the worktree and output directory land here
    scratch.mkdir()
    env = {**env_for(state), "TMPDIR": str(scratch)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "--config", str(config), "retrain", "churn",
         "--reason", "drift alert", "-y"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    group = 0
    seen: list[str] = []
    try:
        for line in proc.stderr:  # waits for the command's own output
            seen.append(line)
            if line.startswith("training in group "):
                group = int(line.split()[-1])
                proc.kill()  # SIGKILL: no handler, no finally, no outcome written
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if group:  # the command outlives the killed front end: stop it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
    assert group, "".join(seen)
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30  # the group's guard notices its lifeline closing
    while procs.group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not procs.group_alive(group), "the retrain command outlived the killed mrc"

    raw = Journal(state / paths.JOURNAL_FILE, close_orphans=False)
    try:
        [left] = raw.entries(limit=10)
    finally:
        raw.close()
    assert (left.action, left.outcome) == ("retrain", Outcome.INTENT)

    history = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--config", str(config), "history", "churn", "--json"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip
    assert history.returncode == EXIT_OK, history.stderr
    [shown] = json.loads(history.stdout)["journal"]
    assert (shown["action"], shown["outcome"], shown["outcome_unknown"]) == (
        "retrain", "unknown", True,
    )  # fmt: skip
    assert f"(pid {proc.pid} on " in shown["error"]
    assert "exited before recording an outcome" in shown["error"]

    journal = Journal(state / paths.JOURNAL_FILE, close_orphans=False)
    try:
        [row] = journal.entries(limit=10)
    finally:
        journal.close()
    assert (row.id, row.outcome, row.reason) == (left.id, Outcome.UNKNOWN, "drift alert")
    details = row.details
    assert (details["commit"], details["executor"], details["command"]) == (
        base, "local", COMMAND,
    )  # fmt: skip
    assert details["window_seconds"] == 6 * 3600 and "/" in details["window"]
    assert details["trigger"]["score"] is None
    assert "training in group" in Path(details["output"]).read_text()
    assert git(repo, "for-each-ref", "refs/heads/retrain") == ""
