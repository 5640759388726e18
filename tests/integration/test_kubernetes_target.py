"""KubernetesTarget against the real control plane (kube-apiserver, controllers, kwok nodes).

Rollback equivalence: for each scenario two identical Deployments with identical
histories are made in two namespaces (so even their ReplicaSet names match);
``kubectl rollout undo`` runs on one and :meth:`KubernetesTarget.rollback` on the
other, and the results (template, annotations, history, refusals) must be equal.
"""

from __future__ import annotations

import contextlib
import copy
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from core.cancel import CancelToken
from core.domain import Artifact, Phase, TargetEvent
from core.errors import BackendUnavailable, Conflict, NotFound, OperationFailed, PermissionDenied
from core.targets import k8s_status as st
from core.targets import kubernetes as k8s
from core.targets.base import ACTIONS, Target
from core.targets.k8s_api import api_for

pytestmark = [pytest.mark.integration, pytest.mark.k8s]

NAME = "model"
EXTRA = {
    "team": "ml-platform",
    "kubectl.kubernetes.io/last-applied-configuration": '{"note":"same on both"}',
}


def manifest(image: str, *, annotations: dict[str, str] | None = None, replicas: int = 2) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "annotations": dict(annotations or {})},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": NAME}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {
                    "containers": [
                        {"name": "model", "image": image, "env": [{"name": "MODE", "value": "a"}]},
                        {"name": "proxy", "image": "proxy:1"},
                    ]
                },
            },
        },
    }


class Cluster:
    """Small helpers over the admin connection."""

    def __init__(self, k8s_cluster: Any) -> None:
        self.raw = k8s_cluster
        self.api = api_for(k8s_cluster.context, k8s_cluster.kubeconfig)

    def path(self, ns: str, name: str = NAME) -> str:
        return f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"

    def create(self, ns: str, body: dict) -> dict:
        return self.api.request(
            "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body=body, timeout=10
        )

    def get(self, ns: str, name: str = NAME) -> dict:
        return self.api.request("GET", self.path(ns, name), timeout=10)

    def patch(self, ns: str, body: dict, name: str = NAME) -> dict:
        return self.api.request(
            "PATCH",
            self.path(ns, name),
            body=body,
            content_type=k8s.STRATEGIC_PATCH,
            timeout=10,
        )

    def set_image(
        self, ns: str, image: str, cause: str = "", name: str = NAME, **annotations: str
    ) -> dict:
        body: dict[str, Any] = {
            "spec": {"template": {"spec": {"containers": [{"name": "model", "image": image}]}}}
        }
        if cause:
            annotations[st.CHANGE_CAUSE_ANNOTATION] = cause
        if annotations:
            body["metadata"] = {"annotations": annotations}
        return self.patch(ns, body, name)

    def wait_complete(self, ns: str, name: str = NAME, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            dep = self.get(ns, name)
            status = dep.get("status") or {}
            observed = int(status.get("observedGeneration", 0))
            if observed >= dep["metadata"]["generation"] and st.evaluate(dep).done:
                return dep
            if time.monotonic() > deadline:
                raise AssertionError(f"{ns}/{name} did not complete: {status}")
            time.sleep(0.1)

    def replicasets(self, ns: str) -> list[dict]:
        listed = self.api.request("GET", f"/apis/apps/v1/namespaces/{ns}/replicasets", timeout=10)
        return list(listed["items"])

    def annotate_rs(self, ns: str, revision: int, annotations: dict[str, str]) -> None:
        for rs in self.replicasets(ns):
            if st.revision_of(rs) == revision:
                self.api.request(
                    "PATCH",
                    f"/apis/apps/v1/namespaces/{ns}/replicasets/{rs['metadata']['name']}",
                    body={"metadata": {"annotations": annotations}},
                    content_type=k8s.MERGE_PATCH,
                    timeout=10,
                )
                return
        raise AssertionError(f"no revision {revision} in {ns}")


@pytest.fixture(scope="module")
def cluster(k8s_cluster: Any) -> Cluster:
    return Cluster(k8s_cluster)


@pytest.fixture
def second_namespace(k8s_cluster: Any) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    k8s_cluster.kubectl("create", "namespace", name)
    yield name
    with contextlib.suppress(Exception):
        k8s_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def target_for(k8s_cluster: Any, ns: str, *, restricted: bool = False, **kw: Any) -> Any:
    return k8s.KubernetesTarget(
        model="model",
        name="test",
        context=k8s_cluster.restricted_context if restricted else k8s_cluster.context,
        namespace=ns,
        deployment=kw.pop("deployment", NAME),
        container="model",
        kubeconfig=k8s_cluster.restricted_kubeconfig if restricted else k8s_cluster.kubeconfig,
        timeout=kw.pop("timeout", 10.0),
    )


def build_history(cluster: Cluster, ns: str, *, extra: bool = False) -> None:
    """Revision 1 (reg/model:1), 2 (reg/model:2), 3 (reg/model:3), each rolled out.

    With ``extra``: annotations on the Deployment from the start (EXTRA), one more
    ("owner") set together with revision 3 only, and one added to revision 2's
    ReplicaSet by hand afterwards.
    """
    cluster.create(ns, manifest("reg/model:1", annotations=EXTRA if extra else None))
    cluster.wait_complete(ns)
    cluster.set_image(ns, "reg/model:2", cause="deploy 2")
    cluster.wait_complete(ns)
    more = {"owner": "alice"} if extra else {}
    cluster.set_image(ns, "reg/model:3", cause="deploy 3", **more)
    cluster.wait_complete(ns)
    if extra:
        cluster.annotate_rs(ns, 2, {"note": "verified by hand"})


def build_twins(cluster: Cluster, a: str, b: str, *, extra: bool = False) -> None:
    """The same history in two namespaces, built side by side."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(build_history, cluster, ns, extra=extra) for ns in (a, b)]:
            future.result()


def same_result(cluster: Cluster, a: str, b: str) -> None:
    da, db = cluster.wait_complete(a), cluster.wait_complete(b)
    assert da["spec"]["template"] == db["spec"]["template"]
    assert da["metadata"]["annotations"] == db["metadata"]["annotations"]
    assert da["spec"].get("paused") == db["spec"].get("paused")
    assert da["metadata"]["generation"] == db["metadata"]["generation"]


def assert_unchanged(before: dict, after: dict) -> None:
    """Nothing a write could have touched changed (status may move on its own)."""
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert after["spec"] == before["spec"]


def histories(k8s_cluster: Any, a: str, b: str) -> tuple[list, list]:
    def rows(ns: str) -> list:
        return [
            (r.number, r.image, r.change_cause, r.current)
            for r in target_for(k8s_cluster, ns).history()
        ]

    return rows(a), rows(b)


def kubectl_undo(k8s_cluster: Any, ns: str, *args: str) -> Any:
    return k8s_cluster.kubectl(
        "rollout", "undo", f"deployment/{NAME}", "-n", ns, *args, check=False
    )


# --------------------------------------------------------------------------
# Rollback equivalence with kubectl


@pytest.mark.parametrize(
    ("to_revision", "kubectl_args", "extra"),
    [
        (None, [], False),
        (1, ["--to-revision=1"], False),
        (None, [], True),
        (2, ["--to-revision=2"], True),
    ],
    ids=["previous", "to-revision", "extra-annotations-previous", "extra-annotations-to-2"],
)
def test_rollback_equals_kubectl_rollout_undo(
    k8s_cluster: Any,
    cluster: Cluster,
    k8s_namespace: str,
    second_namespace: str,
    to_revision: int | None,
    kubectl_args: list[str],
    extra: bool,
) -> None:
    ours, theirs = k8s_namespace, second_namespace
    build_twins(cluster, ours, theirs, extra=extra)
    before = cluster.get(ours)

    done = kubectl_undo(k8s_cluster, theirs, *kubectl_args)
    assert done.returncode == 0, done.stderr
    assert "rolled back" in done.stdout
    target = target_for(k8s_cluster, ours)
    preview = target.preview_rollback(to_revision)
    steps = list(target.rollback(to_revision, reason="equivalence"))

    expected_image = f"reg/model:{to_revision or 2}"
    assert (preview.from_revision, preview.to_revision) == (3, to_revision or 2)
    assert (preview.from_image, preview.to_image) == ("reg/model:3", expected_image)
    assert re.search(rf"^\+\s+(- )?image: {re.escape(expected_image)}$", preview.diff, re.M)
    assert re.search(r"^-\s+(- )?image: reg/model:3$", preview.diff, re.M)
    assert not preview.noop
    assert steps[0].message.endswith(
        f"rolled back to revision {to_revision or 2} ({expected_image})"
    )
    assert steps[-1].fraction == 1.0
    same_result(cluster, ours, theirs)
    after = cluster.get(ours)
    assert after["metadata"]["annotations"] != before["metadata"]["annotations"]
    if extra:
        ann = after["metadata"]["annotations"]
        assert ann["team"] == EXTRA["team"]  # copied from the revision's ReplicaSet
        assert "owner" not in ann  # revision 2 predates it: kubectl drops it, so do we
        if to_revision == 2:
            assert ann["note"] == "verified by hand"
    mine, kubectls = histories(k8s_cluster, ours, theirs)
    assert mine == kubectls
    assert mine[0][0] == 4 and mine[0][3]
    ours_text = k8s_cluster.kubectl("rollout", "history", f"deployment/{NAME}", "-n", ours)
    theirs_text = k8s_cluster.kubectl("rollout", "history", f"deployment/{NAME}", "-n", theirs)
    assert ours_text.stdout.replace(ours, "NS") == theirs_text.stdout.replace(theirs, "NS")


def test_paused_deployment_is_refused_like_kubectl(
    k8s_cluster: Any, cluster: Cluster, k8s_namespace: str, second_namespace: str
) -> None:
    ours, theirs = k8s_namespace, second_namespace
    build_twins(cluster, ours, theirs)
    k8s_cluster.kubectl("rollout", "pause", f"deployment/{NAME}", "-n", theirs)
    target = target_for(k8s_cluster, ours)
    target.pause()
    before = cluster.get(ours)

    refused = kubectl_undo(k8s_cluster, theirs)
    assert refused.returncode != 0
    with pytest.raises(OperationFailed) as preview_error:
        target.preview_rollback()
    with pytest.raises(OperationFailed) as error:
        list(target.rollback())
    assert refused.stderr.strip() == f"error: {error.value}"
    assert str(preview_error.value) == str(error.value)
    assert_unchanged(before, cluster.get(ours))
    assert target.status().phase is Phase.PAUSED
    same_result(cluster, ours, theirs)


def test_template_already_equal_is_skipped_like_kubectl(
    k8s_cluster: Any, cluster: Cluster, k8s_namespace: str, second_namespace: str
) -> None:
    ours, theirs = k8s_namespace, second_namespace
    build_twins(cluster, ours, theirs)
    before = cluster.get(ours)
    skipped = kubectl_undo(k8s_cluster, theirs, "--to-revision=3")
    assert skipped.returncode == 0, skipped.stderr
    target = target_for(k8s_cluster, ours)
    preview = target.preview_rollback(3)
    steps = list(target.rollback(3))
    assert preview.noop and preview.diff == ""
    assert [s.message for s in steps] == [
        "skipped rollback (current template already matches revision 3)"
    ]
    assert skipped.stdout.strip() == f"deployment.apps/{NAME} {steps[0].message}"
    assert_unchanged(before, cluster.get(ours))
    same_result(cluster, ours, theirs)


@pytest.mark.parametrize("revision", [9, -1])
def test_missing_revision_is_refused_like_kubectl(
    k8s_cluster: Any,
    cluster: Cluster,
    k8s_namespace: str,
    second_namespace: str,
    revision: int,
) -> None:
    ours, theirs = k8s_namespace, second_namespace
    build_twins(cluster, ours, theirs)
    refused = kubectl_undo(k8s_cluster, theirs, f"--to-revision={revision}")
    assert refused.returncode != 0
    target = target_for(k8s_cluster, ours)
    with pytest.raises(NotFound) as error:
        list(target.rollback(revision))
    assert refused.stderr.strip() == f"error: {error.value}"
    same_result(cluster, ours, theirs)


def test_no_previous_revision_is_refused_like_kubectl(
    k8s_cluster: Any, cluster: Cluster, k8s_namespace: str, second_namespace: str
) -> None:
    for ns in (k8s_namespace, second_namespace):
        cluster.create(ns, manifest("reg/model:1", replicas=1))
        cluster.wait_complete(ns)
    refused = kubectl_undo(k8s_cluster, second_namespace)
    assert refused.returncode != 0
    with pytest.raises(NotFound) as error:
        target_for(k8s_cluster, k8s_namespace).preview_rollback()
    assert refused.stderr.strip() == f"error: {error.value}"
    same_result(cluster, k8s_namespace, second_namespace)


# --------------------------------------------------------------------------
# Rollout, status, history, detail


def test_rollout_is_watched_to_completion(
    k8s_cluster: Any, cluster: Cluster, k8s_namespace: str
) -> None:
    cluster.create(k8s_namespace, manifest("reg/model:1", replicas=3))
    cluster.wait_complete(k8s_namespace)
    target = target_for(k8s_cluster, k8s_namespace)
    assert isinstance(target, Target)
    steps = list(
        target.rollout(Artifact(image="reg/model:2", commit="c0ffee" * 6), reason="new weights")
    )
    assert steps[-1].fraction == 1.0
    assert "successfully rolled out (revision 2)" in steps[-1].message
    state = target.status()
    assert state.phase is Phase.COMPLETE
    assert (state.revision, state.image, state.commit) == (2, "reg/model:2", "c0ffee" * 6)
    assert (state.desired, state.updated, state.available, state.ready) == (3, 3, 3, 3)
    status = k8s_cluster.kubectl(
        "rollout", "status", f"deployment/{NAME}", "-n", k8s_namespace, "--timeout=5s"
    )
    assert "successfully rolled out" in status.stdout

    revisions = target.history()
    assert [r.number for r in revisions] == [2, 1]
    assert revisions[0].current and not revisions[1].current
    assert revisions[0].image == "reg/model:2"
    assert revisions[0].commit == "c0ffee" * 6
    assert revisions[0].change_cause.startswith(
        "mrc: rollout reg/model:2 (commit c0ffeec0ffee) by "
    )
    assert revisions[0].change_cause.endswith(": new weights")
    printed = k8s_cluster.kubectl("rollout", "history", f"deployment/{NAME}", "-n", k8s_namespace)
    assert revisions[0].change_cause in printed.stdout

    detail = target.detail()
    assert len([p for p in detail.pods if p.phase == "Running"]) == 3
    assert all(p.image == "reg/model:2" and p.ready for p in detail.pods if p.phase == "Running")
    assert {c.type for c in detail.conditions} >= {"Available", "Progressing"}
    assert any(e.reason == "ScalingReplicaSet" for e in detail.events)
    assert [e.time for e in detail.events] == sorted(e.time for e in detail.events)

    # the previous revision is now one key away, and it carries no console commit
    preview = target.preview_rollback()
    assert (preview.to_revision, preview.to_image, preview.to_commit) == (1, "reg/model:1", "")
    assert preview.from_commit == "c0ffee" * 6


def test_progress_deadline_exceeded_fails_the_rollout(
    k8s_cluster: Any, cluster: Cluster, k8s_namespace: str
) -> None:
    body = manifest("reg/model:1", replicas=1)
    body["spec"]["progressDeadlineSeconds"] = 2
    cluster.create(k8s_namespace, body)
    cluster.wait_complete(k8s_namespace)
    target = target_for(k8s_cluster, k8s_namespace)
    # pods of the new revision can never be scheduled: no node has this label
    cluster.patch(
        k8s_namespace,
        {"spec": {"template": {"spec": {"nodeSelector": {"mrc.dev/nowhere": "true"}}}}},
    )
    started = time.monotonic()
    with pytest.raises(OperationFailed, match="exceeded its progress deadline"):
        list(target.rollout(Artifact(image="reg/model:2")))
    assert time.monotonic() - started < 60
    assert target.status().phase is Phase.FAILED


def test_pause_resume_restart(k8s_cluster: Any, cluster: Cluster, k8s_namespace: str) -> None:
    cluster.create(k8s_namespace, manifest("reg/model:1", replicas=1))
    cluster.wait_complete(k8s_namespace)
    target = target_for(k8s_cluster, k8s_namespace)
    target.pause()
    assert cluster.get(k8s_namespace)["spec"]["paused"] is True
    with pytest.raises(OperationFailed) as error:
        target.restart()
    refused = k8s_cluster.kubectl(
        "rollout", "restart", f"deployment/{NAME}", "-n", k8s_namespace, check=False
    )
    assert str(error.value) in refused.stderr
    target.resume()
    target.restart()
    dep = cluster.wait_complete(k8s_namespace)
    assert k8s.RESTARTED_AT in dep["spec"]["template"]["metadata"]["annotations"]
    assert st.revision_of(dep) == 2


def test_status_of_each_deployment_and_of_a_missing_one(
    k8s_cluster: Any, cluster: Cluster, k8s_namespace: str
) -> None:
    for index in range(3):
        body = manifest(f"reg/model:{index}", replicas=0)
        body["metadata"]["name"] = f"m{index}"
        body["spec"]["selector"]["matchLabels"]["app"] = f"m{index}"
        body["spec"]["template"]["metadata"]["labels"]["app"] = f"m{index}"
        cluster.create(k8s_namespace, body)
    targets = [target_for(k8s_cluster, k8s_namespace, deployment=f"m{i}") for i in (2, 0, 1)]
    assert [t.status().image for t in targets] == ["reg/model:2", "reg/model:0", "reg/model:1"]
    with pytest.raises(NotFound, match=f"deployment {k8s_namespace}/absent not found"):
        target_for(k8s_cluster, k8s_namespace, deployment="absent").status()


# --------------------------------------------------------------------------
# Concurrency


def test_change_after_preview_is_a_conflict(
    k8s_cluster: Any, cluster: Cluster, k8s_namespace: str
) -> None:
    build_history(cluster, k8s_namespace)
    target = target_for(k8s_cluster, k8s_namespace)
    preview = target.preview_rollback()
    # another operator ships revision 4 while the confirm dialog is open
    k8s_cluster.kubectl(
        "set", "image", f"deployment/{NAME}", "model=reg/model:4", "-n", k8s_namespace
    )
    with pytest.raises(Conflict) as error:
        list(target.rollback(expected=preview))
    assert "previewed revision 3 reg/model:3" in str(error.value)
    assert "nothing was applied" in str(error.value)
    dep = cluster.get(k8s_namespace)
    assert st.container_image(dep["spec"]["template"], "model") == "reg/model:4"


def test_change_between_read_and_write_is_a_conflict(
    k8s_cluster: Any, cluster: Cluster, k8s_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_history(cluster, k8s_namespace)
    target = target_for(k8s_cluster, k8s_namespace)
    original = target._replicasets

    def racing(dep: dict) -> list:
        result = original(dep)
        cluster.set_image(k8s_namespace, "reg/model:racer")  # lands after our read
        return result

    monkeypatch.setattr(target, "_replicasets", racing)
    with pytest.raises(Conflict, match=r"image reg/model:3 -> reg/model:racer"):
        list(target.rollback())
    dep = cluster.get(k8s_namespace)
    assert st.container_image(dep["spec"]["template"], "model") == "reg/model:racer"

    # the same race on a rollout (strategic merge patch carrying resourceVersion -> 409)
    monkeypatch.undo()
    cluster.wait_complete(k8s_namespace)
    original_name = target._container_name

    def racing_name(dep: dict) -> str:
        cluster.set_image(k8s_namespace, "reg/model:racer2")
        return original_name(dep)

    monkeypatch.setattr(target, "_container_name", racing_name)
    with pytest.raises(Conflict, match=r"image reg/model:racer -> reg/model:racer2"):
        list(target.rollout(Artifact(image="reg/model:mine")))
    dep = cluster.get(k8s_namespace)
    assert st.container_image(dep["spec"]["template"], "model") == "reg/model:racer2"


def test_status_only_change_between_read_and_write_is_retried(
    k8s_cluster: Any, cluster: Cluster, k8s_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_history(cluster, k8s_namespace)
    target = target_for(k8s_cluster, k8s_namespace)
    original = target._replicasets

    def status_update(dep: dict) -> list:
        result = original(dep)
        status = copy.deepcopy(dep["status"])
        status["conditions"][0]["message"] = "touched by a controller"
        cluster.api.request(
            "PATCH",
            cluster.path(k8s_namespace) + "/status",
            body={"status": {"conditions": status["conditions"]}},
            content_type=k8s.MERGE_PATCH,
            timeout=10,
        )
        return result

    monkeypatch.setattr(target, "_replicasets", status_update)
    steps = list(target.rollback())
    assert steps[-1].fraction == 1.0
    assert target.status().revision == 4
    assert target.status().image == "reg/model:2"


def test_rollback_after_its_preview_sends_only_the_patch_and_survives_a_status_update(
    k8s_cluster: Any, cluster: Cluster, k8s_namespace: str
) -> None:
    build_history(cluster, k8s_namespace)
    target = target_for(k8s_cluster, k8s_namespace)
    preview = target.preview_rollback()
    sent: list[str] = []
    request = target.api.request

    def spy(method: str, path: str, **kwargs: Any) -> Any:
        sent.append(method)
        return request(method, path, **kwargs)

    target.api.request = spy  # type: ignore[method-assign]
    try:
        first = next(iter(target.rollback(expected=preview)))
        # the previewed reads are the basis: kubectl's read, list, patch, minus the reads
        assert sent == ["PATCH"], first
        cluster.wait_complete(k8s_namespace)
        assert target.status().image == "reg/model:2"

        # a second preview, then only the controller's status moves before the confirm
        preview = target.preview_rollback()
        dep = cluster.get(k8s_namespace)
        conditions = copy.deepcopy(dep["status"]["conditions"])
        conditions[0]["message"] = "touched by a controller"
        cluster.api.request(
            "PATCH",
            cluster.path(k8s_namespace) + "/status",
            body={"status": {"conditions": conditions}},
            content_type=k8s.MERGE_PATCH,
            timeout=10,
        )
        sent.clear()
        steps = list(target.rollback(expected=preview))
    finally:
        del target.api.request
    # the stale read is refused by the server, read again and the patch re-planned
    assert sent[:3] == ["PATCH", "GET", "PATCH"]
    assert steps[-1].fraction == 1.0
    assert target.status().image == preview.to_image == "reg/model:3"


# --------------------------------------------------------------------------
# RBAC


def test_restricted_user_sees_every_action_denied(
    k8s_cluster: Any, cluster: Cluster, k8s_namespace: str
) -> None:
    build_history(cluster, k8s_namespace)
    admin = target_for(k8s_cluster, k8s_namespace)
    assert all(p.allowed for p in admin.permissions().values())
    viewer = target_for(k8s_cluster, k8s_namespace, restricted=True)
    assert viewer.status().revision == 3  # reading is allowed
    permissions = viewer.permissions()
    assert set(permissions) == set(ACTIONS)
    for action, permission in permissions.items():
        assert not permission.allowed, action
        assert permission.reason.startswith("RBAC: user mrc-viewer may not patch deployments")
        assert k8s_namespace in permission.reason
    preview = viewer.preview_rollback()  # previews only read
    assert preview.to_revision == 2
    with pytest.raises(PermissionDenied, match="forbidden"):
        list(viewer.rollback())
    with pytest.raises(PermissionDenied):
        viewer.pause()
    assert cluster.get(k8s_namespace)["metadata"]["annotations"][st.REVISION_ANNOTATION] == "3"


def test_targets_of_one_namespace_share_one_permission_review(
    k8s_cluster: Any, k8s_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = [target_for(k8s_cluster, k8s_namespace, deployment=f"m{i}") for i in range(20)]
    api = targets[0].api  # the one client every target of the cluster shares
    reviews = []
    send = api.request

    def counting(method: str, path: str, **kw: Any) -> Any:
        if "authorization.k8s.io" in path:
            reviews.append(path)
        return send(method, path, **kw)

    monkeypatch.setattr(api, "request", counting)
    for target in targets:
        assert all(p.allowed for p in target.permissions().values())
    assert len(reviews) == 1, reviews


def test_role_limited_to_one_deployment_allows_only_that_one(
    k8s_cluster: Any, k8s_namespace: str
) -> None:
    admin = api_for(k8s_cluster.context, k8s_cluster.kubeconfig)
    rbac_path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{k8s_namespace}"
    admin.request(
        "POST",
        f"{rbac_path}/roles",
        timeout=10,
        body={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "patch-a"},
            "rules": [
                {
                    "apiGroups": ["apps"],
                    "resources": ["deployments"],
                    "resourceNames": ["model-a"],
                    "verbs": ["patch"],
                }
            ],
        },
    )
    admin.request(
        "POST",
        f"{rbac_path}/rolebindings",
        timeout=10,
        body={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "patch-a"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "patch-a"},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mrc-viewer"}
            ],
        },
    )
    viewer = api_for(k8s_cluster.restricted_context, k8s_cluster.restricted_kubeconfig)
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "namespace": k8s_namespace,
                "verb": "patch",
                "group": "apps",
                "resource": "deployments",
                "name": "model-a",
            }
        },
    }
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    for _ in range(100):  # the API server's RBAC cache learns the binding shortly
        if viewer.request("POST", path, timeout=10, body=review)["status"].get("allowed"):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the RoleBinding never took effect")
    allowed = target_for(k8s_cluster, k8s_namespace, restricted=True, deployment="model-a")
    denied = target_for(k8s_cluster, k8s_namespace, restricted=True, deployment="model-b")
    assert all(p.allowed for p in allowed.permissions().values())
    for action, permission in denied.permissions().items():
        assert not permission.allowed, action
        assert permission.reason.startswith("RBAC: user mrc-viewer may not patch deployments")


# --------------------------------------------------------------------------
# Disconnection (last: it restarts the shared API server)


def test_stopped_api_server_is_unavailable_then_recovers(
    k8s_cluster: Any, cluster: Cluster, k8s_namespace: str
) -> None:
    cluster.create(k8s_namespace, manifest("reg/model:1", replicas=1))
    cluster.wait_complete(k8s_namespace)
    target = target_for(k8s_cluster, k8s_namespace, timeout=3.0)
    assert target.status().phase is Phase.COMPLETE

    events: list[TargetEvent] = []
    cancel = CancelToken()

    def collect() -> None:
        events.extend(target.watch(cancel))

    watcher = threading.Thread(target=collect, daemon=True)
    watcher.start()
    time.sleep(1.0)
    k8s_cluster.stop_apiserver()
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=f"cannot reach {k8s_cluster.context} API"):
            target.status()
        assert time.monotonic() - started < 3.0
        wait_for(lambda: any(e.reason == "Disconnected" for e in events), 20)
    finally:
        k8s_cluster.start_apiserver()
    assert target.status().phase is Phase.COMPLETE
    wait_for(lambda: any(e.reason == "Reconnected" for e in events), 40)
    target.restart()
    wait_for(lambda: any(e.reason == "ScalingReplicaSet" for e in events), 30)
    cancel.cancel()
    watcher.join(timeout=10)
    assert not watcher.is_alive()


def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)
