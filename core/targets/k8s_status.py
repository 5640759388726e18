"""Pure evaluation of Deployment objects (as the API server's JSON, i.e. plain dicts).

Nothing here talks to a cluster: these functions turn the JSON of a Deployment,
ReplicaSet or Pod into the console's domain types, so they are unit-tested on
dict fixtures and shared by the target, the bulk listing and the benchmarks.

The rollout verdict follows ``kubectl rollout status`` for Deployments:

1. ``metadata.generation > status.observedGeneration``: the controller has not
   seen the latest spec yet;
2. a ``Progressing`` condition with reason ``ProgressDeadlineExceeded``: failed;
3. ``status.updatedReplicas < spec.replicas``: new replicas still being created;
4. ``status.replicas > status.updatedReplicas``: old replicas pending termination;
5. ``status.availableReplicas < status.updatedReplicas``: waiting for availability;
6. otherwise the rollout is complete.

A paused Deployment is reported as ``PAUSED`` (with the step it is stuck at)
because for an operator that is the actionable fact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.domain import Condition, Phase, PodInfo, RolloutState

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
#: Set by the console's rollout: the git commit the image was built from.
COMMIT_ANNOTATION = "mrc.dev/commit"
#: Set next to COMMIT_ANNOTATION: the image the commit belongs to, so a later image
#: change made outside the console does not inherit a stale commit.
IMAGE_ANNOTATION = "mrc.dev/image"
#: The OCI label/annotation conventionally carrying the source revision.
OCI_REVISION = "org.opencontainers.image.revision"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The rollout status of a Deployment.

    ``done`` is True exactly when ``kubectl rollout status`` would report
    success; ``message`` is kubectl's wording without its "Waiting for ..." prefix.
    """

    phase: Phase
    message: str
    done: bool


def parse_time(value: str | None) -> datetime | None:
    """Return an RFC 3339 timestamp from the API as an aware UTC datetime, or None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def annotations_of(obj: Obj) -> dict[str, str]:
    """Return ``metadata.annotations`` of an object (empty when absent)."""
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def revision_of(obj: Obj) -> int | None:
    """Return the ``deployment.kubernetes.io/revision`` of an object.

    Returns 0 when the annotation is absent (as kubectl does) and None when it
    is present but not an integer.
    """
    value = annotations_of(obj).get(REVISION_ANNOTATION)
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return None


def find_container(template: Obj, container: str) -> dict[str, Any] | None:
    """Return the container called ``container`` in a pod template, or None.

    An empty ``container`` name selects the first container.
    """
    containers = (template.get("spec") or {}).get("containers") or []
    if not container:
        return dict(containers[0]) if containers else None
    for c in containers:
        if c.get("name") == container:
            return dict(c)
    return None


def container_image(template: Obj, container: str) -> str:
    """Return the image of ``container`` in a pod template ("" when there is none)."""
    found = find_container(template, container)
    return str(found.get("image", "")) if found else ""


def commit_of(obj: Obj, template: Obj, image: str) -> str:
    """Return the git commit behind a Deployment or ReplicaSet, or "".

    The console's own ``mrc.dev/commit`` annotation counts only while
    ``mrc.dev/image`` still names ``image`` (so a change made with plain
    kubectl does not keep showing the old commit); otherwise the pod
    template's ``org.opencontainers.image.revision`` label or annotation.
    """
    ann = annotations_of(obj)
    commit = ann.get(COMMIT_ANNOTATION, "")
    if commit and ann.get(IMAGE_ANNOTATION, image) == image:
        return commit
    meta = template.get("metadata") or {}
    return str(
        (meta.get("labels") or {}).get(OCI_REVISION)
        or (meta.get("annotations") or {}).get(OCI_REVISION)
        or ""
    )


def find_condition(dep: Obj, kind: str) -> dict[str, Any] | None:
    """Return the status condition of type ``kind``, or None."""
    for cond in (dep.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def evaluate(dep: Obj) -> Verdict:
    """Return the ``kubectl rollout status`` verdict of a Deployment's JSON."""
    meta = dep.get("metadata") or {}
    spec = dep.get("spec") or {}
    status = dep.get("status") or {}
    name = meta.get("name", "")
    paused = bool(spec.get("paused"))

    if int(meta.get("generation", 0)) > int(status.get("observedGeneration", 0)):
        verdict = Verdict(Phase.PROGRESSING, "waiting for rollout to be observed", False)
        return _paused(verdict) if paused else verdict

    progressing = find_condition(dep, "Progressing")
    if progressing and progressing.get("reason") == TIMED_OUT_REASON:
        detail = progressing.get("message") or ""
        message = f'deployment "{name}" exceeded its progress deadline'
        return Verdict(Phase.FAILED, f"{message}: {detail}" if detail else message, False)

    desired = spec.get("replicas")
    updated = int(status.get("updatedReplicas", 0))
    replicas = int(status.get("replicas", 0))
    available = int(status.get("availableReplicas", 0))
    if desired is not None and updated < int(desired):
        verdict = Verdict(
            Phase.PROGRESSING,
            f"{updated} out of {desired} new replicas have been updated",
            False,
        )
    elif replicas > updated:
        verdict = Verdict(
            Phase.PROGRESSING,
            f"{replicas - updated} old replicas are pending termination",
            False,
        )
    elif available < updated:
        verdict = Verdict(
            Phase.PROGRESSING, f"{available} of {updated} updated replicas are available", False
        )
    else:
        verdict = Verdict(Phase.COMPLETE, "successfully rolled out", True)
    return _paused(verdict) if paused else verdict


def _paused(verdict: Verdict) -> Verdict:
    if verdict.done:
        return Verdict(Phase.PAUSED, "paused", True)
    return Verdict(Phase.PAUSED, f"paused; {verdict.message}", False)


def rollout_state(
    dep: Obj,
    *,
    model: str,
    target: str,
    container: str,
    now: datetime | None = None,
) -> RolloutState:
    """Return the :class:`RolloutState` of a Deployment's JSON for one model's container."""
    spec = dep.get("spec") or {}
    status = dep.get("status") or {}
    template = spec.get("template") or {}
    verdict = evaluate(dep)
    image = container_image(template, container)
    progressing = find_condition(dep, "Progressing") or {}
    since = parse_time(progressing.get("lastUpdateTime")) or parse_time(
        (dep.get("metadata") or {}).get("creationTimestamp")
    )
    return RolloutState(
        model=model,
        target=target,
        kind="kubernetes",
        phase=verdict.phase,
        revision=revision_of(dep) or None,
        image=image,
        commit=commit_of(dep, template, image),
        desired=int(spec.get("replicas", 0) or 0),
        ready=int(status.get("readyReplicas", 0)),
        updated=int(status.get("updatedReplicas", 0)),
        available=int(status.get("availableReplicas", 0)),
        message=verdict.message,
        since=since,
        observed_at=now or datetime.now(UTC),
    )


def conditions(dep: Obj) -> tuple[Condition, ...]:
    """Return the Deployment's status conditions as domain objects."""
    return tuple(
        Condition(
            type=str(c.get("type", "")),
            status=str(c.get("status", "")),
            reason=str(c.get("reason", "")),
            message=str(c.get("message", "")),
        )
        for c in (dep.get("status") or {}).get("conditions") or []
    )


def pod_info(pod: Obj, container: str) -> PodInfo:
    """Return the detail-view summary of a Pod's JSON (``container`` picks the image shown)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    restarts = sum(int(cs.get("restartCount", 0)) for cs in status.get("containerStatuses") or [])
    phase = str(status.get("phase", "Unknown"))
    if meta.get("deletionTimestamp"):
        phase = "Terminating"
    return PodInfo(
        name=str(meta.get("name", "")),
        phase=phase,
        ready=ready,
        restarts=restarts,
        image=container_image(pod, container),
        node=str((pod.get("spec") or {}).get("nodeName", "")),
        started=parse_time(status.get("startTime")),
    )


def selector_string(selector: Obj | None) -> str:
    """Return a label selector object as the string form the list API accepts.

    Raises ValueError for an operator this function does not know.
    """
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = ",".join(sorted(expr.get("values") or []))
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise ValueError(f"unknown label selector operator {op!r}")
    return ",".join(parts)


def event_time(event: Obj) -> datetime | None:
    """Return the best timestamp of a core/v1 Event (last seen, else first, else created)."""
    series = event.get("series") or {}
    meta = event.get("metadata") or {}
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        meta.get("creationTimestamp"),
    ):
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    return None
