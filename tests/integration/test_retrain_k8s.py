"""The kubernetes retrain executor against the real control plane (kwok plays the kubelet).

kwok's stages take a Job's pod to Running and then Succeeded, so a Job made
from a valid template completes on its own. A pod whose nodeSelector matches
no node stays Pending (the real scheduler reports FailedScheduling): that is
how these tests make a Job fail, time out, or wait to be cancelled. The Job's
container cannot run git under kwok; pushing the branch is the service's
end-to-end test, not this one: these tests assert what the executor does.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.cancel import CancelToken
from core.config import parse
from core.domain import Progress
from core.errors import Cancelled, ConfigError, NotFound, OperationFailed, PermissionDenied
from core.retrain.base import RetrainJob, Trigger
from core.retrain.kubernetes import KubernetesExecutor, jobs_path
from core.services.workspace import Workspace
from core.targets.k8s_api import api_for, core_path
from tests.support.repos import BASE_TIME, commit_files, init_repo

pytestmark = [pytest.mark.integration, pytest.mark.k8s]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "retrain-job.yaml"

JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: replaced-by-mrc
  labels:
    team: ml
spec:
  backoffLimit: 0
  template:
    metadata:
      labels:
        app: churn-retrain
    spec:
      restartPolicy: Never
      containers:
        - name: train
          command: ["sh", "-c", "./retrain.sh"]
          env:
            - name: MRC_RETRAIN_MODEL
              value: overridden-by-mrc
            - name: EXTRA
              value: kept
"""

UNSCHEDULABLE = JOB.replace(
    "      restartPolicy: Never\n",
    "      restartPolicy: Never\n      nodeSelector:\n        pool: no-such-pool\n",
)
DEADLINE = UNSCHEDULABLE.replace(
    "  backoffLimit: 0\n", "  backoffLimit: 0\n  activeDeadlineSeconds: 2\n"
)
INVALID = JOB.replace("restartPolicy: Never", "restartPolicy: Always")
DEPLOYMENT = JOB.replace("apiVersion: batch/v1\nkind: Job", "apiVersion: apps/v1\nkind: Deployment")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = init_repo(tmp_path_factory.mktemp("retrain-k8s") / "repo")
    sha = commit_files(
        path,
        {
            "deploy/retrain-job.yaml": JOB,
            "deploy/unschedulable.yaml": UNSCHEDULABLE,
            "deploy/deadline.yaml": DEADLINE,
            "deploy/invalid.yaml": INVALID,
            "deploy/deployment.yaml": DEPLOYMENT,
            "deploy/example.yaml": EXAMPLE.read_text(),
        },
        "retrain job templates",
        when=BASE_TIME,
    )
    return path, sha


def executor_for(
    k8s_cluster: Any,
    repo: Path,
    namespace: str,
    *,
    template: str = "deploy/retrain-job.yaml",
    restricted: bool = False,
) -> KubernetesExecutor:
    context = k8s_cluster.restricted_context if restricted else k8s_cluster.context
    kubeconfig = k8s_cluster.restricted_kubeconfig if restricted else k8s_cluster.kubeconfig
    config = parse(
        f"""
[[model]]
name = "churn"
repo = "{repo}"
image = "registry.example/churn"

[[model.target]]
name = "cluster-a"
kind = "kubernetes"
context = "{context}"
kubeconfig = "{kubeconfig}"
namespace = "{namespace}"

[model.retrain]
command = "./retrain.sh"
executor = "kubernetes"
job_template = "{template}"
"""
    )
    workspace = Workspace(config, state_dir=Path("/nonexistent-state"))
    return KubernetesExecutor(workspace, workspace.model("churn"))


def make_job(sha: str, timeout: float = 120) -> RetrainJob:
    end = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    return RetrainJob(
        model="churn",
        commit=sha,
        command="./retrain.sh",
        workdir=Path("/unused"),
        output=Path("/unused"),
        window_start=end - timedelta(hours=6),
        window_end=end,
        metrics_url="http://prometheus.example:9090",
        trigger=Trigger(0.888, "psi", "training", "ada@bastion", "drift alert"),
        branch=f"retrain/churn/20260301T{uuid.uuid4().int % 1000000:06d}Z",
        timeout=timeout,
        remote="https://git.example/churn.git",
    )


class Cluster:
    def __init__(self, k8s_cluster: Any) -> None:
        self.api = api_for(k8s_cluster.context, k8s_cluster.kubeconfig)

    def jobs(self, ns: str) -> list[dict[str, Any]]:
        items, _ = self.api.list_all(jobs_path(ns), timeout=10)
        return items

    def pods(self, ns: str) -> list[dict[str, Any]]:
        items, _ = self.api.list_all(core_path(ns, "pods"), timeout=10)
        return items


@pytest.fixture(scope="module")
def cluster(k8s_cluster: Any) -> Cluster:
    return Cluster(k8s_cluster)


def test_job_from_the_template_runs_to_completion_with_labels_and_env(
    k8s_cluster: Any, k8s_namespace: str, repo: tuple[Path, str], cluster: Cluster
) -> None:
    path, sha = repo
    job = make_job(sha)

    items = list(executor_for(k8s_cluster, path, k8s_namespace).run(job, CancelToken()))

    messages = [p.message for p in items if p.step == "executor"]
    assert any("created" in m for m in messages)
    assert any(m.endswith(": Succeeded") and m.startswith("pod ") for m in messages)
    assert messages[-1].endswith("completed")
    [created] = cluster.jobs(k8s_namespace)
    meta = created["metadata"]
    assert meta["name"].startswith("mrc-retrain-churn-20260301t")
    assert meta["namespace"] == k8s_namespace
    mine = {
        "app.kubernetes.io/managed-by": "mrc",
        "mrc/model": "churn",
        "mrc/commit": sha[:8],
        "mrc/trigger": "drift",
    }
    assert meta["labels"] == {"team": "ml", **mine}
    assert meta["annotations"]["mrc/branch"] == job.branch
    assert meta["annotations"]["mrc/started-by"] == "ada@bastion"
    pod_meta = created["spec"]["template"]["metadata"]
    assert pod_meta["annotations"]["mrc/reason"] == "drift alert"
    pod_labels = pod_meta["labels"]
    assert {k: pod_labels[k] for k in ("app", *mine)} == {"app": "churn-retrain", **mine}
    [container] = created["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"registry.example/churn:{sha[:8]}"
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    assert env == {"EXTRA": "kept", **job.environment(workdir="", output="")}
    assert env["MRC_RETRAIN_BRANCH"] == job.branch
    assert env["MRC_RETRAIN_REMOTE"] == "https://git.example/churn.git"
    assert created["status"]["succeeded"] == 1


def test_failed_job_reports_its_reason_and_the_pod_events(
    k8s_cluster: Any, k8s_namespace: str, repo: tuple[Path, str], cluster: Cluster
) -> None:
    path, sha = repo
    executor = executor_for(k8s_cluster, path, k8s_namespace, template="deploy/deadline.yaml")
    seen: list[Progress] = []

    with pytest.raises(OperationFailed) as failed:
        for item in executor.run(make_job(sha), CancelToken()):
            seen.append(item)

    message = str(failed.value)
    assert "failed: DeadlineExceeded" in message
    assert "FailedScheduling" in message and "node affinity/selector" in message
    assert any(p.level == "warning" and "FailedScheduling" in p.message for p in seen)
    assert len(cluster.jobs(k8s_namespace)) == 1  # kept for inspection


def test_timeout_deletes_the_job_and_its_pods(
    k8s_cluster: Any, k8s_namespace: str, repo: tuple[Path, str], cluster: Cluster
) -> None:
    path, sha = repo
    executor = executor_for(k8s_cluster, path, k8s_namespace, template="deploy/unschedulable.yaml")

    with pytest.raises(OperationFailed, match=r"did not complete within 2s.*FailedScheduling"):
        list(executor.run(make_job(sha, timeout=2), CancelToken()))

    assert cluster.jobs(k8s_namespace) == []
    assert cluster.pods(k8s_namespace) == []


def test_cancel_deletes_the_job_and_its_pods(
    k8s_cluster: Any, k8s_namespace: str, repo: tuple[Path, str], cluster: Cluster
) -> None:
    path, sha = repo
    executor = executor_for(k8s_cluster, path, k8s_namespace, template="deploy/unschedulable.yaml")
    cancel = CancelToken()
    pods_before: list[dict[str, Any]] = []

    with pytest.raises(Cancelled, match="deleted"):
        for item in executor.run(make_job(sha), cancel):
            if item.step == "executor" and item.message.startswith("pod "):
                pods_before = cluster.pods(k8s_namespace)
                cancel.cancel()

    assert len(pods_before) == 1
    assert cluster.jobs(k8s_namespace) == []
    assert cluster.pods(k8s_namespace) == []


def test_template_the_api_rejects_is_a_config_error_with_its_message(
    k8s_cluster: Any, k8s_namespace: str, repo: tuple[Path, str], cluster: Cluster
) -> None:
    path, sha = repo
    executor = executor_for(k8s_cluster, path, k8s_namespace, template="deploy/invalid.yaml")

    with pytest.raises(ConfigError) as rejected:
        list(executor.run(make_job(sha), CancelToken()))

    text = str(rejected.value)
    assert f"deploy/invalid.yaml at commit {sha[:8]}" in text
    assert "the API server rejected the Job" in text
    assert 'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure"' in text
    assert cluster.jobs(k8s_namespace) == []


def test_missing_or_foreign_template_is_a_config_error(
    k8s_cluster: Any, k8s_namespace: str, repo: tuple[Path, str], cluster: Cluster
) -> None:
    path, sha = repo
    missing = executor_for(k8s_cluster, path, k8s_namespace, template="deploy/nope.yaml")
    with pytest.raises(ConfigError, match=rf"deploy/nope\.yaml does not exist at commit {sha[:8]}"):
        list(missing.run(make_job(sha), CancelToken()))

    foreign = executor_for(k8s_cluster, path, k8s_namespace, template="deploy/deployment.yaml")
    with pytest.raises(ConfigError, match="must be a batch/v1 Job, not apps/v1 Deployment"):
        list(foreign.run(make_job(sha), CancelToken()))

    assert cluster.jobs(k8s_namespace) == []


def test_user_without_rights_gets_the_api_refusal(
    k8s_cluster: Any, k8s_namespace: str, repo: tuple[Path, str]
) -> None:
    path, sha = repo
    executor = executor_for(k8s_cluster, path, k8s_namespace, restricted=True)

    with pytest.raises(PermissionDenied, match='cannot create resource "jobs"'):
        list(executor.run(make_job(sha), CancelToken()))


def test_missing_namespace_is_not_found(k8s_cluster: Any, repo: tuple[Path, str]) -> None:
    path, sha = repo
    executor = executor_for(k8s_cluster, path, f"absent-{uuid.uuid4().hex[:8]}")

    with pytest.raises(NotFound, match="not found"):
        list(executor.run(make_job(sha), CancelToken()))


def test_the_example_template_is_accepted_and_completes(
    k8s_cluster: Any, k8s_namespace: str, repo: tuple[Path, str], cluster: Cluster
) -> None:
    path, sha = repo
    executor = executor_for(k8s_cluster, path, k8s_namespace, template="deploy/example.yaml")

    items = list(executor.run(make_job(sha), CancelToken()))

    assert items[-1].message.endswith("completed")
    [created] = cluster.jobs(k8s_namespace)
    [container] = created["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"registry.example/churn:{sha[:8]}"
    names = [e["name"] for e in container["env"]]
    assert names[:2] == ["RETRAIN_STARTED_BY", "RETRAIN_REASON"]
    assert "MRC_RETRAIN_BRANCH" in names
