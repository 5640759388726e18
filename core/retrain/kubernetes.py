"""The ``kubernetes`` retrain executor: the command runs as a Job on the cluster of a target.

The Job is the model's own manifest, ``[model.retrain] job_template``
(default ``deploy/retrain-job.yaml``) read from the model repository AT the
commit being retrained, so a template changes with the code it trains. It
must be one ``batch/v1`` ``Job``. mrc sets on it:

* ``metadata.name`` ``mrc-retrain-<model>-<UTC timestamp>`` (unique: a
  random suffix is added when the name is taken) and ``metadata.namespace``,
  the namespace of the retrain target (``[model.retrain] target``, else the
  model's first kubernetes target), on whose cluster it runs;
* labels ``app.kubernetes.io/managed-by: mrc``, ``mrc/model``, ``mrc/commit``
  (short sha) and ``mrc/trigger`` (``drift`` when a drift score started it,
  else ``manual``), and annotations ``mrc/branch``, ``mrc/started-by`` and
  ``mrc/reason``, on the Job and on its pod template (so the downward API can
  hand them to the container);
* the ``MRC_RETRAIN_*`` variables of :meth:`RetrainJob.environment` in every
  container and init container (replacing same-named entries). The workdir
  and output variables are empty: the Job has no worktree from this machine;
* the image of a container that has none: ``[model.retrain] image``, else the
  model's image at the commit (``<image>:<short sha>``).

Nothing else of the template is changed. The Job checks out
``MRC_RETRAIN_COMMIT`` from ``MRC_RETRAIN_REMOTE``, trains, commits and pushes
the result to branch ``MRC_RETRAIN_BRANCH`` of that remote itself
(:attr:`KubernetesExecutor.publishes_branch`); the retrain service then
fetches that branch. This executor only runs and follows the Job: it reports
its pods' phases and events (``FailedScheduling``...) as
``Progress(step="executor")`` and their log lines as ``step="output"``,
returns when the Job has condition ``Complete`` and raises OperationFailed
with the Job's reason and the pods' events when it has ``Failed``. A failed
Job is left in place for inspection. On cancel and on timeout the Job is
deleted with ``propagationPolicy: Foreground`` (its pods go first), then
Cancelled or OperationFailed is raised.
"""

from __future__ import annotations

import contextlib
import copy
import queue
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from core.cancel import CancelToken
from core.domain import Progress
from core.errors import (
    BackendUnavailable,
    Cancelled,
    ConfigError,
    Conflict,
    NotFound,
    OperationFailed,
)
from core.retrain.base import RetrainJob, TargetExecutor
from core.targets.k8s_api import Api, ApiError, Obj, api_for, closer, core_path

if TYPE_CHECKING:
    from core.config import KubernetesTargetConfig

MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_MODEL = "mrc/model"
LABEL_COMMIT = "mrc/commit"
LABEL_TRIGGER = "mrc/trigger"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"

#: Seconds between two looks at the Job, its pods and their events.
POLL = 1.0
#: Seconds the deletion of a cancelled or timed-out Job (and its pods) is waited for.
DELETE_WAIT = 30.0
#: Seconds the last log lines of a finished Job are waited for.
LOG_DRAIN = 5.0
#: Events kept for the failure message.
EVENTS_KEPT = 10

_UNSAFE = re.compile(r"[^a-z0-9-]+")
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def jobs_path(namespace: str, name: str = "") -> str:
    """Return the ``batch/v1`` path of the Jobs of ``namespace``, or of Job ``name`` in it."""
    base = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    return f"{base}/{name}" if name else base


def job_name(model: str, branch: str, suffix: str = "") -> str:
    """Return the Job name for a retrain of ``model`` onto ``branch`` (a DNS label, <= 63).

    ``mrc-retrain-<model>-<timestamp of the branch>[-<suffix>]``, lower case,
    characters outside ``[a-z0-9-]`` replaced by ``-``; the model part is
    shortened when the whole would be too long. Never raises.
    """
    stamp = _UNSAFE.sub("-", branch.rsplit("/", 1)[-1].lower()).strip("-")
    tail = f"-{stamp}" + (f"-{suffix}" if suffix else "")
    room = 63 - len("mrc-retrain-") - len(tail)
    model_part = _UNSAFE.sub("-", model.lower()).strip("-")[: max(room, 1)].strip("-")
    return f"mrc-retrain-{model_part or 'model'}{tail}"[:63].rstrip("-")


def _label_value(value: str) -> str:
    """Return ``value`` as a valid label value (<= 63 characters of ``[A-Za-z0-9_.-]``)."""
    return _LABEL_UNSAFE.sub("-", value)[:63].strip("-_.")


class KubernetesExecutor(TargetExecutor):
    """Runs a retrain command as a Kubernetes Job made from the model's template (see the module).

    Constructing it reads the configuration only; the repository and the
    cluster are used in :meth:`run`.
    """

    kind: ClassVar[str] = "kubernetes"
    publishes_branch: ClassVar[bool] = True

    def target(self) -> KubernetesTargetConfig:
        """Return the kubernetes target whose cluster and namespace run the Job.

        ``[model.retrain] target`` when set, else the model's first kubernetes
        target. Raises ConfigError when there is none, or the named one is of
        another kind.
        """
        from core.config import KubernetesTargetConfig

        target = self.target_of(KubernetesTargetConfig, "kubernetes")
        if target is None:
            raise self.config_error("the kubernetes retrain executor needs a kubernetes target")
        return target

    def manifest(self, job: RetrainJob, namespace: str) -> Obj:
        """Return the Job to create for ``job``: the template at the commit plus what mrc sets.

        Raises ConfigError when the template does not exist at the commit, is
        not YAML, or is not one ``batch/v1`` Job, or when a container has no
        image and none is configured.
        """
        import yaml  # PyYAML comes with the kubernetes client

        retrain = self.retrain
        path = retrain.job_template
        where = f"{path} at commit {job.commit[:8]} of {self.model.repo}"
        try:
            raw = self.workspace.repository(self.model.name).file_at(job.commit, path)
        except NotFound as err:
            raise self.config_error(
                f"job_template {path} does not exist at commit {job.commit[:8]} of "
                f"{self.model.repo}: commit a batch/v1 Job manifest there (see "
                "examples/retrain-job.yaml in mrc's sources) or set [model.retrain] job_template"
            ) from err
        try:
            documents = [d for d in yaml.safe_load_all(raw.decode("utf-8", "replace")) if d]
        except yaml.YAMLError as err:
            raise ConfigError(where, [f"not valid YAML: {err}"]) from err
        if len(documents) != 1 or not isinstance(documents[0], dict):
            raise ConfigError(where, ["must hold exactly one Kubernetes object, a batch/v1 Job"])
        obj: Obj = copy.deepcopy(documents[0])
        if obj.get("apiVersion") != "batch/v1" or obj.get("kind") != "Job":
            found = f"{obj.get('apiVersion', '?')} {obj.get('kind', '?')}"
            raise ConfigError(where, [f"must be a batch/v1 Job, not {found}"])
        spec = obj.get("spec")
        template = spec.get("template") if isinstance(spec, dict) else None
        pod_spec = template.get("spec") if isinstance(template, dict) else None
        if not isinstance(pod_spec, dict) or not isinstance(pod_spec.get("containers"), list):
            raise ConfigError(where, ["spec.template.spec.containers is missing"])
        assert isinstance(template, dict)
        self._decorate(obj, template, pod_spec, job, namespace, where)
        return obj

    def _decorate(
        self,
        obj: Obj,
        template: Obj,
        pod_spec: Obj,
        job: RetrainJob,
        namespace: str,
        where: str,
    ) -> None:
        labels = {
            MANAGED_BY: "mrc",
            LABEL_MODEL: _label_value(job.model),
            LABEL_COMMIT: job.commit[:8],
            LABEL_TRIGGER: "drift" if job.trigger.score is not None else "manual",
        }
        annotations = {
            "mrc/branch": job.branch,
            "mrc/started-by": job.trigger.started_by,
            "mrc/reason": job.trigger.reason,
        }
        meta = obj.setdefault("metadata", {})
        for key in ("generateName", "resourceVersion", "uid", "creationTimestamp"):
            meta.pop(key, None)
        meta["name"] = job_name(job.model, job.branch)
        meta["namespace"] = namespace
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
        meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
        pod_meta = template.setdefault("metadata", {})
        pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
        pod_meta["annotations"] = {**(pod_meta.get("annotations") or {}), **annotations}
        env = job.environment(workdir="", output="")
        image = ""
        for container in [*pod_spec["containers"], *(pod_spec.get("initContainers") or [])]:
            if not isinstance(container, dict):
                raise ConfigError(where, ["a container of spec.template.spec is not a mapping"])
            kept = [e for e in container.get("env") or [] if e.get("name") not in env]
            container["env"] = [*kept, *({"name": k, "value": v} for k, v in env.items())]
            if not container.get("image"):
                image = image or self.image_for(job.commit)
                container["image"] = image

    # -- running

    def run(self, job: RetrainJob, cancel: CancelToken) -> Iterator[Progress]:
        """Create the Job for ``job`` and follow it until it completes; see the module.

        Raises ConfigError (template missing or invalid, including the API
        server's own message for a Job it rejects), PermissionDenied (with the
        API's message), BackendUnavailable, NotFound (no such namespace),
        OperationFailed (the Job failed, or did not complete within
        ``job.timeout``: then it is deleted), Cancelled (after the Job and its
        pods were deleted).
        """
        target = self.target()
        manifest = self.manifest(job, target.namespace)
        cancel.raise_if_cancelled()
        api = api_for(target.context, target.kubeconfig)
        created = self._create(api, manifest, target.timeout, job)
        name = str(created["metadata"]["name"])
        yield Progress(
            step="executor",
            message=f"Job {target.namespace}/{name} created on {api.context} (pushes {job.branch})",
            detail=name,
        )
        follower = _Follower(api, target.namespace, name, target.timeout, cancel)
        finished = False
        try:
            yield from follower.follow(job)
            finished = True
        finally:
            follower.stop()
            if not (finished or follower.failed or follower.deleted):
                # Cancelled, timed out, or the caller stopped listening: the Job must not
                # go on pushing a branch nobody waits for.
                with contextlib.suppress(Exception):
                    follower.delete()

    def _create(self, api: Api, manifest: Obj, timeout: float, job: RetrainJob) -> Obj:
        namespace = str(manifest["metadata"]["namespace"])
        where = f"{self.retrain.job_template} at commit {job.commit[:8]}"
        for attempt in range(2):
            if attempt:
                manifest["metadata"]["name"] = job_name(job.model, job.branch, secrets.token_hex(2))
            try:
                return api.request(
                    "POST",
                    jobs_path(namespace),
                    timeout=timeout,
                    body=manifest,
                    content_type="application/json",
                    what=f"namespace {namespace}",
                )
            except Conflict:
                if attempt:
                    raise
            except ApiError as err:
                raise ConfigError(where, [f"the API server rejected the Job: {err}"]) from err
        raise AssertionError("unreachable")


class _Follower:
    """Follows one Job: its conditions, its pods' phases and events, their logs."""

    def __init__(
        self, api: Api, namespace: str, name: str, timeout: float, cancel: CancelToken
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.timeout = timeout
        self.cancel = cancel
        self.failed = False
        self.deleted = False
        self.lines: queue.Queue[Progress | None] = queue.Queue()
        self.events: list[str] = []
        self._seen_events: set[str] = set()
        self._phases: dict[str, str] = {}
        self._logs: dict[tuple[str, str], tuple[threading.Thread, list[Any]]] = {}
        self._stopping = threading.Event()
        cancel.on_cancel(lambda: self.lines.put(None))

    @property
    def what(self) -> str:
        return f"Job {self.namespace}/{self.name}"

    def follow(self, job: RetrainJob) -> Iterator[Progress]:
        deadline = time.monotonic() + job.timeout
        while True:
            if self.cancel.cancelled:
                yield from self._drain()
                yield Progress(step="executor", message=f"deleting {self.what} and its pods")
                gone = self.delete()
                raise Cancelled(
                    f"retrain of {job.model} cancelled; {self.what} "
                    + ("and its pods were deleted" if gone else "is being deleted with its pods")
                )
            try:
                obj = self.api.request(
                    "GET",
                    jobs_path(self.namespace, self.name),
                    timeout=self.timeout,
                    what=self.what,
                )
                yield from self._pods()
                yield from self._new_events(obj)
            except BackendUnavailable as err:
                yield Progress(step="executor", message=f"{err}; retrying", level="warning")
                obj = {}
            yield from self._drain()
            condition = _finished(obj)
            if condition is not None:
                kind, reason, message = condition
                self._wait_logs()
                yield from self._drain()
                if kind == "Complete":
                    yield Progress(step="executor", message=f"{self.what} completed")
                    return
                self.failed = True
                raise OperationFailed(
                    f"{self.what} failed: {reason or 'Failed'}"
                    + (f": {message}" if message else "")
                    + self._events_text()
                    + " (the Job is kept for inspection)"
                )
            if time.monotonic() >= deadline:
                yield Progress(step="executor", message=f"deleting {self.what} and its pods")
                gone = self.delete()
                raise OperationFailed(
                    f"{self.what} did not complete within {job.timeout:g}s; it was "
                    + ("deleted with its pods" if gone else "deleted (its pods are going)")
                    + self._events_text()
                )
            try:
                item = self.lines.get(timeout=max(min(POLL, deadline - time.monotonic()), 0.05))
            except queue.Empty:
                continue
            if item is not None:
                yield item

    def _drain(self) -> Iterator[Progress]:
        while True:
            try:
                item = self.lines.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                yield item

    def _pods(self) -> Iterator[Progress]:
        pods, _ = self.api.list_all(
            core_path(self.namespace, "pods"),
            timeout=self.timeout,
            query=[("labelSelector", f"{JOB_NAME_LABEL}={self.name}")],
        )
        for pod in pods:
            meta = pod.get("metadata") or {}
            pod_name = str(meta.get("name", ""))
            phase = _pod_phase(pod)
            if self._phases.get(pod_name) != phase:
                self._phases[pod_name] = phase
                yield Progress(step="executor", message=f"pod {pod_name}: {phase}", detail=pod_name)
            status = pod.get("status") or {}
            if status.get("phase") in ("Running", "Succeeded", "Failed"):
                for container in (pod.get("spec") or {}).get("containers") or []:
                    self._start_log(pod_name, str(container.get("name", "")))

    def _new_events(self, job_obj: Obj) -> Iterator[Progress]:
        uids = {str((job_obj.get("metadata") or {}).get("uid", ""))}
        names = {("Job", self.name)} | {("Pod", p) for p in self._phases}
        items, _ = self.api.list_all(core_path(self.namespace, "events"), timeout=self.timeout)
        items.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        for event in items:
            involved = event.get("involvedObject") or {}
            mine = str(involved.get("uid", "")) in uids or (
                (involved.get("kind"), involved.get("name")) in names
            )
            key = f"{(event.get('metadata') or {}).get('uid')}/{event.get('count')}"
            if not mine or key in self._seen_events:
                continue
            self._seen_events.add(key)
            text = (
                f"{involved.get('kind', '')}/{involved.get('name', '')} "
                f"{event.get('reason', '')}: {str(event.get('message', '')).strip()}"
            )
            warning = event.get("type") == "Warning"
            if warning:
                self.events = [*self.events, text][-EVENTS_KEPT:]
            yield Progress(step="executor", message=text, level="warning" if warning else "info")

    def _events_text(self) -> str:
        if not self.events:
            return ""
        return "; events: " + "; ".join(self.events)

    def _start_log(self, pod: str, container: str) -> None:
        if (pod, container) in self._logs or self._stopping.is_set():
            return
        current: list[Any] = []
        thread = threading.Thread(
            target=self._read_log,
            args=(pod, container, current),
            name=f"log {pod}/{container}",
            daemon=True,
        )
        self._logs[(pod, container)] = (thread, current)
        thread.start()

    def _read_log(self, pod: str, container: str, current: list[Any]) -> None:
        path = f"{core_path(self.namespace, 'pods')}/{pod}/log"
        query = [("container", container), ("follow", "true")]
        try:
            for line in self.api.lines(path, query=query, timeout=self.timeout, current=current):
                self.lines.put(Progress(step="output", message=line, detail=f"{pod}/{container}"))
        except Exception as err:  # logs are a courtesy: the Job's outcome decides
            if not self._stopping.is_set():
                self.lines.put(
                    Progress(
                        step="executor",
                        message=f"logs of pod {pod} ({container}) unavailable: {err}",
                        level="warning",
                    )
                )

    def _wait_logs(self) -> None:
        deadline = time.monotonic() + LOG_DRAIN
        for thread, _ in list(self._logs.values()):
            thread.join(max(deadline - time.monotonic(), 0))

    def stop(self) -> None:
        """Close the log streams still open; never raises."""
        self._stopping.set()
        for _, current in list(self._logs.values()):
            closer(current)()

    def delete(self) -> bool:
        """Delete the Job with its pods (foreground); return True once it is gone.

        Waits up to :data:`DELETE_WAIT` seconds. Raises BackendUnavailable or
        PermissionDenied when the deletion cannot be requested.
        """
        self.stop()
        self.deleted = True
        try:
            self.api.request(
                "DELETE",
                jobs_path(self.namespace, self.name),
                timeout=self.timeout,
                body={"propagationPolicy": "Foreground"},
                content_type="application/json",
                what=self.what,
            )
        except NotFound:
            return True
        deadline = time.monotonic() + DELETE_WAIT
        while time.monotonic() < deadline:
            try:
                self.api.request("GET", jobs_path(self.namespace, self.name), timeout=self.timeout)
            except NotFound:
                return True
            except BackendUnavailable:
                pass
            time.sleep(0.5)
        return False


def _finished(job: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """Return (``Complete``|``Failed``, reason, message) of a finished Job, None while it runs."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        kind = condition.get("type")
        if kind in ("Complete", "Failed") and condition.get("status") == "True":
            return (
                str(kind),
                str(condition.get("reason") or ""),
                str(condition.get("message") or ""),
            )
    return None


def _pod_phase(pod: Mapping[str, Any]) -> str:
    """Return a pod's phase with why it waits or failed, e.g. ``Pending (Unschedulable: ...)``."""
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return f"{phase} (terminating)"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"{phase} ({condition.get('reason', '')}: {condition.get('message', '')})"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        if waiting.get("reason"):
            return f"{phase} ({cs.get('name')}: {waiting['reason']})"
        if terminated and terminated.get("exitCode"):
            return f"{phase} ({cs.get('name')} exited with code {terminated['exitCode']})"
    return phase
