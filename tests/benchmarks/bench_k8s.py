"""Kubernetes target benchmarks on the real control plane, each against a baseline of the same run.

1. Rollback latency: from calling :meth:`KubernetesTarget.rollback` to the API
   server's acknowledgement of the patch (the first progress step), versus the
   wall time of ``kubectl rollout undo`` (same reads, same patch, plus process
   start) on the same cluster. Goal: ratio <= 0.2.
2. Status of 1,000 Deployments: created in parallel, then read into
   ``RolloutState`` objects the way the Rollouts screen refreshes them
   (:meth:`KubernetesTarget.status` of every target, 16 at a time, on warm
   clients), versus ``kubectl get deployments -o json`` of the same namespace.

Run: ``.venv/bin/python -m tests.benchmarks.bench_k8s`` (starts the control
plane through tests/services unless ``make services-up`` already did).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from core.targets import k8s_status as st
from core.targets import kubernetes as k8s
from core.targets.k8s_api import api_for
from tests.benchmarks.summary import record

ROLLBACK_ROUNDS = 10
DEPLOYMENTS = 1000
STATUS_ROUNDS = 3
#: Parallel status reads, as the Rollouts screen's refresh does.
STATUS_WORKERS = 16


def _manifest(name: str, image: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "model", "image": image}]},
            },
        },
    }


def _wait_complete(api: Any, ns: str, name: str, timeout: float = 60.0) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
    deadline = time.monotonic() + timeout
    while True:
        dep = api.request("GET", path, timeout=10)
        observed = int((dep.get("status") or {}).get("observedGeneration", 0))
        if observed >= dep["metadata"]["generation"] and st.evaluate(dep).done:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{ns}/{name} did not complete")
        time.sleep(0.05)


def _set_image(api: Any, ns: str, name: str, image: str) -> None:
    api.request(
        "PATCH",
        f"/apis/apps/v1/namespaces/{ns}/deployments/{name}",
        body={"spec": {"template": {"spec": {"containers": [{"name": "model", "image": image}]}}}},
        content_type=k8s.STRATEGIC_PATCH,
        timeout=10,
    )


def bench_rollback(cluster: Any, api: Any, ns: str) -> float:
    """Print and return the median ratio of console rollback latency to kubectl's wall time."""
    for name in ("by-kubectl", "by-mrc"):
        api.request(
            "POST",
            f"/apis/apps/v1/namespaces/{ns}/deployments",
            body=_manifest(name, "reg/model:1", 1),
            timeout=10,
        )
        _wait_complete(api, ns, name)
        _set_image(api, ns, name, "reg/model:2")
        _wait_complete(api, ns, name)
    target = k8s.KubernetesTarget(
        "model", "bench", cluster.context, ns, "by-mrc", "model", kubeconfig=cluster.kubeconfig
    )
    target.status()  # a warm client, as in a running console
    kubectl_times, mrc_times = [], []
    for _ in range(ROLLBACK_ROUNDS):
        started = time.perf_counter()
        subprocess.run(
            [
                str(cluster.kubectl_path),
                f"--kubeconfig={cluster.kubeconfig}",
                "rollout",
                "undo",
                "deployment/by-kubectl",
                "-n",
                ns,
            ],
            check=True,
            capture_output=True,
        )
        kubectl_times.append(time.perf_counter() - started)

        started = time.perf_counter()
        steps = target.rollback(reason="benchmark")
        first = next(steps)  # yielded once the API server acknowledged the patch
        mrc_times.append(time.perf_counter() - started)
        steps.close()
        assert "rolled back to revision" in first.message, first.message
        _wait_complete(api, ns, "by-kubectl")
        _wait_complete(api, ns, "by-mrc")
    kubectl_ms = statistics.median(kubectl_times) * 1000
    mrc_ms = statistics.median(mrc_times) * 1000
    ratio = mrc_ms / kubectl_ms
    record("console rollback (confirm -> API ack)", "kubectl rollout undo", mrc_ms, kubectl_ms, 0.2)
    print(
        f"rollback latency: mrc {mrc_ms:.1f} ms (call -> patch acknowledged), "
        f"kubectl rollout undo {kubectl_ms:.1f} ms wall; median of {ROLLBACK_ROUNDS}; "
        f"ratio {ratio:.3f}x (goal <= 0.2x)"
    )
    return ratio


def bench_many(cluster: Any, api: Any, ns: str) -> float:
    """Print and return the ratio of reading 1,000 Deployments' states to kubectl's get."""
    started = time.perf_counter()

    def create(index: int) -> None:
        api.request(
            "POST",
            f"/apis/apps/v1/namespaces/{ns}/deployments",
            body=_manifest(f"m{index:04d}", f"reg/model:{index % 7}", 0),
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(create, range(DEPLOYMENTS)))
    print(f"created {DEPLOYMENTS} Deployments in {time.perf_counter() - started:.1f} s")

    targets = [
        k8s.KubernetesTarget(
            f"m{index:04d}",
            "bench",
            cluster.context,
            ns,
            f"m{index:04d}",
            "model",
            kubeconfig=cluster.kubeconfig,
        )
        for index in range(DEPLOYMENTS)
    ]
    mrc_times, kubectl_times = [], []
    states: list = []
    with ThreadPoolExecutor(max_workers=STATUS_WORKERS) as pool:
        for _ in range(STATUS_ROUNDS):
            started = time.perf_counter()
            states = list(pool.map(lambda target: target.status(), targets))
            mrc_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run(
                [
                    str(cluster.kubectl_path),
                    f"--kubeconfig={cluster.kubeconfig}",
                    "get",
                    "deployments",
                    "-n",
                    ns,
                    "-o",
                    "json",
                ],
                check=True,
                capture_output=True,
            )
            kubectl_times.append(time.perf_counter() - started)
    assert [s.image for s in states] == [f"reg/model:{i % 7}" for i in range(DEPLOYMENTS)]
    mrc_ms = min(mrc_times) * 1000
    kubectl_ms = min(kubectl_times) * 1000
    ratio = mrc_ms / kubectl_ms
    print(
        f"status of {DEPLOYMENTS} Deployments: KubernetesTarget.status() x{DEPLOYMENTS} "
        f"({STATUS_WORKERS} in parallel) {mrc_ms:.0f} ms, "
        f"kubectl get -o json {kubectl_ms:.0f} ms (best of {STATUS_ROUNDS}); ratio {ratio:.3f}x"
    )
    return ratio


def main() -> int:
    """Run both benchmarks on a control plane from tests/services; return the exit status."""
    from tests.services.fixtures import _Services

    services = _Services()
    suffix = uuid.uuid4().hex[:8]
    namespaces = [f"bench-undo-{suffix}", f"bench-many-{suffix}"]
    cluster = None
    try:
        cluster = services.k8s()
        for ns in namespaces:
            cluster.kubectl("create", "namespace", ns)
        api = api_for(cluster.context, cluster.kubeconfig)
        bench_rollback(cluster, api, namespaces[0])
        bench_many(cluster, api, namespaces[1])
    finally:
        if cluster is not None:
            for ns in namespaces:
                cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
