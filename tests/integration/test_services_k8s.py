"""The Kubernetes control plane is real: Deployments roll out through the real controllers,
pods become Ready through kwok, kubectl rollout history/undo behave, RBAC denies."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.k8s]


def _deployment(name: str, image: str, replicas: int = 2) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "server", "image": image}]},
            },
        },
    }


def _apply(cluster, namespace: str, obj: dict) -> None:
    subprocess.run(
        [str(cluster.kubectl_path), f"--kubeconfig={cluster.kubeconfig}", "-n", namespace,
         "apply", "-f", "-"],
        input=json.dumps(obj), text=True, check=True, capture_output=True,
    )  # fmt: skip


def _pods(cluster, namespace: str, name: str) -> list[dict]:
    out = cluster.kubectl("-n", namespace, "get", "pods", "-l", f"app={name}", "-o", "json")
    return [
        p for p in json.loads(out.stdout)["items"] if not p["metadata"].get("deletionTimestamp")
    ]


def _ready(pod: dict) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _rollout_status(cluster, namespace: str, name: str) -> str:
    out = cluster.kubectl(
        "-n", namespace, "rollout", "status", f"deployment/{name}", "--timeout=90s"
    )
    return out.stdout


def test_rollout_history_and_undo(k8s_cluster, k8s_namespace):
    ns, name = k8s_namespace, "smoke"
    _apply(k8s_cluster, ns, _deployment(name, "registry.example/model:v1"))
    assert "successfully rolled out" in _rollout_status(k8s_cluster, ns, name)
    pods = _pods(k8s_cluster, ns, name)
    assert len(pods) == 2 and all(_ready(p) for p in pods)
    assert {p["spec"]["nodeName"] for p in pods} == {"kwok-node-0"}

    k8s_cluster.kubectl(
        "-n", ns, "set", "image", f"deployment/{name}", "server=registry.example/model:v2"
    )
    assert "successfully rolled out" in _rollout_status(k8s_cluster, ns, name)
    pods = _pods(k8s_cluster, ns, name)
    assert [p["spec"]["containers"][0]["image"] for p in pods] == ["registry.example/model:v2"] * 2
    assert all(_ready(p) for p in pods)

    history = k8s_cluster.kubectl("-n", ns, "rollout", "history", f"deployment/{name}").stdout
    revisions = [line.split()[0] for line in history.splitlines()[2:] if line.strip()]
    assert revisions == ["1", "2"]
    rev1 = k8s_cluster.kubectl(
        "-n", ns, "rollout", "history", f"deployment/{name}", "--revision=1"
    ).stdout
    assert "registry.example/model:v1" in rev1

    undo = k8s_cluster.kubectl("-n", ns, "rollout", "undo", f"deployment/{name}")
    assert "rolled back" in undo.stdout
    assert "successfully rolled out" in _rollout_status(k8s_cluster, ns, name)
    pods = _pods(k8s_cluster, ns, name)
    assert [p["spec"]["containers"][0]["image"] for p in pods] == ["registry.example/model:v1"] * 2
    history = k8s_cluster.kubectl("-n", ns, "rollout", "history", f"deployment/{name}").stdout
    revisions = [line.split()[0] for line in history.splitlines()[2:] if line.strip()]
    # Rolling back re-labels the old ReplicaSet as the newest revision.
    assert revisions == ["2", "3"]


def test_restricted_user_can_read_but_not_update(k8s_cluster, k8s_namespace):
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    ns, name = k8s_namespace, "guarded"
    _apply(k8s_cluster, ns, _deployment(name, "registry.example/model:v1", replicas=1))
    viewer = k8s_cluster.restricted_kubeconfig

    got = k8s_cluster.kubectl("-n", ns, "get", f"deployment/{name}", kubeconfig=viewer)
    assert name in got.stdout
    denied = k8s_cluster.kubectl(
        "-n", ns, "set", "image", f"deployment/{name}", "server=x:v2",
        kubeconfig=viewer, check=False,
    )  # fmt: skip
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr

    api_client = config.new_client_from_config(
        config_file=str(viewer), context=k8s_cluster.restricted_context
    )
    apps = client.AppsV1Api(api_client)
    assert apps.read_namespaced_deployment(name, ns).spec.replicas == 1
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale(name, ns, {"spec": {"replicas": 3}})
    assert err.value.status == 403

    admin = client.AppsV1Api(
        config.new_client_from_config(config_file=str(k8s_cluster.kubeconfig),
                                      context=k8s_cluster.context)
    )  # fmt: skip
    assert admin.read_namespaced_deployment(name, ns).spec.replicas == 1


def test_apiserver_stop_and_start_keeps_state(k8s_cluster, k8s_namespace):
    k8s_cluster.kubectl("-n", k8s_namespace, "create", "configmap", "kept", "--from-literal=a=1")
    k8s_cluster.stop_apiserver()
    try:
        down = k8s_cluster.kubectl(
            "-n", k8s_namespace, "get", "configmap", "kept", "--request-timeout=3s", check=False
        )
        assert down.returncode != 0
    finally:
        k8s_cluster.start_apiserver()
    up = k8s_cluster.kubectl("-n", k8s_namespace, "get", "configmap", "kept", "-o", "json")
    assert json.loads(up.stdout)["data"] == {"a": "1"}
    version = json.loads(k8s_cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == version["clientVersion"]["gitVersion"]


def test_fake_node_lease_is_renewed(k8s_cluster):
    # Without renewals the node lifecycle controller marks the Node NotReady after its grace
    # period, and with it every pod unready, in the middle of long test sessions.
    def renew_time() -> datetime:
        out = k8s_cluster.kubectl(
            "-n", "kube-node-lease", "get", "lease", "kwok-node-0", "-o", "json"
        )
        return datetime.fromisoformat(json.loads(out.stdout)["spec"]["renewTime"])

    first = renew_time()
    deadline = time.monotonic() + 30
    while renew_time() == first:
        assert time.monotonic() < deadline, "lease not renewed within 30 s"
        time.sleep(1)
    ready = k8s_cluster.kubectl(
        "get", "node", "kwok-node-0", "-o",
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
    )  # fmt: skip
    assert ready.stdout == "True"
