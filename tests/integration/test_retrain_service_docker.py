"""``mrc retrain --json`` with the docker executor, end to end on the real engine.

The user's path: the CLI as a subprocess, a model repository whose image was
built for the commit (``<image>:<short sha>``, the image-building fixture of
:mod:`tests.integration.test_retrain_docker`), the command in a container,
its result committed on a ``retrain/<model>/<timestamp>`` branch and the
journal row finished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.domain import Outcome
from tests.integration import test_retrain_docker as built
from tests.integration.test_cli_retrain import journal_rows, mrc
from tests.support.repos import git
from tui.cli.output import EXIT_FAILED, EXIT_OK

pytestmark = [pytest.mark.integration, pytest.mark.docker]

#: The training image (module-scoped): a repository with a Dockerfile and
#: ``train.sh``, its image built for its commit on the test engine.
training_image = built.training_image


def write_config(tmp_path: Path, base_url: str, image: built.TrainingImage, command: str) -> Path:
    path = tmp_path / "mrc.toml"
    path.write_text(
        f"""
[[model]]
name = "churn"
repo = "{image.repo}"
image = "{image.image}"

[[model.target]]
name = "host-a"
kind = "docker"
base_url = "{base_url}"
port = 18080

[model.retrain]
command = '''{command}'''
executor = "docker"
"""
    )
    return path


def retrain_branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/retrain").split()


def test_the_container_result_is_committed_with_trailers_and_journalled(
    docker_service: Any, training_image: built.TrainingImage, tmp_path: Path
) -> None:
    image = training_image
    config = write_config(tmp_path, docker_service.base_url, image, "sh /opt/train.sh")
    state = tmp_path / "state"
    before = retrain_branches(image.repo)

    proc = mrc("retrain", "churn", "--window", "3h", "--reason", "drift alert", "--yes",
               "--json", config=config, state=state)  # fmt: skip

    assert proc.returncode == EXIT_OK, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["base"] == image.sha  # no container deployed on host-a: HEAD, said on stderr
    assert "starting from HEAD" in proc.stderr
    assert f"training churn at {image.sha} in /mrc/work" in proc.stderr
    branch, commit = doc["branch"], doc["commit"]
    assert branch.startswith("retrain/churn/") and branch not in before
    assert retrain_branches(image.repo) == sorted([*before, branch])
    assert git(image.repo, "rev-parse", branch) == commit
    assert git(image.repo, "rev-parse", f"{commit}^") == image.sha
    assert (doc["files"], doc["metrics"]) == (["model.txt"], {"accuracy": 0.93})

    trailers = git(image.repo, "log", "-1", "--format=%(trailers:only,unfold)", commit)
    lines = set(trailers.splitlines())
    window = next(line for line in lines if line.startswith("Retrain-Window: "))
    start, end = window.removeprefix("Retrain-Window: ").split("/")
    assert git(image.repo, "show", f"{commit}:model.txt") == f"weights trained on {start}..{end}"
    assert git(image.repo, "show", f"{image.sha}:model.txt") == "weights v1"
    assert {
        "Retrain-Model: churn",
        f"Retrain-Base: {image.sha}",
        "Retrain-Trigger-Score: unknown",  # no metrics source: never a made-up score
        "Retrain-Reason: drift alert",
        "Retrain-Executor: docker",
        "Retrain-Metric-accuracy: 0.93",
    } <= lines
    assert f"Retrain-Started-By: {doc['trigger']['started_by']}" in lines
    subject = git(image.repo, "log", "-1", "--format=%s", commit)
    assert subject == f"Retrain churn on 3h of data up to {end}"

    [row] = journal_rows(state)
    assert (row.id, row.action, row.model, row.target, row.outcome) == (
        doc["journal_id"], "retrain", "churn", "", Outcome.DONE,
    )  # fmt: skip
    assert row.reason == "drift alert"
    assert row.details["executor"] == "docker" and row.details["commit"] == image.sha
    assert (row.details["branch"], row.details["new_commit"]) == (branch, commit)
    assert row.details["metrics"] == {"accuracy": 0.93}
    assert "training churn" in Path(row.details["output"]).read_text()


def test_a_failing_container_commits_nothing_and_keeps_its_output(
    docker_service: Any, training_image: built.TrainingImage, tmp_path: Path
) -> None:
    image = training_image
    command = "echo changed > model.txt; echo no data in the window >&2; exit 3"
    config = write_config(tmp_path, docker_service.base_url, image, command)
    state = tmp_path / "state"
    before = retrain_branches(image.repo)

    proc = mrc("retrain", "churn", "--yes", "--json", config=config, state=state)

    assert proc.returncode == EXIT_FAILED, proc.stderr
    assert "exited with code 3" in json.loads(proc.stdout)["error"]
    assert "no data in the window" in proc.stderr
    assert retrain_branches(image.repo) == before
    assert git(image.repo, "status", "--porcelain") == ""  # the user's tree untouched
    [row] = journal_rows(state)
    assert (row.action, row.outcome) == ("retrain", Outcome.FAILED)
    assert "exited with code 3" in row.error
    assert "no data in the window" in Path(row.details["output"]).read_text()
    assert "new_commit" not in row.details
