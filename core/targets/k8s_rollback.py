"""Pure ``kubectl rollout undo`` logic for Deployments, on the API server's JSON (dicts).

The rules are kubectl's (``DeploymentRollbacker`` in k8s.io/kubectl), in its order:

1. the candidate ReplicaSets are those the Deployment *controls* (controller
   owner reference with the Deployment's uid), ordered by creation time (name
   breaks ties) with the "new" ReplicaSet (the oldest one whose template equals
   the Deployment's, ignoring ``pod-template-hash``) moved last;
2. ``to_revision`` > 0 selects the first ReplicaSet with that
   ``deployment.kubernetes.io/revision``, else "unable to find specified
   revision N in history"; 0 (or None) selects the second-highest revision,
   else 'no rollout history found for deployment "NAME"'; a negative one is
   never found;
3. a paused Deployment is refused with kubectl's message;
4. if the selected template already equals the Deployment's, nothing is done
   ("skipped rollback (current template already matches revision N)"; N is the
   resolved revision here, where kubectl prints the number it was given, 0 for
   "previous");
5. otherwise one JSON patch replaces ``/spec/template`` with the ReplicaSet's
   template minus the ``pod-template-hash`` label, and replaces
   ``/metadata/annotations`` with the ReplicaSet's annotations except
   :data:`SKIP_ANNOTATIONS`, whose values are kept from the Deployment.

The only addition is a leading JSON-patch ``test`` of
``/metadata/resourceVersion``: it changes nothing in the result, but a write
racing with somebody else's change fails instead of overwriting it.

The change-cause is therefore the ReplicaSet's, copied as kubectl copies it:
after an undo, ``rollout history`` shows the cause that originally produced
that template, and the console records who rolled back and why in its journal.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import NotFound, OperationFailed
from core.targets.k8s_status import (
    REVISION_ANNOTATION,
    annotations_of,
    container_image,
    parse_time,
    revision_of,
)

POD_TEMPLATE_HASH = "pod-template-hash"

#: Annotations kept from the Deployment instead of copied from the ReplicaSet.
SKIP_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

PAUSED_MESSAGE = (
    "you cannot rollback a paused deployment; resume it first with "
    "'kubectl rollout resume' and try again"
)

Obj = Mapping[str, Any]


def revision_not_found(revision: int) -> str:
    """Return kubectl's message for a revision that is not in the history."""
    return f"unable to find specified revision {revision} in history"


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    """Return True when ``obj`` has a controller owner reference to ``owner``'s uid."""
    uid = (owner.get("metadata") or {}).get("uid")
    return any(
        ref.get("controller") and ref.get("uid") == uid
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def controlled(dep: Obj, replicasets: Iterable[Obj]) -> list[Obj]:
    """Return the ReplicaSets in ``replicasets`` that ``dep`` controls."""
    return [rs for rs in replicasets if is_controlled_by(rs, dep)]


def _template(obj: Obj) -> dict[str, Any]:
    return dict((obj.get("spec") or {}).get("template") or {})


def strip_hash(template: Obj) -> dict[str, Any]:
    """Return a deep copy of a pod template without the ``pod-template-hash`` label.

    An empty ``labels`` map is dropped, as the API server's JSON omits it.
    """
    result = copy.deepcopy(dict(template))
    meta = dict(result.get("metadata") or {})
    labels = dict(meta.get("labels") or {})
    labels.pop(POD_TEMPLATE_HASH, None)
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    result["metadata"] = meta
    return result


def _normalised(template: Obj) -> dict[str, Any]:
    # Semantic equality treats nil and empty maps alike: drop empty metadata maps.
    result = strip_hash(template)
    meta = result["metadata"]
    for key in ("labels", "annotations"):
        if not meta.get(key):
            meta.pop(key, None)
    if meta.get("creationTimestamp") is None:
        meta.pop("creationTimestamp", None)
    return result


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    """Return True when two pod templates are equal apart from ``pod-template-hash``."""
    return _normalised(a) == _normalised(b)


def _created_key(rs: Obj) -> tuple[float, str]:
    meta = rs.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp"))
    return (created.timestamp() if created else 0.0, str(meta.get("name", "")))


def new_replicaset(dep: Obj, replicasets: Sequence[Obj]) -> Obj | None:
    """Return the oldest ReplicaSet whose template equals the Deployment's, or None."""
    template = _template(dep)
    for rs in sorted(replicasets, key=_created_key):
        if equal_ignore_hash(_template(rs), template):
            return rs
    return None


def rollback_order(dep: Obj, replicasets: Sequence[Obj]) -> list[Obj]:
    """Return the controlled ReplicaSets in the order kubectl scans them (new one last)."""
    owned = sorted(controlled(dep, replicasets), key=_created_key)
    new = new_replicaset(dep, owned)
    if new is None:
        return owned
    return [rs for rs in owned if rs is not new] + [new]


def select_revision(dep: Obj, replicasets: Sequence[Obj], to_revision: int | None) -> Obj:
    """Return the ReplicaSet ``kubectl rollout undo --to-revision`` would restore.

    ``to_revision`` None or 0 means the previous (second-highest) revision.
    Raises NotFound with kubectl's message when there is no such revision.
    """
    wanted = to_revision or 0
    if wanted < 0:
        raise NotFound(revision_not_found(wanted))
    latest: tuple[int, Obj | None] = (-1, None)
    previous: tuple[int, Obj | None] = (-1, None)
    for rs in rollback_order(dep, replicasets):
        number = revision_of(rs)
        if number is None:
            continue
        if wanted == 0:
            if latest[0] < number:
                previous, latest = latest, (number, rs)
            elif previous[0] < number:
                previous = (number, rs)
        elif wanted == number:
            return rs
    if wanted > 0:
        raise NotFound(revision_not_found(wanted))
    if previous[1] is None:
        name = (dep.get("metadata") or {}).get("name", "")
        raise NotFound(f'no rollout history found for deployment "{name}"')
    return previous[1]


def restored_annotations(dep: Obj, rs: Obj) -> dict[str, str]:
    """Return the Deployment annotations after rolling back to ``rs`` (kubectl's rule)."""
    current = annotations_of(dep)
    result = {k: current[k] for k in SKIP_ANNOTATIONS if k in current}
    result.update({k: v for k, v in annotations_of(rs).items() if k not in SKIP_ANNOTATIONS})
    return result


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    """What a rollback of one Deployment would do.

    ``to_revision`` is the resolved revision number (never 0); ``noop`` is True
    when the template already matches it, with kubectl's "skipped rollback"
    wording in ``message``. ``template`` and ``annotations`` are the values the
    patch writes.
    """

    name: str
    resource_version: str
    from_revision: int | None
    to_revision: int
    replicaset: str
    noop: bool
    message: str
    template: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    current_template: dict[str, Any] = field(default_factory=dict)
    current_annotations: dict[str, str] = field(default_factory=dict)
    warning: str = ""

    def patch(self) -> list[dict[str, Any]]:
        """Return the JSON patch (RFC 6902) that applies this plan.

        The first operation tests ``metadata.resourceVersion`` so the patch
        fails with 422 when the Deployment changed since it was read.
        """
        return [
            {"op": "test", "path": "/metadata/resourceVersion", "value": self.resource_version},
            {"op": "replace", "path": "/spec/template", "value": self.template},
            {"op": "replace", "path": "/metadata/annotations", "value": self.annotations},
        ]


def plan_rollback(dep: Obj, replicasets: Sequence[Obj], to_revision: int | None) -> RollbackPlan:
    """Return the plan ``kubectl rollout undo`` would carry out on this Deployment.

    Raises NotFound (missing revision, no history) and OperationFailed (paused
    Deployment) with kubectl's messages, checked in kubectl's order.
    """
    rs = select_revision(dep, replicasets, to_revision)
    meta = dep.get("metadata") or {}
    if (dep.get("spec") or {}).get("paused"):
        raise OperationFailed(PAUSED_MESSAGE)
    number = revision_of(rs) or 0
    current_template = _template(dep)
    target_template = strip_hash(_template(rs))
    noop = equal_ignore_hash(_template(rs), current_template)
    current_ann = annotations_of(dep)
    new_ann = restored_annotations(dep, rs)
    return RollbackPlan(
        name=str(meta.get("name", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        from_revision=revision_of(dep) or None,
        to_revision=number,
        replicaset=str((rs.get("metadata") or {}).get("name", "")),
        noop=noop,
        message=(
            f"skipped rollback (current template already matches revision {number})"
            if noop
            else "rolled back"
        ),
        template=target_template,
        annotations=new_ann,
        current_template=current_template,
        current_annotations=current_ann,
        warning=(
            "this Deployment is managed with 'kubectl apply': the next apply will "
            "undo the rollback unless its manifest is changed too"
            if LAST_APPLIED in current_ann
            else ""
        ),
    )


def _document(template: Obj, ann: Mapping[str, str]) -> str:
    import yaml  # loaded only for previews

    shown = {k: v for k, v in ann.items() if k not in SKIP_ANNOTATIONS}
    doc = {"metadata": {"annotations": shown}, "spec": {"template": template}}
    return str(yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=100))


def plan_diff(plan: RollbackPlan) -> str:
    """Return a unified diff of the Deployment's template and annotations, current -> planned.

    Revision bookkeeping annotations are left out; the diff is empty for a no-op plan.
    """
    before = _document(_normalised(plan.current_template), plan.current_annotations)
    after = _document(_normalised(plan.template), plan.annotations)
    current = f"revision {plan.from_revision}" if plan.from_revision else "current"
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{plan.name} ({current})",
            tofile=f"{plan.name} (revision {plan.to_revision})",
        )
    )


#: Annotations only the Deployment controller writes; they follow changes already made.
CONTROLLER_ANNOTATIONS = frozenset(SKIP_ANNOTATIONS - {LAST_APPLIED})


def fingerprint(dep: Obj) -> str:
    """Return a short digest of what people can change in a Deployment.

    That is the spec (through ``metadata.generation``) and the annotations
    except :data:`CONTROLLER_ANNOTATIONS`; status updates and the controller's
    revision bookkeeping do not change it.
    """
    meta = dep.get("metadata") or {}
    ann = {k: v for k, v in annotations_of(dep).items() if k not in CONTROLLER_ANNOTATIONS}
    data = json.dumps({"generation": meta.get("generation"), "annotations": ann}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def describe_change(before: Obj, after: Obj, container: str) -> str:
    """Return what changed between two reads of a Deployment, for a conflict message."""
    changes = []
    rev_a, rev_b = revision_of(before), revision_of(after)
    if rev_a != rev_b:
        changes.append(f"revision {rev_a} -> {rev_b}")
    img_a = container_image(_template(before), container)
    img_b = container_image(_template(after), container)
    if img_a != img_b:
        changes.append(f"image {img_a or '-'} -> {img_b or '-'}")
    paused_a = bool((before.get("spec") or {}).get("paused"))
    paused_b = bool((after.get("spec") or {}).get("paused"))
    if paused_a != paused_b:
        changes.append("paused" if paused_b else "resumed")
    if not changes and not equal_ignore_hash(_template(before), _template(after)):
        changes.append("pod template changed")
    ann_a, ann_b = annotations_of(before), annotations_of(after)
    changed_keys = sorted(k for k in set(ann_a) | set(ann_b) if ann_a.get(k) != ann_b.get(k))
    if changed_keys:
        changes.append("annotations " + ", ".join(changed_keys))
    gen_a = (before.get("metadata") or {}).get("generation")
    gen_b = (after.get("metadata") or {}).get("generation")
    if not changes and gen_a != gen_b:
        changes.append(f"spec changed (generation {gen_a} -> {gen_b})")
    return "; ".join(changes) if changes else "status only"
