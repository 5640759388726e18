"""``kubectl rollout undo`` rules on Deployment/ReplicaSet JSON; error paths of the writes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from core.errors import BackendUnavailable, Conflict, NotFound, OperationFailed, PermissionDenied
from core.targets import k8s_rollback as undo
from core.targets import kubernetes as k8s
from core.targets.k8s_api import Api, ApiError, http_error

UID = "dep-uid-1"
REV = "deployment.kubernetes.io/revision"
CAUSE = "kubernetes.io/change-cause"


def template(image: str, hash_: str | None = None, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"creationTimestamp": None, "labels": {"app": "model", **labels}}
    if hash_:
        meta["labels"]["pod-template-hash"] = hash_
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "model", "image": image, "resources": {}}]},
    }


def replicaset(
    revision: int | str | None,
    image: str,
    *,
    created: str,
    owner: str = UID,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    hash_ = f"h{abs(hash(image)) % 10**6}"
    ann = dict(annotations or {})
    if revision is not None:
        ann[REV] = str(revision)
    ann.setdefault("deployment.kubernetes.io/desired-replicas", "3")
    ann.setdefault("deployment.kubernetes.io/max-replicas", "4")
    return {
        "metadata": {
            "name": f"model-{hash_}",
            "creationTimestamp": created,
            "annotations": ann,
            "ownerReferences": [
                {"kind": "Deployment", "name": "model", "uid": owner, "controller": True}
            ],
        },
        "spec": {"replicas": 0, "template": template(image, hash_)},
    }


def deployment(image: str, revision: int, *, paused: bool = False, **ann: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "model",
            "uid": UID,
            "generation": 7,
            "resourceVersion": "1001",
            "annotations": {REV: str(revision), **ann},
        },
        "spec": {"paused": paused, "template": template(image)},
        "status": {"observedGeneration": 7},
    }


@pytest.fixture
def history() -> list[dict[str, Any]]:
    """Revisions 1..3 of model (3 is live), plus a foreign ReplicaSet with a higher revision."""
    return [
        replicaset(3, "reg/m:3", created="2026-01-03T00:00:00Z", annotations={CAUSE: "third"}),
        replicaset(1, "reg/m:1", created="2026-01-01T00:00:00Z", annotations={CAUSE: "first"}),
        replicaset(
            2,
            "reg/m:2",
            created="2026-01-02T00:00:00Z",
            annotations={CAUSE: "second", "team": "ml", "mrc.dev/commit": "abc"},
        ),
        replicaset(9, "reg/m:9", created="2026-01-04T00:00:00Z", owner="someone-else"),
    ]


def test_previous_revision_is_the_second_highest_controlled_one(history: list) -> None:
    plan = undo.plan_rollback(deployment("reg/m:3", 3), history, None)
    assert (plan.from_revision, plan.to_revision) == (3, 2)
    assert plan.template["spec"]["containers"][0]["image"] == "reg/m:2"
    assert undo.plan_rollback(deployment("reg/m:3", 3), history, 0).to_revision == 2


def test_to_revision_selects_that_revision(history: list) -> None:
    plan = undo.plan_rollback(deployment("reg/m:3", 3), history, 1)
    assert plan.to_revision == 1
    assert plan.replicaset == history[1]["metadata"]["name"]


@pytest.mark.parametrize("revision", [4, 9, -1])
def test_missing_revision_is_refused_with_kubectls_message(history: list, revision: int) -> None:
    with pytest.raises(NotFound) as info:
        undo.plan_rollback(deployment("reg/m:3", 3), history, revision)
    assert str(info.value) == f"unable to find specified revision {revision} in history"


def test_no_previous_revision() -> None:
    only = [replicaset(1, "reg/m:1", created="2026-01-01T00:00:00Z")]
    with pytest.raises(NotFound, match=r'^no rollout history found for deployment "model"$'):
        undo.plan_rollback(deployment("reg/m:1", 1), only, None)


def test_paused_is_refused_after_the_revision_lookup(history: list) -> None:
    paused = deployment("reg/m:3", 3, paused=True)
    with pytest.raises(OperationFailed) as info:
        undo.plan_rollback(paused, history, None)
    assert str(info.value) == (
        "you cannot rollback a paused deployment; resume it first with "
        "'kubectl rollout resume' and try again"
    )
    # kubectl looks the revision up first: a missing one wins over "paused".
    with pytest.raises(NotFound):
        undo.plan_rollback(paused, history, 8)


def test_template_already_equal_is_skipped(history: list) -> None:
    plan = undo.plan_rollback(deployment("reg/m:3", 3), history, 3)
    assert plan.noop
    assert plan.message == "skipped rollback (current template already matches revision 3)"
    assert plan.template["spec"] == plan.current_template["spec"]


def test_patch_replaces_template_without_hash_and_annotations_like_kubectl(history: list) -> None:
    dep = deployment(
        "reg/m:3",
        3,
        **{
            CAUSE: "third",
            "owner": "dropped because revision 2 does not carry it",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            "deployment.kubernetes.io/revision-history": "1",
        },
    )
    plan = undo.plan_rollback(dep, history, 2)
    ops = plan.patch()
    assert [op["op"] for op in ops] == ["test", "replace", "replace"]
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "1001"}
    assert ops[1]["path"] == "/spec/template"
    assert ops[1]["value"]["metadata"]["labels"] == {"app": "model"}
    assert ops[1]["value"]["spec"] == history[2]["spec"]["template"]["spec"]
    assert ops[2]["path"] == "/metadata/annotations"
    assert ops[2]["value"] == {
        # kept from the Deployment (kubectl's skip list)
        REV: "3",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "deployment.kubernetes.io/revision-history": "1",
        # copied from the ReplicaSet, change-cause included
        CAUSE: "second",
        "team": "ml",
        "mrc.dev/commit": "abc",
    }
    assert "kubectl apply" in plan.warning
    # the ReplicaSet itself was not modified
    assert "pod-template-hash" in history[2]["spec"]["template"]["metadata"]["labels"]


def test_unparsable_revisions_are_ignored(history: list) -> None:
    history.append(replicaset("x", "reg/m:x", created="2026-01-05T00:00:00Z"))
    assert undo.plan_rollback(deployment("reg/m:3", 3), history, None).to_revision == 2


def test_revision_ties_follow_kubectls_scan_order() -> None:
    # Two ReplicaSets claim revision 2 (possible after manual edits): kubectl takes the
    # first in creation order, with the "new" ReplicaSet (template == Deployment's) last.
    older = replicaset(2, "reg/m:a", created="2026-01-01T00:00:00Z")
    newer = replicaset(2, "reg/m:b", created="2026-01-02T00:00:00Z")
    current = replicaset(3, "reg/m:c", created="2026-01-03T00:00:00Z")
    plan = undo.plan_rollback(deployment("reg/m:c", 3), [current, newer, older], 2)
    assert plan.replicaset == older["metadata"]["name"]


def test_equal_ignore_hash() -> None:
    assert undo.equal_ignore_hash(template("a", "h1"), template("a"))
    assert not undo.equal_ignore_hash(template("a"), template("b"))
    bare = template("a")
    bare["metadata"]["labels"] = {"pod-template-hash": "x"}
    no_labels = template("a")
    del no_labels["metadata"]["labels"]
    assert undo.equal_ignore_hash(bare, no_labels)
    assert not undo.equal_ignore_hash(template("a", tier="x"), template("a"))


def test_diff_shows_image_and_annotation_changes(history: list) -> None:
    plan = undo.plan_rollback(deployment("reg/m:3", 3, **{CAUSE: "third"}), history, None)
    diff = undo.plan_diff(plan)
    assert "-      - image: reg/m:3" in diff
    assert "+      - image: reg/m:2" in diff
    assert "+    team: ml" in diff
    assert "pod-template-hash" not in diff
    assert diff.startswith("--- model (revision 3)\n+++ model (revision 2)\n")


def test_fingerprint_ignores_status_and_bookkeeping_but_not_spec_or_annotations() -> None:
    dep = deployment("reg/m:3", 3)
    moved = copy.deepcopy(dep)
    moved["metadata"]["resourceVersion"] = "2000"
    moved["status"]["availableReplicas"] = 2
    assert undo.fingerprint(moved) == undo.fingerprint(dep)
    bumped = copy.deepcopy(dep)  # the controller's revision bookkeeping follows older changes
    bumped["metadata"]["annotations"][REV] = "4"
    bumped["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] = "1,2"
    assert undo.fingerprint(bumped) == undo.fingerprint(dep)
    applied = copy.deepcopy(dep)
    applied["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    assert undo.fingerprint(applied) != undo.fingerprint(dep)
    respec = copy.deepcopy(dep)
    respec["metadata"]["generation"] = 8
    assert undo.fingerprint(respec) != undo.fingerprint(dep)
    relabel = copy.deepcopy(dep)
    relabel["metadata"]["annotations"]["x"] = "y"
    assert undo.fingerprint(relabel) != undo.fingerprint(dep)


def test_describe_change_names_revision_image_and_pause() -> None:
    before = deployment("reg/m:3", 3)
    after = deployment("reg/m:4", 4, paused=True)
    text = undo.describe_change(before, after, "model")
    assert "revision 3 -> 4" in text
    assert "image reg/m:3 -> reg/m:4" in text
    assert "paused" in text


def test_change_cause_wording_and_sanitising() -> None:
    text = k8s.change_cause("rollout", "reg/m:5", "0123456789abcdef", "fix\x1b[31m drift\n", "ann")
    assert text == "mrc: rollout reg/m:5 (commit 0123456789ab) by ann: fix [31m drift"
    assert k8s.change_cause("rollout", "reg/m:5", "", "", "bob") == "mrc: rollout reg/m:5 by bob"


# --------------------------------------------------------------------------
# Error paths of the write and request layers (fakes stand in for the API server)


class FakeApi:
    """Answers reads from a list of Deployment versions and fails patches as told."""

    def __init__(self, reads: list[dict], patch_errors: list[Exception]) -> None:
        self.reads = reads
        self.patch_errors = patch_errors
        self.patches: list[Any] = []
        self.context = "fake"

    def request(self, method: str, path: str, **kwargs: Any) -> dict:
        if method == "GET":
            return self.reads.pop(0)
        self.patches.append(kwargs["body"])
        if self.patch_errors:
            raise self.patch_errors.pop(0)
        return {"metadata": {"generation": 8}}


def make_target(api: FakeApi) -> k8s.KubernetesTarget:
    target = k8s.KubernetesTarget("m", "prod", "ctx", "ml", "model", "model")
    target._api = api  # type: ignore[assignment]
    return target


def test_status_only_race_is_retried_on_the_fresh_version() -> None:
    dep = deployment("reg/m:3", 3)
    fresh = copy.deepcopy(dep)
    fresh["metadata"]["resourceVersion"] = "1002"
    fresh["status"]["availableReplicas"] = 3
    api = FakeApi([fresh], [Conflict("the object has been modified")])
    target = make_target(api)
    target._write_conditionally(dep, lambda d: ({"rv": d["metadata"]["resourceVersion"]}, "x"))
    assert api.patches == [{"rv": "1001"}, {"rv": "1002"}]


def test_spec_race_is_a_conflict_saying_what_changed() -> None:
    dep = deployment("reg/m:3", 3)
    fresh = deployment("reg/m:4", 4)
    fresh["metadata"]["generation"] = 8
    failed = ApiError("testing value /metadata/resourceVersion failed", 422)
    api = FakeApi([fresh], [failed])
    with pytest.raises(Conflict, match=r"revision 3 -> 4; image reg/m:3 -> reg/m:4"):
        make_target(api)._write_conditionally(dep, lambda d: ({}, "x"))
    assert len(api.patches) == 1


def test_other_rejections_are_not_retried() -> None:
    invalid = ApiError("spec.template: Invalid value", 422)
    dep = deployment("reg/m:3", 3)
    api = FakeApi([copy.deepcopy(dep)], [invalid])
    with pytest.raises(OperationFailed, match="Invalid value"):
        make_target(api)._write_conditionally(dep, lambda d: ({}, "x"))
    forbidden = FakeApi([], [PermissionDenied("forbidden")])
    with pytest.raises(PermissionDenied):
        make_target(forbidden)._write_conditionally(dep, lambda d: ({}, "x"))


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (404, NotFound, "deployment ml/model not found in context ctx"),
        (403, PermissionDenied, 'cannot patch resource "deployments"'),
        (401, PermissionDenied, "Unauthorized"),
        (409, Conflict, "the object has been modified"),
        (503, BackendUnavailable, "ctx API server error"),
        (422, ApiError, "Invalid value"),
    ],
)
def test_http_errors_map_to_core_errors(status: int, error: type, text: str) -> None:
    messages = {
        403: 'deployments.apps "model" is forbidden: User "u" cannot patch resource "deployments"',
        401: "Unauthorized",
        409: "Operation cannot be fulfilled: the object has been modified",
        422: "Deployment.apps is invalid: Invalid value",
    }
    body = '{"kind":"Status","message":%s}' % (
        '"' + messages.get(status, "boom").replace('"', '\\"') + '"'
    )
    exc = http_error(status, body, "deployment ml/model", "ctx")
    assert isinstance(exc, error)
    assert text in str(exc)
    if isinstance(exc, ApiError):  # other HTTP errors are failed operations with their status
        assert isinstance(exc, OperationFailed) and exc.status == status


def test_unreachable_server_is_backend_unavailable_naming_the_context() -> None:
    import socket

    from core.targets.kubeconfig import Connection

    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        api = Api(Connection(server=f"http://127.0.0.1:{port}"), "prod-eu")
        with pytest.raises(BackendUnavailable, match=r"^cannot reach prod-eu API server: "):
            api.request("GET", "/x", timeout=1.0)
