"""The docker retrain executor on the real engine, with a tiny training image.

The image is built from a test repository (FROM the offline Python base image,
plus a ``train.sh``) exactly as ``b`` builds a model's image, so the executor
finds it as ``<image>:<short sha>``. Each test runs the executor the way the
retrain service does: a worktree at the commit, an output directory, a job.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.cancel import CancelToken
from core.config import parse
from core.domain import Progress
from core.errors import Cancelled, ConfigError, NotFound, OperationFailed
from core.images import ImageBuilder
from core.retrain.base import RetrainJob, Trigger
from core.retrain.docker import LABEL_RETRAIN, DockerExecutor
from core.services.workspace import Workspace
from tests.support.repos import BASE_TIME, commit_files, git, init_repo

pytestmark = [pytest.mark.integration, pytest.mark.docker]

TRAIN = """\
set -e
echo "training $MRC_RETRAIN_MODEL at $MRC_RETRAIN_COMMIT in $(pwd)"
echo "weights trained on $MRC_RETRAIN_WINDOW_START..$MRC_RETRAIN_WINDOW_END" > model.txt
env | sort > "$MRC_RETRAIN_OUTPUT/env.txt"
echo '{"accuracy": 0.93}' > "$MRC_RETRAIN_OUTPUT/metrics.json"
echo "a warning on stderr" >&2
printf 'last line without newline'
"""


@dataclass(frozen=True)
class TrainingImage:
    repo: Path
    sha: str
    image: str  # repository; the built tag is <image>:<sha[:8]>


@pytest.fixture(scope="module")
def training_image(
    docker_service: Any, python_base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrainingImage]:
    repo = init_repo(tmp_path_factory.mktemp("retrain-docker") / "repo")
    sha = commit_files(
        repo,
        {
            "Dockerfile": f"FROM {python_base_image}\nCOPY train.sh /opt/train.sh\n",
            "train.sh": TRAIN,
            "model.txt": "weights v1\n",
        },
        "model v1",
        when=BASE_TIME,
    )
    image = f"mrc-test/retrain-{uuid.uuid4().hex[:8]}"
    builder = ImageBuilder(docker_service.base_url, timeout=120)
    try:
        list(builder.build(repo, sha, image, "churn"))
        yield TrainingImage(repo, sha, image)
    finally:
        with contextlib.suppress(Exception):
            builder.remove(f"{image}:{sha[:8]}", force=True)
        builder.close()


def workspace_for(base_url: str, image: str, *, retrain_image: str = "") -> Workspace:
    retrain_line = f'image = "{retrain_image}"\n' if retrain_image else ""
    config = parse(
        f"""
[[model]]
name = "churn"
repo = "/nonexistent"
image = "{image}"

[[model.target]]
name = "host-a"
kind = "docker"
base_url = "{base_url}"
port = 18080

[model.retrain]
command = "sh /opt/train.sh"
executor = "docker"
{retrain_line}"""
    )
    return Workspace(config, state_dir=Path("/nonexistent-state"))


def make_job(
    repo: Path, sha: str, tmp_path: Path, command: str, timeout: float = 120
) -> RetrainJob:
    worktree = tmp_path / "worktree"
    git(repo, "worktree", "add", "--detach", str(worktree), sha)
    output = tmp_path / "output"
    output.mkdir()
    end = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    return RetrainJob(
        model="churn",
        commit=sha,
        command=command,
        workdir=worktree,
        output=output,
        window_start=end - timedelta(hours=6),
        window_end=end,
        metrics_url="http://127.0.0.1:9090",
        trigger=Trigger(0.888, "psi", "training", "ada@bastion", "drift alert"),
        branch=f"retrain/churn/{uuid.uuid4().hex[:8]}T000000Z",
        timeout=timeout,
    )


def containers_of(docker_service: Any, job: RetrainJob) -> list[dict[str, Any]]:
    api = docker_service.api()
    try:
        found: list[dict[str, Any]] = api.containers(
            all=True, filters={"label": f"{LABEL_RETRAIN}={job.branch}"}
        )
        return found
    finally:
        api.close()


def executor_for(workspace: Workspace) -> DockerExecutor:
    return DockerExecutor(workspace, workspace.model("churn"))


def test_command_rewrites_the_worktree_with_the_documented_environment(
    docker_service: Any,
    training_image: TrainingImage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MRC_TEST_CONSOLE_SECRET", "never-in-a-container")
    workspace = workspace_for(docker_service.base_url, training_image.image)
    job = make_job(training_image.repo, training_image.sha, tmp_path, "sh /opt/train.sh")

    items = list(executor_for(workspace).run(job, CancelToken()))

    output = [p.message for p in items if p.step == "output"]
    stdout = [f"training churn at {training_image.sha} in /mrc/work", "last line without newline"]
    # Every line arrives; stdout keeps its order (stderr is another stream: no order between).
    assert sorted(output) == sorted([*stdout, "a warning on stderr"])
    assert [line for line in output if line in stdout] == stdout
    assert any(p.step == "executor" and "started" in p.message for p in items)
    written = job.workdir / "model.txt"
    assert written.read_text() == (
        "weights trained on 2026-03-01T06:00:00Z..2026-03-01T12:00:00Z\n"
    )
    assert written.stat().st_uid == os.getuid()
    assert written.stat().st_gid == os.getgid()
    assert json.loads((job.output / "metrics.json").read_text()) == {"accuracy": 0.93}
    env = dict(line.split("=", 1) for line in (job.output / "env.txt").read_text().splitlines())
    expected = job.environment(workdir="/mrc/work", output="/mrc/output")
    assert {k: v for k, v in env.items() if k.startswith("MRC_")} == expected
    assert env["MRC_RETRAIN_TRIGGER_SCORE"] == "0.888"
    assert "MRC_TEST_CONSOLE_SECRET" not in env
    assert containers_of(docker_service, job) == []


def test_non_zero_exit_fails_with_the_code_and_removes_the_container(
    docker_service: Any, training_image: TrainingImage, tmp_path: Path
) -> None:
    workspace = workspace_for(docker_service.base_url, training_image.image)
    job = make_job(training_image.repo, training_image.sha, tmp_path, "echo no data; exit 3")
    seen: list[Progress] = []

    with pytest.raises(OperationFailed, match="exited with code 3"):
        for item in executor_for(workspace).run(job, CancelToken()):
            seen.append(item)

    assert [p.message for p in seen if p.step == "output"] == ["no data"]
    assert containers_of(docker_service, job) == []


def test_cancel_kills_and_removes_the_container(
    docker_service: Any, training_image: TrainingImage, tmp_path: Path
) -> None:
    workspace = workspace_for(docker_service.base_url, training_image.image)
    job = make_job(
        training_image.repo, training_image.sha, tmp_path, "echo training; exec sleep 300"
    )
    cancel = CancelToken()
    running: list[dict[str, Any]] = []

    with pytest.raises(Cancelled):
        for item in executor_for(workspace).run(job, cancel):
            if item.step == "output" and item.message == "training":
                running = containers_of(docker_service, job)
                cancel.cancel()

    assert len(running) == 1 and running[0]["State"] == "running"
    assert containers_of(docker_service, job) == []


def test_timeout_stops_the_container_and_fails(
    docker_service: Any, training_image: TrainingImage, tmp_path: Path
) -> None:
    workspace = workspace_for(docker_service.base_url, training_image.image)
    job = make_job(training_image.repo, training_image.sha, tmp_path, "exec sleep 300", timeout=1)

    with pytest.raises(OperationFailed, match="did not finish within 1s"):
        list(executor_for(workspace).run(job, CancelToken()))

    assert containers_of(docker_service, job) == []


def test_image_not_built_for_the_commit_is_not_found(
    docker_service: Any, training_image: TrainingImage, tmp_path: Path
) -> None:
    workspace = workspace_for(docker_service.base_url, training_image.image)
    job = make_job(training_image.repo, training_image.sha, tmp_path, "true")
    job = replace(job, commit="0123456789abcdef0123456789abcdef01234567")

    with pytest.raises(NotFound, match=r":01234567 is not on the Docker engine.*build it first"):
        list(executor_for(workspace).run(job, CancelToken()))

    assert containers_of(docker_service, job) == []


def test_remote_engine_is_refused_before_anything_runs(tmp_path: Path) -> None:
    workspace = workspace_for("ssh://trainer@gpu-box.example.com", "mrc-test/unused")
    job = RetrainJob(
        model="churn",
        commit="0" * 40,
        command="true",
        workdir=tmp_path,
        output=tmp_path,
        window_start=datetime(2026, 1, 1, tzinfo=UTC),
        window_end=datetime(2026, 1, 2, tzinfo=UTC),
        metrics_url="",
        trigger=Trigger(None, "", "", "ada@bastion"),
        branch="retrain/churn/20260101T000000Z",
        timeout=60,
    )

    with pytest.raises(ConfigError, match=r"gpu-box\.example\.com is remote"):
        list(executor_for(workspace).run(job, CancelToken()))
