"""``mrc retrain --json`` with the kubernetes executor, end to end on the real control plane.

The model repository has a remote (a bare repository, ``origin``) and commits
its own Job template. kwok plays the kubelet and cannot run git, so the test
plays the Job's container: once the Job exists it reads the Job's
``MRC_RETRAIN_*`` variables and pushes the retrained commit to
``MRC_RETRAIN_BRANCH`` of the remote, as the container would. The template's
pod selects nodes by a label no node has yet (the gate); the test adds it to
the nodes once it pushed, so the Job completes only after the push, never
before, without any timing assumption.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from core.domain import Outcome
from core.retrain.kubernetes import LABEL_MODEL, jobs_path
from core.targets.k8s_api import Api, api_for, core_path
from tests.integration.test_cli_retrain import ROOT, env_for, journal_rows
from tests.support.repos import BASE_TIME, commit_files, git, init_repo
from tui.cli.output import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK

pytestmark = [pytest.mark.integration, pytest.mark.k8s]

#: Seconds allowed for the Job to appear, the CLI to finish, the Job to go.
WAIT = 90.0

T = TypeVar("T")

TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: set-by-mrc
  labels:
    team: ml
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      nodeSelector:
        {gate}: open
      containers:
        - name: train
          command: ["sh", "-ec", "./retrain.sh && git push origin HEAD:$MRC_RETRAIN_BRANCH"]
"""


@dataclass(frozen=True)
class Model:
    repo: Path
    remote: Path
    base: str
    gate: str  # the node label the Job's pod waits for
    config: Path
    state: Path


@pytest.fixture
def model(tmp_path: Path, k8s_cluster: Any, k8s_namespace: str) -> Iterator[Model]:
    remote = tmp_path / "churn.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    repo = init_repo(tmp_path / "churn")
    gate = f"mrc-test.example/gate-{uuid.uuid4().hex[:8]}"
    base = commit_files(
        repo,
        {"model.txt": "weights v1\n", "deploy/retrain-job.yaml": TEMPLATE.format(gate=gate)},
        "model v1",
        when=BASE_TIME,
    )
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    config = tmp_path / "mrc.toml"
    config.write_text(
        f"""
[[model]]
name = "churn"
repo = "{repo}"
image = "registry.example/churn"

[[model.target]]
name = "cluster-a"
kind = "kubernetes"
context = "{k8s_cluster.context}"
kubeconfig = "{k8s_cluster.kubeconfig}"
namespace = "{k8s_namespace}"

[model.retrain]
command = "./retrain.sh"
executor = "kubernetes"
timeout = "2m"
"""
    )
    yield Model(repo, remote, base, gate, config, tmp_path / "state")
    k8s_cluster.kubectl("label", "nodes", "--all", f"{gate}-", check=False)


class Cli:
    """``mrc retrain churn --yes --json`` running as a subprocess, its output in files."""

    def __init__(self, model: Model, tmp_path: Path) -> None:
        self.out = tmp_path / "stdout"
        self.err = tmp_path / "stderr"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tui.cli", "--config", str(model.config),
                 "retrain", "churn", "--reason", "drift alert", "--yes", "--json"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=ROOT,
                env=env_for(model.state),
            )  # fmt: skip

    def stderr(self) -> str:
        return self.err.read_text()

    def finish(self) -> tuple[int, dict[str, Any], str]:
        """Wait for the exit; return (exit code, the JSON document, stderr)."""
        code = self.proc.wait(timeout=WAIT)
        return code, json.loads(self.out.read_text()), self.stderr()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def cli(model: Model, tmp_path: Path) -> Iterator[Callable[[], Cli]]:
    started: list[Cli] = []

    def start() -> Cli:
        started.append(Cli(model, tmp_path))
        return started[-1]

    yield start
    for one in started:
        one.kill()


def wait_for(what: str, probe: Callable[[], T | None], cli: Cli) -> T:
    """Return ``probe()``'s first non-None answer; fail with the CLI's output after WAIT s."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        if cli.proc.poll() is not None:
            pytest.fail(f"mrc exited ({cli.proc.returncode}) before {what}:\n{cli.stderr()}")
        time.sleep(0.2)
    pytest.fail(f"no {what} within {WAIT:g}s; mrc said:\n{cli.stderr()}")


def admin(k8s_cluster: Any) -> Api:
    return api_for(k8s_cluster.context, k8s_cluster.kubeconfig)


def jobs(api: Api, namespace: str) -> list[dict[str, Any]]:
    items, _ = api.list_all(
        jobs_path(namespace), timeout=10, query=[("labelSelector", f"{LABEL_MODEL}=churn")]
    )
    return items


def pods(api: Api, namespace: str) -> list[dict[str, Any]]:
    items, _ = api.list_all(core_path(namespace, "pods"), timeout=10)
    return items


def the_job(api: Api, namespace: str, cli: Cli) -> dict[str, Any]:
    """Wait for the retrain's Job (by its ``mrc/model`` label) and its pod; return the Job."""
    job = wait_for("retrain Job", lambda: next(iter(jobs(api, namespace)), None), cli)
    wait_for("Job's pod", lambda: pods(api, namespace) or None, cli)
    return job


def env_of(job: dict[str, Any]) -> dict[str, str]:
    [container] = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def push_as_the_container(job: dict[str, Any], tmp_path: Path, *, descend: bool = True) -> str:
    """Do what the Job's container does: clone, retrain, commit, push the branch; return the sha.

    ``descend`` False pushes a commit of an unrelated history instead.
    """
    env = env_of(job)
    work = tmp_path / "container"
    git(tmp_path, "clone", "-q", env["MRC_RETRAIN_REMOTE"], str(work))
    if descend:
        git(work, "checkout", "-q", "--detach", env["MRC_RETRAIN_COMMIT"])
    else:
        git(work, "checkout", "-q", "--orphan", "elsewhere")
    (work / "model.txt").write_text(f"weights for {env['MRC_RETRAIN_WINDOW_START']}\n")
    git(work, "add", "model.txt")
    message = (
        f"Retrain {env['MRC_RETRAIN_MODEL']}\n\nRetrain-Base: {env['MRC_RETRAIN_COMMIT']}\n"
        "Retrain-Executor: kubernetes\n"
    )
    git(work, "commit", "-q", "-m", message, when=BASE_TIME + 60)
    git(work, "push", "-q", "origin", f"HEAD:refs/heads/{env['MRC_RETRAIN_BRANCH']}")
    return git(work, "rev-parse", "HEAD")


def open_gate(k8s_cluster: Any, model: Model) -> None:
    """Give the nodes the label the Job's pod selects: it is scheduled and kwok completes it."""
    k8s_cluster.kubectl("label", "nodes", "--all", f"{model.gate}=open", "--overwrite")


def local_retrain_branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/retrain").split()


def test_the_pushed_branch_is_fetched_checked_and_journalled(
    k8s_cluster: Any,
    k8s_namespace: str,
    model: Model,
    cli: Callable[[], Cli],
    tmp_path: Path,
) -> None:
    api = admin(k8s_cluster)
    run = cli()
    job = the_job(api, k8s_namespace, run)

    # The Job is the template committed in the repository, plus what mrc sets.
    assert job["metadata"]["labels"]["team"] == "ml"
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {model.gate: "open"}
    env = env_of(job)
    assert (env["MRC_RETRAIN_COMMIT"], env["MRC_RETRAIN_REMOTE"]) == (model.base, str(model.remote))
    assert env["MRC_RETRAIN_BRANCH"].startswith("retrain/churn/")
    pushed = push_as_the_container(job, tmp_path)
    open_gate(k8s_cluster, model)

    code, doc, stderr = run.finish()

    assert code == EXIT_OK, stderr
    assert (doc["base"], doc["commit"], doc["branch"]) == (
        model.base, pushed, env["MRC_RETRAIN_BRANCH"],
    )  # fmt: skip
    assert doc["files"] == ["model.txt"]
    assert local_retrain_branches(model.repo) == [doc["branch"]]
    assert git(model.repo, "rev-parse", doc["branch"]) == pushed
    shown = git(model.repo, "show", f"{pushed}:model.txt")
    assert shown == f"weights for {env['MRC_RETRAIN_WINDOW_START']}"
    assert git(model.repo, "rev-parse", "HEAD") == model.base  # the user's checkout stays
    assert "completed" in stderr
    [row] = journal_rows(model.state)
    assert (row.id, row.action, row.outcome) == (doc["journal_id"], "retrain", Outcome.DONE)
    assert row.details["executor"] == "kubernetes"
    assert (row.details["branch"], row.details["new_commit"]) == (doc["branch"], pushed)


def test_a_branch_not_descending_from_the_base_is_refused(
    k8s_cluster: Any,
    k8s_namespace: str,
    model: Model,
    cli: Callable[[], Cli],
    tmp_path: Path,
) -> None:
    api = admin(k8s_cluster)
    run = cli()
    job = the_job(api, k8s_namespace, run)
    pushed = push_as_the_container(job, tmp_path, descend=False)
    open_gate(k8s_cluster, model)

    code, doc, stderr = run.finish()

    assert code == EXIT_FAILED, stderr
    branch = env_of(job)["MRC_RETRAIN_BRANCH"]
    expected = (
        f"branch {branch} ({pushed[:8]}) does not descend from {model.base[:8]}, the commit "
        "the retrain started from: not taken"
    )
    assert expected in doc["error"]
    assert local_retrain_branches(model.repo) == []
    [row] = journal_rows(model.state)
    assert (row.action, row.outcome) == ("retrain", Outcome.FAILED)
    assert expected in row.error


def test_ctrl_c_deletes_the_job_and_its_pods(
    k8s_cluster: Any, k8s_namespace: str, model: Model, cli: Callable[[], Cli]
) -> None:
    api = admin(k8s_cluster)
    run = cli()
    the_job(api, k8s_namespace, run)  # running, its pod waiting for the gate

    run.proc.send_signal(signal.SIGINT)
    code = run.proc.wait(timeout=WAIT)

    stderr = run.stderr()
    assert code == EXIT_CANCELLED, stderr
    assert "and its pods were deleted" in stderr
    assert jobs(api, k8s_namespace) == []
    assert pods(api, k8s_namespace) == []
    assert local_retrain_branches(model.repo) == []
    [row] = journal_rows(model.state)
    assert (row.action, row.outcome, row.error) == ("retrain", Outcome.FAILED, "cancelled")
