"""Rollout status of Deployment JSON: ``kubectl rollout status`` rules, domain mapping."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from core.domain import Phase
from core.targets import k8s_status as st


def deployment(
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int = 3,
    updated: int = 3,
    total: int = 3,
    available: int = 3,
    ready: int | None = None,
    paused: bool = False,
    progressing_reason: str = "NewReplicaSetAvailable",
    annotations: dict[str, str] | None = None,
    image: str = "reg/model:2",
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "model",
            "namespace": "ml",
            "generation": generation,
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "annotations": {"deployment.kubernetes.io/revision": "4", **(annotations or {})},
        },
        "spec": {
            "replicas": replicas,
            "paused": paused,
            "selector": {"matchLabels": {"app": "model"}},
            "template": {
                "metadata": {"labels": {"app": "model"}},
                "spec": {
                    "containers": [
                        {"name": "sidecar", "image": "proxy:1"},
                        {"name": "model", "image": image},
                    ]
                },
            },
        },
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "readyReplicas": available if ready is None else ready,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "True"
                    if progressing_reason != "ProgressDeadlineExceeded"
                    else "False",
                    "reason": progressing_reason,
                    "message": 'ReplicaSet "model-abc" has timed out progressing.',
                    "lastUpdateTime": "2026-01-02T04:00:00Z",
                },
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            ],
        },
    }


@pytest.mark.parametrize(
    ("kwargs", "phase", "message", "done"),
    [
        ({}, Phase.COMPLETE, "successfully rolled out", True),
        ({"generation": 3}, Phase.PROGRESSING, "waiting for rollout to be observed", False),
        ({"updated": 1, "available": 1}, Phase.PROGRESSING, "1 out of 3 new", False),
        ({"total": 5}, Phase.PROGRESSING, "2 old replicas are pending termination", False),
        ({"available": 2}, Phase.PROGRESSING, "2 of 3 updated replicas are available", False),
        (
            {"progressing_reason": "ProgressDeadlineExceeded", "updated": 1},
            Phase.FAILED,
            'deployment "model" exceeded its progress deadline',
            False,
        ),
        ({"paused": True}, Phase.PAUSED, "paused", True),
        ({"paused": True, "updated": 1}, Phase.PAUSED, "paused; 1 out of 3", False),
        ({"replicas": 0, "updated": 0, "total": 0, "available": 0}, Phase.COMPLETE, "", True),
    ],
)
def test_verdict_follows_kubectl_rollout_status(
    kwargs: dict[str, Any], phase: Phase, message: str, done: bool
) -> None:
    verdict = st.evaluate(deployment(**kwargs))
    assert verdict.phase is phase
    assert message in verdict.message
    assert verdict.done is done


def test_unobserved_generation_wins_over_a_stale_deadline_condition() -> None:
    # kubectl only looks at conditions once the controller has seen the latest spec.
    dep = deployment(generation=5, observed=4, progressing_reason="ProgressDeadlineExceeded")
    assert st.evaluate(dep).phase is Phase.PROGRESSING


def test_updated_check_comes_before_old_replicas_check() -> None:
    verdict = st.evaluate(deployment(updated=2, total=4, available=2))
    assert verdict.message == "2 out of 3 new replicas have been updated"


def test_rollout_state_maps_counts_image_revision_and_time() -> None:
    now = datetime(2026, 1, 3, tzinfo=UTC)
    state = st.rollout_state(
        deployment(available=2, ready=1), model="m", target="prod", container="model", now=now
    )
    assert (state.model, state.target, state.kind) == ("m", "prod", "kubernetes")
    assert state.revision == 4
    assert state.image == "reg/model:2"
    assert (state.desired, state.updated, state.available, state.ready) == (3, 3, 2, 1)
    assert state.since == datetime(2026, 1, 2, 4, tzinfo=UTC)
    assert state.observed_at == now
    first = st.rollout_state(deployment(), model="m", target="t", container="")
    assert first.image == "proxy:1"
    missing = st.rollout_state(deployment(), model="m", target="t", container="nope")
    assert missing.image == ""


def test_revision_missing_is_none_in_state_and_zero_for_kubectl() -> None:
    dep = deployment()
    del dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
    assert st.revision_of(dep) == 0
    assert st.rollout_state(dep, model="m", target="t", container="model").revision is None
    dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "x"
    assert st.revision_of(dep) is None


def test_commit_from_console_annotation_only_while_image_matches() -> None:
    ann = {st.COMMIT_ANNOTATION: "c0ffee", st.IMAGE_ANNOTATION: "reg/model:2"}
    dep = deployment(annotations=ann)
    assert st.rollout_state(dep, model="m", target="t", container="model").commit == "c0ffee"
    # Somebody ran `kubectl set image` afterwards: the old commit must not be shown.
    changed = deployment(annotations=ann, image="reg/model:3")
    assert st.rollout_state(changed, model="m", target="t", container="model").commit == ""
    labelled = copy.deepcopy(changed)
    labelled["spec"]["template"]["metadata"]["labels"][st.OCI_REVISION] = "feed42"
    assert st.rollout_state(labelled, model="m", target="t", container="model").commit == "feed42"


def test_selector_string_covers_every_operator() -> None:
    selector = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "team", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert st.selector_string(selector) == "a=1,b=2,tier in (api,web),env notin (dev),team,!legacy"
    assert st.selector_string(None) == ""
    with pytest.raises(ValueError, match="Near"):
        st.selector_string({"matchExpressions": [{"key": "k", "operator": "Near"}]})


def test_pod_info_reads_readiness_restarts_and_termination() -> None:
    pod = {
        "metadata": {"name": "model-abc-x1", "deletionTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": "n1", "containers": [{"name": "model", "image": "reg/model:1"}]},
        "status": {
            "phase": "Running",
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"restartCount": 2}, {"restartCount": 1}],
        },
    }
    info = st.pod_info(pod, "model")
    assert (info.name, info.phase, info.ready, info.restarts) == (
        "model-abc-x1",
        "Terminating",
        True,
        3,
    )
    assert (info.image, info.node) == ("reg/model:1", "n1")


def test_event_time_prefers_the_latest_observation() -> None:
    event = {
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:05:00Z",
        "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
    }
    assert st.event_time(event) == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    micro = {"eventTime": "2026-01-01T00:00:01.500000Z", "metadata": {}}
    assert st.event_time(micro) == datetime(2026, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)
    assert st.event_time({"metadata": {}}) is None


def test_target_from_configuration_defaults_deployment_and_container() -> None:
    from types import SimpleNamespace

    from core.config import KubernetesTargetConfig
    from core.targets.kubernetes import KubernetesTarget

    cfg = KubernetesTargetConfig(name="prod", kind="kubernetes", context="eu", namespace="ml")
    target = KubernetesTarget.from_config(SimpleNamespace(name="ranker"), cfg)
    assert (target.model, target.name, target.context) == ("ranker", "prod", "eu")
    assert (target.namespace, target.deployment, target.container) == ("ml", "ranker", "ranker")
    assert target.timeout == 10.0
    explicit = KubernetesTarget("m", "t", "c", "ns", "dep", "box", timeout=2)
    assert (explicit.deployment, explicit.container, explicit.timeout) == ("dep", "box", 2.0)
