"""Kubernetes target: one model is one container of one Deployment.

Talks to the API server through the JSON layer of :mod:`core.targets.k8s_api`
(one shared client per kubeconfig and context, the ``kubernetes`` package
imported on first use, errors mapped to :mod:`core.errors`). Objects are plain
dicts exactly as the server serialised them, which lets the rollback patch
carry the ReplicaSet's template byte-for-byte as ``kubectl rollout undo``
does (see :mod:`core.targets.k8s_rollback`).

Concurrency: every write takes ``expected``, what the operator saw (a
:class:`RolloutState` read by this target carries the Deployment's
:func:`~core.targets.k8s_rollback.fingerprint` as ``basis``, a rollback preview
its own): when the spec or the annotations people edit changed since, nothing
is written and Conflict says so; the controller's bookkeeping (status,
revision annotations) does not count. Writes that depend on what was read
(rollout, rollback, and any write given ``expected``) are conditional on the
``resourceVersion`` that was read. When the condition fails the Deployment is
read again: if only its status moved, the write is retried on the fresh
version; if its spec or annotations changed, the write is abandoned with a
Conflict that says what changed.
"""

from __future__ import annotations

import getpass
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from core.cancel import CancelToken
from core.domain import (
    Artifact,
    Permission,
    Phase,
    Progress,
    Revision,
    RollbackPreview,
    RolloutState,
    TargetDetail,
    TargetEvent,
)
from core.errors import (
    BackendUnavailable,
    Cancelled,
    Conflict,
    MrcError,
    NotFound,
    OperationFailed,
)
from core.targets import k8s_rbac as rbac
from core.targets import k8s_rollback as undo
from core.targets import k8s_status as st
from core.targets.base import ACTIONS, Seen, Target
from core.targets.expected import refuse_if_changed
from core.targets.k8s_api import Api, ApiError, Obj, api_for, apps_path, closer, core_path

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
RESTART_PAUSED_MESSAGE = "can't restart paused deployment (run rollout resume first)"
#: Seconds a permission answer is reused.
PERMISSION_TTL = 60.0
#: How many times a conditional write is retried when only the status changed meanwhile.
WRITE_RETRIES = 3

# --------------------------------------------------------------------------
# The target


class KubernetesTarget(Target):
    """One model's container in one Deployment (see :class:`core.targets.base.Target`).

    ``container`` "" means the pod template's first container. Constructing
    does not contact the cluster. ``KubernetesTarget(model_cfg, target_cfg)``
    with the configuration objects is accepted too (see :meth:`from_config`).
    """

    kind = "kubernetes"
    acknowledges_first = True  # rollback's first item: the API server accepted the patch

    def __init__(
        self,
        model: Any,
        name: Any = None,
        context: str | None = None,
        namespace: str = "default",
        deployment: str = "",
        container: str = "",
        kubeconfig: str | os.PathLike[str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(model, str):  # (ModelConfig, KubernetesTargetConfig)
            cfg = name
            model_name = str(model.name)
            deployment = cfg.deployment or model_name
            model, name = model_name, cfg.name
            context, namespace, kubeconfig = cfg.context, cfg.namespace, cfg.kubeconfig
            container = cfg.container or deployment
            timeout = cfg.timeout
        self.model = model
        self.name = str(name)
        self.context = context or ""
        self.namespace = namespace
        self.deployment = deployment or model
        self.container = container
        self.kubeconfig = kubeconfig
        self.timeout = float(timeout)
        self._api: Api | None = None
        self._permissions: tuple[float, dict[str, Permission]] | None = None
        #: The last preview and the Deployment and ReplicaSets it was computed from.
        self._previewed: tuple[RollbackPreview, Obj, list[Obj]] | None = None

    @classmethod
    def from_config(cls, model_cfg: Any, target_cfg: Any) -> KubernetesTarget:
        """Return the target for a model's ``[[model.target]]`` of kind kubernetes.

        The Deployment defaults to the model name, the container to the Deployment name.
        """
        return cls(model_cfg, target_cfg)

    def __repr__(self) -> str:
        return (
            f"KubernetesTarget({self.model!r}, {self.name!r}, context={self.context!r}, "
            f"{self.namespace}/{self.deployment}:{self.container or '*'})"
        )

    # -- plumbing ----------------------------------------------------------

    @property
    def api(self) -> Api:
        """The shared JSON client for this target's cluster (created on first use)."""
        if self._api is None:
            self._api = api_for(self.context, self.kubeconfig)
        return self._api

    @property
    def _what(self) -> str:
        return f"deployment {self.namespace}/{self.deployment}"

    def _read(self) -> Obj:
        return self.api.request(
            "GET",
            apps_path(self.namespace, "deployments", self.deployment),
            timeout=self.timeout,
            what=self._what,
        )

    def _replicasets(self, dep: Obj) -> list[Obj]:
        selector = st.selector_string((dep.get("spec") or {}).get("selector"))
        items, _ = self.api.list_all(
            apps_path(self.namespace, "replicasets"),
            timeout=self.timeout,
            query=[("labelSelector", selector)] if selector else [],
            what=f"replicasets of {self._what}",
        )
        return [rs for rs in items if undo.is_controlled_by(rs, dep)]

    def _patch(self, body: Any, content_type: str) -> Obj:
        return self.api.request(
            "PATCH",
            apps_path(self.namespace, "deployments", self.deployment),
            timeout=self.timeout,
            body=body,
            content_type=content_type,
            what=self._what,
        )

    def _container_name(self, dep: Obj) -> str:
        template = (dep.get("spec") or {}).get("template") or {}
        found = st.find_container(template, self.container)
        if found is None:
            raise NotFound(f"container {self.container!r} not found in {self._what}")
        return str(found.get("name", ""))

    def state_from(self, dep: Mapping[str, Any]) -> RolloutState:
        """Return this target's :class:`RolloutState` from a Deployment's JSON.

        Its ``basis`` is the Deployment's fingerprint (see :meth:`_refuse_if_changed`).
        """
        state = st.rollout_state(dep, model=self.model, target=self.name, container=self.container)
        return replace(state, basis=undo.fingerprint(dep))

    def _refuse_if_changed(self, dep: Obj, expected: Seen, action: str) -> None:
        """Raise Conflict when ``dep`` is not the Deployment the operator saw (``expected``).

        A basis (fingerprint) is compared when ``expected`` has one, else the
        revision, image, commit and pause state. None checks nothing.
        """
        if expected is not None:
            refuse_if_changed(self._what, action, expected, self.state_from(dep))

    # -- reading -----------------------------------------------------------

    def status(self) -> RolloutState:
        """Return the live state with ``kubectl rollout status`` semantics.

        Raises BackendUnavailable, NotFound, PermissionDenied.
        """
        return self.state_from(self._read())

    def detail(self) -> TargetDetail:
        """Return the state plus pods (by the Deployment's selector), conditions and the
        recent events of the Deployment, its ReplicaSets and their pods (newest last).
        """
        dep = self._read()
        selector = st.selector_string((dep.get("spec") or {}).get("selector"))
        pods, _ = self.api.list_all(
            core_path(self.namespace, "pods"),
            timeout=self.timeout,
            query=[("labelSelector", selector)] if selector else [],
        )
        owned = {(rs.get("metadata") or {}).get("name") for rs in self._replicasets(dep)}
        events, _ = self.api.list_all(core_path(self.namespace, "events"), timeout=self.timeout)
        mine = [e for e in events if self._involves(e, owned)]
        converted = [self._event(e) for e in mine]
        converted.sort(key=lambda e: e.time)
        return TargetDetail(
            state=self.state_from(dep),
            pods=tuple(
                st.pod_info(p, self.container)
                for p in sorted(pods, key=lambda p: p["metadata"]["name"])
            ),
            conditions=st.conditions(dep),
            events=tuple(converted[-50:]),
        )

    def _involves(self, event: Mapping[str, Any], owned_rs: set[Any]) -> bool:
        obj = event.get("involvedObject") or {}
        kind, name = obj.get("kind"), str(obj.get("name", ""))
        if kind == "Deployment":
            return name == self.deployment
        if kind == "ReplicaSet":
            return name in owned_rs
        if kind == "Pod":
            return name.rsplit("-", 1)[0] in owned_rs
        return False

    @staticmethod
    def _event(event: Mapping[str, Any]) -> TargetEvent:
        obj = event.get("involvedObject") or {}
        count = int(event.get("count") or (event.get("series") or {}).get("count") or 1)
        message = str(event.get("message", "")).strip()
        if count > 1:
            message += f" (x{count})"
        return TargetEvent(
            time=st.event_time(event) or datetime.now(UTC),
            kind=str(event.get("type", "Normal")),
            reason=str(event.get("reason", "")),
            message=message,
            object=f"{obj.get('kind', '')}/{obj.get('name', '')}",
        )

    def history(self) -> list[Revision]:
        """Return the revisions (ReplicaSets the Deployment controls), newest first.

        ``current`` marks the Deployment's own revision. Raises BackendUnavailable, NotFound.
        """
        dep = self._read()
        current = st.revision_of(dep) or None
        replicasets = self._replicasets(dep)
        new_rs = undo.new_replicaset(dep, replicasets)
        revisions = []
        for rs in replicasets:
            number = st.revision_of(rs)
            if number is None:
                continue
            meta = rs.get("metadata") or {}
            template = (rs.get("spec") or {}).get("template") or {}
            image = st.container_image(template, self.container)
            is_current = number == current if current else rs is new_rs
            revisions.append(
                Revision(
                    number=number,
                    image=image,
                    commit=st.commit_of(rs, template, image),
                    created=st.parse_time(meta.get("creationTimestamp")),
                    change_cause=st.annotations_of(rs).get(st.CHANGE_CAUSE_ANNOTATION, ""),
                    current=is_current,
                    extra={
                        "replicaset": meta.get("name", ""),
                        "replicas": int((rs.get("status") or {}).get("replicas", 0)),
                        "ready": int((rs.get("status") or {}).get("readyReplicas", 0)),
                    },
                )
            )
        revisions.sort(key=lambda r: r.number, reverse=True)
        return revisions

    # -- writing -----------------------------------------------------------

    def _write_conditionally(
        self, dep: Obj, make: Any, changed: Callable[[Obj], Conflict] | None = None
    ) -> Obj:
        """Apply ``make(dep) -> (body, content_type)``, a patch conditional on ``dep``'s version.

        Returns the patched Deployment. When the condition fails and only the
        Deployment's status moved, the patch is rebuilt on the fresh object
        and sent again; when its spec or annotations changed, raises
        ``changed(fresh)`` if given, else a Conflict saying what changed.
        """
        for _ in range(WRITE_RETRIES + 1):
            body, content_type = make(dep)
            try:
                return self._patch(body, content_type)
            except (Conflict, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status != 422:
                    raise
                fresh = self._read()
                if undo.fingerprint(fresh) != undo.fingerprint(dep):
                    if changed is not None:
                        raise changed(fresh) from exc
                    change = undo.describe_change(dep, fresh, self.container)
                    raise Conflict(
                        f"{self._what} was changed by someone else since it was read "
                        f"({change}); nothing was applied: review it and try again"
                    ) from exc
                if _rv(fresh) == _rv(dep):  # not a version race: a genuine rejection
                    raise
                dep = fresh
        raise Conflict(f"{self._what} keeps changing; nothing was applied: try again")

    def rollout(
        self,
        artifact: Artifact,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: Seen = None,
    ) -> Iterator[Progress]:
        """Set the container's image, then yield progress until the rollout completes.

        ``expected`` is what the operator saw: a Deployment changed since
        (spec or annotations) is refused with Conflict. The patch records
        ``kubernetes.io/change-cause`` ("mrc: rollout IMAGE (commit SHA) by
        USER: REASON") and the commit (``mrc.dev/commit``), and is conditional
        on the version read (a racing change -> Conflict).
        Raises OperationFailed (paused Deployment, ProgressDeadlineExceeded),
        Conflict, NotFound, PermissionDenied, BackendUnavailable, Cancelled.
        """
        if not artifact.image:
            raise OperationFailed("a Kubernetes rollout needs an image reference")
        cancel = cancel or CancelToken()
        dep = self._read()
        self._refuse_if_changed(dep, expected, "rollout")
        if (dep.get("spec") or {}).get("paused"):
            raise OperationFailed(f"{self._what} is paused: resume it before rolling out")
        container = self._container_name(dep)
        image, commit = artifact.image, artifact.commit
        notes: dict[str, str | None] = {
            st.CHANGE_CAUSE_ANNOTATION: change_cause("rollout", image, commit, reason),
            st.COMMIT_ANNOTATION: commit or None,
            st.IMAGE_ANNOTATION: image if commit else None,
        }

        def make(current: Obj) -> tuple[Obj, str]:
            body = {
                "metadata": {"resourceVersion": _rv(current), "annotations": notes},
                "spec": {
                    "template": {"spec": {"containers": [{"name": container, "image": image}]}}
                },
            }
            return body, STRATEGIC_PATCH

        yield Progress("rollout", f"setting {container} of {self._what} to {image}")
        patched = self._write_conditionally(dep, make)
        yield Progress("rollout", f"{self._what} updated to {image}", fraction=0.0)
        yield from self._follow(patched, cancel, "rollout")

    def preview_rollback(self, to_revision: int | None = None) -> RollbackPreview:
        """Return what :meth:`rollback` would do, changing nothing.

        Raises NotFound (no such revision, no history) and OperationFailed
        (paused Deployment) with ``kubectl rollout undo``'s messages.
        """
        dep = self._read()
        replicasets = self._replicasets(dep)
        preview = self._preview(dep, replicasets, undo.plan_rollback(dep, replicasets, to_revision))
        self._previewed = (preview, dep, replicasets)
        return preview

    def _preview(
        self, dep: Obj, replicasets: list[Obj], plan: undo.RollbackPlan
    ) -> RollbackPreview:
        rs = next(r for r in replicasets if r["metadata"]["name"] == plan.replicaset)
        rs_template = (rs.get("spec") or {}).get("template") or {}
        current = (dep.get("spec") or {}).get("template") or {}
        from_image = st.container_image(current, self.container)
        to_image = st.container_image(plan.template, self.container)
        return RollbackPreview(
            model=self.model,
            target=self.name,
            from_revision=plan.from_revision,
            to_revision=plan.to_revision,
            from_image=from_image,
            to_image=to_image,
            from_commit=st.commit_of(dep, current, from_image),
            to_commit=st.commit_of(rs, rs_template, to_image),
            diff="" if plan.noop else undo.plan_diff(plan),
            noop=plan.noop,
            warning=plan.message if plan.noop else plan.warning,
            basis=undo.fingerprint(dep),
        )

    def rollback(
        self,
        to_revision: int | None = None,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: RollbackPreview | None = None,
    ) -> Iterator[Progress]:
        """Roll back exactly as ``kubectl rollout undo [--to-revision N]``, then follow it.

        ``expected`` is the preview the operator confirmed: if the Deployment
        changed since (another rollout, a pause, edited annotations) nothing
        is applied and Conflict is raised; without ``to_revision`` its
        revision is used. When ``expected`` is this target's latest preview the
        Deployment and ReplicaSets it was computed from are not read again:
        the patch is conditional on that read's resourceVersion, so a change
        since is found when the server refuses the patch, and judged as after
        a fresh read. The first Progress is yielded once the API server
        has acknowledged the patch. The change-cause is the restored
        ReplicaSet's, as kubectl leaves it; ``reason`` belongs in the journal.
        Raises NotFound, OperationFailed (paused; deadline exceeded),
        Conflict, PermissionDenied, BackendUnavailable, Cancelled.
        """
        del reason  # recorded by the caller's journal entry
        cancel = cancel or CancelToken()
        previewed = self._previewed
        reuse = previewed is not None and expected is not None and previewed[0] is expected
        dep = previewed[1] if previewed is not None and reuse else self._read()
        if expected is not None and expected.basis and undo.fingerprint(dep) != expected.basis:
            raise self._changed_since(expected, dep)
        if to_revision is None and expected is not None:
            to_revision = expected.to_revision
        replicasets = previewed[2] if previewed is not None and reuse else self._replicasets(dep)
        plan = undo.plan_rollback(dep, replicasets, to_revision)
        if plan.noop:
            yield Progress("rollback", plan.message, fraction=1.0)
            return
        to_image = st.container_image(plan.template, self.container)

        def make(current: Obj) -> tuple[Any, str]:
            if current is dep:
                return plan.patch(), JSON_PATCH
            # Re-planned on the fresh object so the revision bookkeeping kept from the
            # Deployment is current; the ReplicaSets are re-read if the revision moved.
            owned = replicasets
            if st.revision_of(current) != st.revision_of(dep):
                owned = self._replicasets(current)
            again = undo.plan_rollback(current, owned, to_revision)
            if again.noop or (again.to_revision, again.template) != (
                plan.to_revision,
                plan.template,
            ):
                raise Conflict(
                    f"the revision to roll {self._what} back to changed meanwhile (now revision "
                    f"{again.to_revision}); nothing was applied: review it and try again"
                )
            return again.patch(), JSON_PATCH

        changed = partial(self._changed_since, expected) if reuse and expected else None
        patched = self._write_conditionally(dep, make, changed)
        yield Progress(
            "rollback",
            f"{self._what} rolled back to revision {plan.to_revision} ({to_image})",
            fraction=0.0,
        )
        yield from self._follow(patched, cancel, "rollback")

    def _changed_since(self, preview: RollbackPreview, dep: Obj) -> Conflict:
        """Return the Conflict of a rollback whose ``preview`` no longer matches ``dep``."""
        now = self.state_from(dep)
        return Conflict(
            f"{self._what} changed since the rollback was previewed (previewed revision "
            f"{preview.from_revision} {preview.from_image}, now revision {now.revision} "
            f"{now.image}); nothing was applied: review it and try again"
        )

    def _follow(self, patched: Obj, cancel: CancelToken, step: str) -> Iterator[Progress]:
        """Yield progress of the rollout started by ``patched`` until it completes.

        Watches the Deployment (re-reading it after 410 Gone or a lost
        connection, with backoff). Raises OperationFailed when the progress
        deadline is exceeded or the Deployment gets paused, Cancelled.
        """
        generation = int(patched["metadata"].get("generation", 0))
        last = ""
        done = False
        current: list[Any] = []
        cancel.on_cancel(closer(current))

        def judge(dep: Obj) -> Progress | None:
            nonlocal last, done
            status = dep.get("status") or {}
            if int(status.get("observedGeneration", 0)) < generation:
                message, fraction = "waiting for rollout to be observed", 0.0
            else:
                verdict = st.evaluate(dep)
                if verdict.phase is Phase.FAILED:
                    raise OperationFailed(verdict.message)
                if verdict.done and verdict.phase is Phase.COMPLETE:
                    done = True
                    revision = st.revision_of(dep)
                    return Progress(
                        step, f"{self._what} successfully rolled out (revision {revision})", 1.0
                    )
                if verdict.phase is Phase.PAUSED:
                    raise OperationFailed(
                        f"{self._what} was paused during the {step}; it continues once resumed"
                    )
                message, fraction = verdict.message, _fraction(dep)
            if message == last:
                return None
            last = message
            return Progress(step, message, fraction)

        first = judge(patched)
        if first is not None:
            yield first
            if done:
                return
        path = apps_path(self.namespace, "deployments")
        query = [("fieldSelector", f"metadata.name={self.deployment}")]
        rv: str | None = _rv(patched)
        backoff = 0.5
        while not cancel.cancelled:
            try:
                if rv is None:
                    dep = self._read()
                    rv = _rv(dep)
                    progress = judge(dep)
                    if progress is not None:
                        yield progress
                        if done:
                            return
                params = [*query, ("resourceVersion", rv), ("allowWatchBookmarks", "true")]
                events = self.api.watch(
                    path, query=params, timeout=self.timeout, cancel=cancel, current=current
                )
                for event in events:
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":  # 410 Gone (or another watch error): re-list
                        rv = None
                        break
                    rv = _rv(obj) or rv
                    if kind == "DELETED":
                        raise NotFound(f"{self._what} was deleted during the {step}")
                    if kind == "BOOKMARK":
                        continue
                    progress = judge(obj)
                    if progress is not None:
                        yield progress
                        if done:
                            return
                backoff = 0.5
            except BackendUnavailable as exc:
                yield Progress(step, f"{exc}; retrying", level="warning")
                if cancel.wait(backoff):
                    break
                backoff = min(backoff * 2, 10.0)
                rv = None
        raise Cancelled(f"stopped following the {step} of {self._what}; it goes on in the cluster")

    def pause(self, *, expected: Seen = None) -> None:
        """Pause rollouts of the Deployment (``spec.paused``).

        Raises like :meth:`status`, and Conflict when ``expected`` is given
        and the Deployment changed since (see :meth:`_set_paused`).
        """
        self._set_paused(True, expected)

    def resume(self, *, expected: Seen = None) -> None:
        """Resume a paused Deployment. Raises like :meth:`pause`."""
        self._set_paused(False, expected)

    def _set_paused(self, paused: bool, expected: Seen) -> None:
        """Patch ``spec.paused``; with ``expected``, only on the Deployment the operator saw.

        Without ``expected`` the patch is unconditional (as ``kubectl rollout
        pause``). With it, the Deployment is read, compared (Conflict when it
        changed) and patched conditionally on the version read.
        """
        body: Obj = {"spec": {"paused": paused}}
        if expected is None:
            self._patch(body, MERGE_PATCH)
            return
        dep = self._read()
        self._refuse_if_changed(dep, expected, "resume" if not paused else "pause")
        self._write_conditionally(
            dep,
            lambda current: ({**body, "metadata": {"resourceVersion": _rv(current)}}, MERGE_PATCH),
        )

    def restart(self, *, expected: Seen = None) -> None:
        """Restart the pods as ``kubectl rollout restart`` does (template ``restartedAt``).

        Raises OperationFailed for a paused Deployment, with kubectl's
        message, and Conflict when ``expected`` is given and the Deployment
        changed since the operator saw it (the patch is then also conditional
        on the version read).
        """
        dep = self._read()
        self._refuse_if_changed(dep, expected, "restart")
        if (dep.get("spec") or {}).get("paused"):
            raise OperationFailed(RESTART_PAUSED_MESSAGE)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body: Obj = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        if expected is None:
            self._patch(body, STRATEGIC_PATCH)
            return
        self._write_conditionally(
            dep,
            lambda current: (
                {**body, "metadata": {"resourceVersion": _rv(current)}},
                STRATEGIC_PATCH,
            ),
        )

    # -- live events ---------------------------------------------------------

    def watch(self, cancel: CancelToken) -> Iterator[TargetEvent]:
        """Yield new events of the Deployment, its ReplicaSets and their pods until cancelled.

        Uses the watch API from the resourceVersion of a list, re-lists after
        410 Gone, and reconnects with exponential backoff (0.5 s to 30 s) when
        the API server cannot be reached, yielding one ``state`` event
        "Disconnected" per outage and "Reconnected" when it answers again.
        """
        path = core_path(self.namespace, "events")
        owned: set[Any] = set()
        refreshed = 0.0
        rv: str | None = None
        backoff = 0.5
        down = False
        current: list[Any] = []
        cancel.on_cancel(closer(current))

        def refresh() -> None:
            nonlocal owned, refreshed
            dep = self._read()
            owned = {(rs.get("metadata") or {}).get("name") for rs in self._replicasets(dep)}
            refreshed = time.monotonic()

        def maybe_new_owner(event: Mapping[str, Any]) -> bool:
            name = str((event.get("involvedObject") or {}).get("name", ""))
            return name.startswith(self.deployment + "-") and time.monotonic() - refreshed > 2.0

        while not cancel.cancelled:
            try:
                if rv is None:
                    refresh()
                    listed = self.api.request(
                        "GET", path, timeout=self.timeout, query=[("limit", 1)]
                    )
                    rv = str((listed.get("metadata") or {}).get("resourceVersion", ""))
                    if down:
                        down = False
                        yield _state_event(
                            "Reconnected", f"{self.context} API server answers again"
                        )
                params = [("resourceVersion", rv), ("allowWatchBookmarks", "true")]
                events = self.api.watch(
                    path, query=params, timeout=self.timeout, cancel=cancel, current=current
                )
                for event in events:
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        rv = None
                        break
                    rv = _rv(obj) or rv
                    if kind not in ("ADDED", "MODIFIED"):
                        continue
                    if not self._involves(obj, owned) and maybe_new_owner(obj):
                        refresh()
                    if self._involves(obj, owned):
                        yield self._event(obj)
                backoff = 0.5
            except (BackendUnavailable, NotFound) as exc:
                if not down:
                    down = True
                    reason = "Disconnected" if isinstance(exc, BackendUnavailable) else "NotFound"
                    yield _state_event(reason, str(exc))
                if cancel.wait(backoff):
                    return
                backoff = min(backoff * 2, 30.0)
                rv = None

    # -- permissions ---------------------------------------------------------

    def permissions(self) -> dict[str, Permission]:
        """Return, per action, whether RBAC allows it, cached 60 s.

        Every action patches the Deployment; rollback also lists its
        ReplicaSets. The namespace's rules come from one SelfSubjectRulesReview
        shared by every target of the namespace (:mod:`core.targets.k8s_rbac`);
        when the server cannot list them completely, this target asks a
        SelfSubjectAccessReview per question. Raises BackendUnavailable when
        the API server cannot be reached.
        """
        now = time.monotonic()
        if self._permissions is not None and now - self._permissions[0] < PERMISSION_TTL:
            return dict(self._permissions[1])
        rules = rbac.namespace_rules(self.api, watch_group(self), self.namespace, self.timeout)
        if rules is None:
            patch = self._review("patch", "deployments")
            listing = self._review("list", "replicasets")
        else:
            patch = self._judge(rules, "patch", "deployments")
            listing = self._judge(rules, "list", "replicasets")
        who = None
        result = {}
        for action in ACTIONS:
            denied = patch if not patch.allowed else None
            if denied is None and action == "rollback" and not listing.allowed:
                denied = listing
            if denied is None:
                result[action] = Permission(True)
                continue
            if who is None:
                who = rbac.shared_username(watch_group(self)[:2], self._username)
            result[action] = Permission(False, denied.reason.replace("{who}", who))
        self._permissions = (now, result)
        return dict(result)

    def _judge(self, rules: Sequence[rbac.Rule], verb: str, resource: str) -> Permission:
        """Return whether ``rules`` allow ``verb`` on this Deployment (or the collection)."""
        name = self.deployment if resource == "deployments" else ""
        if rbac.allows(rules, verb, "apps", resource, name):
            return Permission(True)
        return Permission(
            False, "RBAC: {who} " + f"may not {verb} {resource} in namespace {self.namespace}"
        )

    def _review(self, verb: str, resource: str) -> Permission:
        attributes = {
            "namespace": self.namespace,
            "verb": verb,
            "group": "apps",
            "resource": resource,
        }
        if resource == "deployments":
            attributes["name"] = self.deployment
        answer = self.api.request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            timeout=self.timeout,
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            },
        )
        status = answer.get("status") or {}
        if status.get("allowed"):
            return Permission(True)
        why = status.get("reason") or status.get("evaluationError") or ""
        text = "RBAC: {who} " + f"may not {verb} {resource} in namespace {self.namespace}"
        return Permission(False, f"{text} ({why})" if why else text)

    def _username(self) -> str:
        try:
            answer = self.api.request(
                "POST",
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                timeout=self.timeout,
                body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            )
        except MrcError:
            return "you"
        name = ((answer.get("status") or {}).get("userInfo") or {}).get("username")
        return f"user {name}" if name else "you"

    def close(self) -> None:
        """Forget the shared client reference (the pool stays for other targets)."""
        self._api = None


# --------------------------------------------------------------------------
# One watch for many targets


def watch_group(target: KubernetesTarget) -> tuple[str, str, str]:
    """Return the key under which targets share one Deployment watch.

    Targets with the same (kubeconfig, context, namespace) are served by one
    :func:`watch_states`. Never contacts the cluster.
    """
    return (str(target.kubeconfig or ""), target.context, target.namespace)


def watch_states(
    targets: Sequence[KubernetesTarget], cancel: CancelToken
) -> Iterator[list[tuple[KubernetesTarget, RolloutState | NotFound]]]:
    """Yield the states of ``targets`` from one watch of their namespace's Deployments.

    All ``targets`` share one :func:`watch_group` (ValueError otherwise). The
    first batch holds every target (one paged list of the namespace); each
    later batch holds the targets of one changed Deployment (a NotFound
    stands for a Deployment that does not exist or was deleted). After 410
    Gone (a watch ERROR event) the namespace is listed again and every target
    is yielded again. States come from :meth:`KubernetesTarget.state_from`,
    the one status mapping. Returns when ``cancel`` is set; raises
    BackendUnavailable, PermissionDenied or ConfigError when the API server
    cannot be listed or watched, leaving reconnection to the caller.
    """
    if not targets:
        return
    first = targets[0]
    if any(watch_group(t) != watch_group(first) for t in targets):
        raise ValueError("watch_states needs targets of one kubeconfig, context and namespace")
    by_name: dict[str, list[KubernetesTarget]] = {}
    for target in targets:
        by_name.setdefault(target.deployment, []).append(target)
    api, path = first.api, apps_path(first.namespace, "deployments")
    current: list[Any] = []
    cancel.on_cancel(closer(current))

    def states(
        name: str, dep: Obj | None
    ) -> list[tuple[KubernetesTarget, RolloutState | NotFound]]:
        mine = by_name.get(name, [])
        if dep is None:
            return [(t, NotFound(f"{t._what} not found in context {api.context}")) for t in mine]
        return [(t, t.state_from(dep)) for t in mine]

    rv: str | None = None
    while not cancel.cancelled:
        if rv is None:
            items, rv = api.list_all(
                path, timeout=first.timeout, what=f"deployments in namespace {first.namespace}"
            )
            found = {str((dep.get("metadata") or {}).get("name", "")): dep for dep in items}
            yield [pair for name in by_name for pair in states(name, found.get(name))]
        params = [("resourceVersion", rv), ("allowWatchBookmarks", "true")]
        events = api.watch(
            path, query=params, timeout=first.timeout, cancel=cancel, current=current
        )
        for event in events:
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":  # 410 Gone (or another watch error): list again
                rv = None
                break
            rv = _rv(obj) or rv
            name = str((obj.get("metadata") or {}).get("name", ""))
            if kind in ("ADDED", "MODIFIED", "DELETED") and name in by_name:
                yield states(name, None if kind == "DELETED" else obj)


# --------------------------------------------------------------------------
# Helpers


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _fraction(dep: Mapping[str, Any]) -> float:
    desired = int((dep.get("spec") or {}).get("replicas", 0) or 0)
    if desired <= 0:
        return 1.0
    status = dep.get("status") or {}
    updated = min(int(status.get("updatedReplicas", 0)), desired)
    available = min(int(status.get("availableReplicas", 0)), updated)
    return round(min((updated + available) / (2 * desired), 0.99), 3)


def _state_event(reason: str, message: str) -> TargetEvent:
    return TargetEvent(time=datetime.now(UTC), kind="state", reason=reason, message=message)


_UNSAFE = re.compile(r"[\x00-\x1f\x7f]+")


def change_cause(action: str, image: str, commit: str, reason: str, user: str = "") -> str:
    """Return the change-cause the console records, e.g.
    ``mrc: rollout repo/m:1a2b (commit 1a2b3c4d5e6f) by alice: fix drift``.

    Control characters in ``reason`` are replaced by spaces.
    """
    who = user or _user()
    text = f"mrc: {action} {image}"
    if commit:
        text += f" (commit {commit[:12]})"
    text += f" by {who}"
    reason = _UNSAFE.sub(" ", reason).strip()
    if reason:
        text += f": {reason[:500]}"
    return text


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
