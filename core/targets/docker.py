"""One model served by containers on one Docker host.

A revision is a container started from an image (whose commit is in its
labels). Revisions are numbered with an increasing integer kept in the
container label ``mrc.revision``; the next number is the highest number among
this target's containers plus one.

Rollout and rollback follow the same start-verify-retire sequence:

1. start the new container ``<container>-r<N>-verifying``;
2. wait until it is healthy: the image's Docker ``HEALTHCHECK`` status when the
   image defines one, else ``GET http://<host>:<port><health_path>`` answering
   200, for at most ``health_timeout`` seconds;
3. rename it ``<container>-r<N>`` and stop the previous container.

A rollback is a new revision too (the next number, label ``mrc.rollback-of``)
started from the kept revision's exact image and environment, as ``kubectl
rollout undo`` makes the old template the newest revision; "previous" is then
the revision that was live before the rollback.

If the new container never becomes healthy it is stopped and renamed
``<container>-r<N>-failed`` (kept for its logs); the old container was never
touched and keeps serving. Stopped containers of the newest ``keep`` good
revisions are kept so a rollback can restart their exact image and
environment; older ones are removed (their images are left alone).

Ports: containers use host networking, so old and new cannot listen on the
same port while the new one is verified. The target alternates between
``port`` and ``port + 1`` (blue/green): each new revision gets the one the
live revision does not use, and is told so in the ``PORT`` environment
variable (plus ``MRC_MODEL``, ``MRC_COMMIT``, ``MRC_REVISION``). The model
server must listen on ``$PORT``; its HEALTHCHECK, if any, must probe
``$PORT`` too. Clients reach the model through a reverse proxy with both ports
in its upstream (only one answers at a time outside a rollout), or at the port
:meth:`DockerTarget.status` reports. The port is also in the label
``mrc.port``.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from core.cancel import CancelToken
from core.docker_api import DockerStream, connect, describe_url, docker_errors
from core.domain import (
    Artifact,
    Condition,
    Permission,
    Phase,
    PodInfo,
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
    NotFound,
    OperationFailed,
)
from core.images import LABEL_REVISION, ImageBuilder, parse_time
from core.targets.base import Seen, Target
from core.targets.expected import refuse_if_changed

if TYPE_CHECKING:
    from core.config import DockerTargetConfig, ModelConfig

LABEL_MODEL = "mrc.model"
LABEL_TARGET = "mrc.target"
LABEL_REV = "mrc.revision"
LABEL_COMMIT = "mrc.commit"
LABEL_PORT = "mrc.port"
LABEL_IMAGE = "mrc.image"
LABEL_CAUSE = "mrc.change-cause"
LABEL_ROLLBACK_OF = "mrc.rollback-of"

VERIFYING = "-verifying"
FAILED = "-failed"

#: Environment variables the target sets itself (never copied from an old revision).
_OWN_ENV = ("PORT", "MRC_MODEL", "MRC_COMMIT", "MRC_REVISION")

_WARNING_ACTIONS = ("die", "oom", "kill", "health_status: unhealthy")
_UNSUPPORTED_PAUSE = "docker targets cannot be paused"
_POLL = 0.5


@dataclass(slots=True)
class _Box:
    """What the target needs to know about one of its containers."""

    id: str
    name: str
    revision: int
    kind: str  # "good", "verifying" or "failed"
    status: str
    running: bool
    restarting: bool
    health: str | None
    health_log: str
    port: int
    image_ref: str
    image_id: str
    commit: str
    created: datetime | None
    started: datetime | None
    restarts: int
    exit_code: int
    cause: str
    rollback_of: str
    env: dict[str, str] = field(default_factory=dict)


def _box(data: Mapping[str, Any]) -> _Box | None:
    config = data.get("Config") or {}
    labels = config.get("Labels") or {}
    try:
        revision = int(labels.get(LABEL_REV, ""))
    except ValueError:
        return None
    name = str(data.get("Name", "")).lstrip("/")
    kind = (
        "failed" if name.endswith(FAILED) else "verifying" if name.endswith(VERIFYING) else "good"
    )
    state = data.get("State") or {}
    health = state.get("Health") or None
    health_log = ""
    if health and health.get("Log"):
        health_log = str(health["Log"][-1].get("Output", "")).strip()
    env: dict[str, str] = {}
    for item in config.get("Env") or ():
        key, _, value = str(item).partition("=")
        env[key] = value
    try:
        port = int(labels.get(LABEL_PORT, "0"))
    except ValueError:
        port = 0
    return _Box(
        id=str(data.get("Id", "")),
        name=name,
        revision=revision,
        kind=kind,
        status=str(state.get("Status", "")),
        running=bool(state.get("Running")),
        restarting=bool(state.get("Restarting")),
        health=str(health.get("Status")) if health else None,
        health_log=health_log,
        port=port,
        image_ref=str(labels.get(LABEL_IMAGE) or config.get("Image", "")),
        image_id=str(data.get("Image", "")),
        commit=str(labels.get(LABEL_COMMIT, "")),
        created=parse_time(data.get("Created")),
        started=parse_time(state.get("StartedAt")),
        restarts=int(data.get("RestartCount") or 0),
        exit_code=int(state.get("ExitCode") or 0),
        cause=str(labels.get(LABEL_CAUSE, "")),
        rollback_of=str(labels.get(LABEL_ROLLBACK_OF, "")),
        env=env,
    )


def _age(since: datetime | None) -> str:
    if since is None:
        return "?"
    seconds = int((datetime.now(UTC) - since).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def probe_host_for(base_url: str | None) -> str:
    """Return the host name at which containers of ``base_url`` serve (host networking)."""
    url = describe_url(base_url)
    if url.startswith(("unix://", "npipe://", "fd://")) or "://" not in url:
        return "127.0.0.1"
    host = urlsplit(url).hostname
    return host or "127.0.0.1"


class DockerTarget(Target):
    """The :class:`~core.targets.base.Target` of one model on one Docker host.

    ``container`` is the name prefix of the model's containers (default: the
    model name); ``env`` is passed to every new revision; ``timeout`` bounds
    every query, ``op_timeout`` the container create/start/stop/remove calls
    (on a slow storage driver creating a container copies its whole file
    system), ``health_timeout`` the wait for a new revision to become healthy.
    ``probe_host`` overrides where health probes connect (default:
    127.0.0.1 for a local socket, else the host of ``base_url``).
    """

    kind = "docker"

    def __init__(
        self,
        model: str,
        name: str,
        base_url: str | None = None,
        container: str | None = None,
        port: int = 8080,
        health_path: str = "/healthz",
        keep: int = 5,
        env: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        health_timeout: float = 60.0,
        probe_host: str | None = None,
        op_timeout: float = 300.0,
    ) -> None:
        if keep < 2:
            raise ValueError("keep must be at least 2 (the live revision and one to roll back to)")
        self.model = model
        self.name = name
        self.base_url = base_url
        self.container = container or model
        self.port = port
        self.health_path = health_path if health_path.startswith("/") else f"/{health_path}"
        self.keep = keep
        self.env = dict(env or {})
        self.timeout = timeout
        self.health_timeout = health_timeout
        self.probe_host = probe_host or probe_host_for(base_url)
        self.op_timeout = op_timeout
        self._client: Any = None
        self._ops_client: Any = None
        self._images: ImageBuilder | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, model: ModelConfig, target: DockerTargetConfig) -> DockerTarget:
        """Return the target described by ``target`` of ``model``; does not contact the engine.

        The container defaults to the model name, the port to 8080; at least
        two revisions are kept (the live one and one to roll back to).
        """
        return cls(
            model.name,
            target.name,
            base_url=target.base_url,
            container=target.container or model.name,
            port=target.port or 8080,
            health_path=target.health_path,
            keep=max(2, target.keep),
            timeout=target.timeout,
            health_timeout=target.ready_timeout,
        )

    # ------------------------------------------------------------------ plumbing

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = connect(self.base_url, self.timeout)
            return self._client

    def _ops(self) -> Any:
        """The client for container create/start/stop/remove, which may take long."""
        version = self._api().api_version
        with self._lock:
            if self._ops_client is None:
                self._ops_client = connect(self.base_url, self.op_timeout, version)
            return self._ops_client

    def _errors(self, what: str = "") -> contextlib.AbstractContextManager[None]:
        return docker_errors(self.base_url, what)

    def _filters(self) -> dict[str, Any]:
        return {"label": [f"{LABEL_MODEL}={self.model}", f"{LABEL_TARGET}={self.name}"]}

    def _boxes(self) -> list[_Box]:
        """Return this target's containers, newest revision first."""
        api = self._api()
        with self._errors():
            rows = api.containers(all=True, filters=self._filters())
        boxes = []
        for row in rows:
            try:
                with self._errors():
                    data = api.inspect_container(row["Id"])
            except NotFound:
                continue  # removed between list and inspect
            box = _box(data)
            if box is not None:
                boxes.append(box)
        boxes.sort(key=lambda b: (b.revision, b.created or datetime.min.replace(tzinfo=UTC)))
        boxes.reverse()
        return boxes

    @staticmethod
    def _current(boxes: list[_Box]) -> _Box | None:
        for box in boxes:
            if box.kind == "good" and (box.running or box.restarting):
                return box
        return None

    def _probe(self, port: int, timeout: float) -> tuple[bool, str]:
        import httpx

        url = f"http://{self.probe_host}:{port}{self.health_path}"
        try:
            response = httpx.get(url, timeout=timeout)
        except httpx.HTTPError as err:
            return False, f"GET {url}: {err or type(err).__name__}"
        if response.status_code == 200:
            return True, f"GET {url}: 200"
        return False, f"GET {url}: HTTP {response.status_code}"

    def _logs(self, box_id: str, lines: int = 20) -> str:
        try:
            with self._errors():
                raw = self._api().logs(box_id, stdout=True, stderr=True, tail=lines)
        except Exception as err:  # the logs are a courtesy in an error message
            return f"(logs unavailable: {err})"
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return text.rstrip()

    # ------------------------------------------------------------------ queries

    def status(self) -> RolloutState:
        """Return the live state of the model's current container.

        Phases: COMPLETE when the current container is healthy, PROGRESSING
        while a new revision is being verified or the health check is starting,
        DEGRADED when it runs but fails its health check, FAILED when it keeps
        restarting, STOPPED when no container runs. Raises NotFound when the
        target has no container at all, BackendUnavailable when Docker cannot
        be reached.
        """
        boxes = self._boxes()
        if not boxes:
            raise NotFound(f"no container of model {self.model!r} on docker target {self.name!r}")
        return self._state(boxes)

    def _state(self, boxes: list[_Box]) -> RolloutState:
        now = datetime.now(UTC)
        current = self._current(boxes)
        verifying = [b for b in boxes if b.kind == "verifying" and b.running]
        base: dict[str, Any] = {
            "model": self.model,
            "target": self.name,
            "kind": self.kind,
            "observed_at": now,
        }
        if current is None:
            if verifying:
                new = verifying[0]
                return RolloutState(
                    **base,
                    phase=Phase.PROGRESSING,
                    revision=new.revision,
                    image=new.image_ref,
                    commit=new.commit,
                    desired=1,
                    message=f"verifying revision {new.revision} on :{new.port}",
                )
            latest = next((b for b in boxes if b.kind == "good"), boxes[0])
            return RolloutState(
                **base,
                phase=Phase.STOPPED,
                revision=latest.revision,
                image=latest.image_ref,
                commit=latest.commit,
                desired=1,
                message=f"no container running (last: {latest.name}, {latest.status})",
            )
        healthy, why = self._health_of(current)
        parts = [f"{current.name} on :{current.port}"]
        if current.restarting:
            phase, parts[0] = Phase.FAILED, f"{current.name} restarting"
            why = f"exit code {current.exit_code}"
        elif verifying:
            phase = Phase.PROGRESSING
            why = f"verifying revision {verifying[0].revision} on :{verifying[0].port}"
        elif healthy:
            phase = Phase.COMPLETE
        elif current.health == "starting":
            phase = Phase.PROGRESSING
        else:
            phase = Phase.DEGRADED
        parts += [why, f"{current.restarts} restarts", f"up {_age(current.started)}"]
        return RolloutState(
            **base,
            phase=phase,
            revision=current.revision,
            image=current.image_ref,
            commit=current.commit,
            desired=1,
            ready=int(healthy),
            updated=int(not verifying),
            available=int(healthy),
            message=", ".join(p for p in parts if p),
            since=current.started,
        )

    def _health_of(self, box: _Box) -> tuple[bool, str]:
        if not box.running or box.restarting:
            return False, box.status
        if box.health is not None:
            detail = f": {box.health_log[-200:]}" if box.health == "unhealthy" else ""
            return box.health == "healthy", f"{box.health}{detail}"
        ok, why = self._probe(box.port, min(self.timeout, 2.0))
        return ok, "healthy" if ok else why

    def detail(self) -> TargetDetail:
        """Return status plus every container of the target and the last hour of its events."""
        boxes = self._boxes()
        if not boxes:
            raise NotFound(f"no container of model {self.model!r} on docker target {self.name!r}")
        state = self._state(boxes)
        current = self._current(boxes)
        pods = []
        for box in boxes:
            ready = box is current and state.ready > 0
            status = box.status if box.kind == "good" else f"{box.status} ({box.kind})"
            pods.append(
                PodInfo(
                    name=box.name,
                    phase=status,
                    ready=ready,
                    restarts=box.restarts,
                    image=box.image_ref,
                    node=self.probe_host,
                    started=box.started,
                )
            )
        conditions = []
        if current is not None:
            conditions.append(
                Condition(
                    type="Healthy",
                    status="True" if state.ready else "False",
                    reason=current.health or "http-probe",
                    message=current.health_log[-300:],
                )
            )
        return TargetDetail(
            state=state, pods=tuple(pods), conditions=tuple(conditions), events=self._events()
        )

    def _events(self, seconds: float = 3600) -> tuple[TargetEvent, ...]:
        until = datetime.now(UTC)
        since = until - timedelta(seconds=seconds)
        api = self._api()
        stream = DockerStream(self.base_url, api.api_version, None)
        timer = threading.Timer(self.timeout, stream.abort)
        timer.start()
        events: list[TargetEvent] = []
        try:
            for chunk in stream.chunks(
                "events",
                lambda c: c.events(
                    since=int(since.timestamp()),
                    until=int(until.timestamp()),
                    filters={**self._filters(), "type": "container"},
                    decode=True,
                ),
            ):
                event = _event(chunk)
                if event is not None:
                    events.append(event)
        finally:
            timer.cancel()
            stream.close()
        events.reverse()
        return tuple(events[:50])

    def history(self) -> list[Revision]:
        """Return the kept good revisions, newest first, the live one marked ``current``.

        Failed revisions and revisions being verified are not listed. Raises
        BackendUnavailable.
        """
        boxes = self._boxes()
        current = self._current(boxes)
        out = []
        for box in boxes:
            if box.kind != "good":
                continue
            out.append(self._revision(box, current))
        return out

    def _revision(self, box: _Box, current: _Box | None) -> Revision:
        commit = box.commit
        if not commit:
            with contextlib.suppress(Exception), self._errors():
                labels = self._api().inspect_image(box.image_id)["Config"]["Labels"] or {}
                commit = labels.get(LABEL_REVISION, "")
        extra: dict[str, Any] = {
            "container": box.name,
            "image_id": box.image_id,
            "port": box.port,
            "state": box.status,
        }
        if box.rollback_of:
            extra["rollback_of"] = box.rollback_of
        return Revision(
            number=box.revision,
            image=box.image_ref,
            commit=commit,
            created=box.created,
            change_cause=box.cause,
            current=box is current,
            extra=extra,
        )

    def permissions(self) -> dict[str, Permission]:
        """Return every action allowed when the daemon answers (Docker has no RBAC).

        Pause and resume are never allowed (unsupported); when the daemon
        cannot be reached nothing is, with the connection error as the reason.
        """
        try:
            api = self._api()
            with self._errors():
                api.ping()
        except BackendUnavailable as err:
            denied = Permission(False, str(err))
            return dict.fromkeys(("rollout", "rollback", "pause", "resume", "restart"), denied)
        unsupported = Permission(False, _UNSUPPORTED_PAUSE)
        return {
            "rollout": Permission(True),
            "rollback": Permission(True),
            "pause": unsupported,
            "resume": unsupported,
            "restart": Permission(True),
        }

    # ------------------------------------------------------------------ mutations

    def _refuse_if_changed(self, expected: Seen, action: str) -> None:
        """Raise Conflict when the live revision, image or commit is not ``expected``'s.

        The live state is what :meth:`status` reports (no container at all:
        revision None). ``expected`` None checks nothing.
        """
        if expected is None:
            return
        boxes = self._boxes()
        now = (
            self._state(boxes)
            if boxes
            else RolloutState(self.model, self.name, self.kind, Phase.STOPPED)
        )
        refuse_if_changed(f"{self.model} on {self.name}", action, expected, now)

    def rollout(
        self,
        artifact: Artifact,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: Seen = None,
    ) -> Iterator[Progress]:
        """Start ``artifact.image`` as a new revision, verify it, retire the old one.

        ``expected`` is the state the operator saw: when the live revision,
        image or commit changed since, Conflict is raised before anything
        starts. The image is pulled when it is not present on the host. Raises
        OperationFailed (with the container's last log lines) when the new
        revision never becomes healthy — the old container keeps serving —,
        Conflict when another rollout created the same revision meanwhile,
        BackendUnavailable, Cancelled.
        """
        if not artifact.image:
            raise OperationFailed("a docker target needs an image to roll out")
        cancel = cancel or CancelToken()
        self._refuse_if_changed(expected, "rollout")
        api = self._api()
        yield Progress(step="image", message=f"checking {artifact.image}")
        try:
            with self._errors(f"image {artifact.image}"):
                info = api.inspect_image(artifact.image)
        except NotFound:
            yield from self._pull(artifact.image, cancel)
            with self._errors(f"image {artifact.image}"):
                info = api.inspect_image(artifact.image)
        labels = (info.get("Config") or {}).get("Labels") or {}
        commit = labels.get(LABEL_REVISION) or artifact.commit
        yield from self._deploy(
            image_ref=artifact.image,
            image_id=str(info["Id"]),
            commit=commit,
            env=dict(self.env),
            cause=reason or f"rollout {artifact.describe()}",
            rollback_of=None,
            cancel=cancel,
        )

    def _pull(self, image: str, cancel: CancelToken) -> Iterator[Progress]:
        if self._images is None:
            self._images = ImageBuilder(self.base_url, timeout=self.timeout)
        for item in self._images.pull(image, cancel=cancel):
            if item.step != "done":
                yield item

    def preview_rollback(self, to_revision: int | None = None) -> RollbackPreview:
        """Describe the rollback to ``to_revision`` (None: previous) without changing anything.

        ``diff`` compares image, commit and environment (the port aside);
        ``noop`` is True when the live container already runs that image with
        that environment. Raises NotFound for a revision that is not kept.
        """
        boxes = self._boxes()
        current = self._current(boxes)
        target = self._target_revision(boxes, current, to_revision)
        before = _spec(current) if current else []
        after = _spec(target)
        diff = "\n".join(
            difflib.unified_diff(
                before,
                after,
                f"revision {current.revision if current else '-'}",
                f"revision {target.revision}",
                lineterm="",
            )
        )
        return RollbackPreview(
            model=self.model,
            target=self.name,
            from_revision=current.revision if current else None,
            to_revision=target.revision,
            from_image=current.image_ref if current else "",
            to_image=target.image_ref,
            from_commit=current.commit if current else "",
            to_commit=target.commit,
            diff=diff,
            noop=current is not None and before == after,
            warning="" if current else "no container is running now",
        )

    def _target_revision(
        self, boxes: list[_Box], current: _Box | None, to_revision: int | None
    ) -> _Box:
        good = [b for b in boxes if b.kind == "good"]
        if to_revision is not None:
            for box in good:
                if box.revision == to_revision:
                    return box
            kept = ", ".join(str(b.revision) for b in good) or "none"
            raise NotFound(
                f"revision {to_revision} of {self.model!r} is not kept on {self.name!r} "
                f"(kept: {kept})"
            )
        base = current or (good[0] if good else None)
        if base is None:
            raise NotFound(f"{self.model!r} has no revision on {self.name!r}")
        older = [b for b in good if b.revision < base.revision]
        for box in older:
            if box.image_id != base.image_id:
                return box
        if older:
            return older[0]
        raise NotFound(f"{self.model!r} has no revision before {base.revision} on {self.name!r}")

    def rollback(
        self,
        to_revision: int | None = None,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: RollbackPreview | None = None,
    ) -> Iterator[Progress]:
        """Start the image and environment of ``to_revision`` (None: previous) as a new revision.

        Same start-verify-retire sequence as :meth:`rollout`; the new revision
        records ``mrc.rollback-of``. Skipped (one "skip" progress item) when the
        live container already runs that revision's image and environment.
        Raises Conflict when the live revision is no longer ``expected``'s,
        NotFound for a revision that is not kept, plus the errors of :meth:`rollout`.
        """
        cancel = cancel or CancelToken()
        boxes = self._boxes()
        current = self._current(boxes)
        live = current.revision if current is not None else None
        if expected is not None and live != expected.from_revision:
            raise Conflict(
                f"{self.model} on {self.name} changed since the rollback was reviewed: "
                f"live revision is now {live}, was {expected.from_revision}; review it again"
            )
        if to_revision is None and expected is not None:
            to_revision = expected.to_revision
        target = self._target_revision(boxes, current, to_revision)
        if current is not None and _spec(current) == _spec(target):
            yield Progress(
                step="skip",
                message=f"revision {current.revision} already runs what revision "
                f"{target.revision} ran; nothing to do",
                fraction=1.0,
            )
            return
        env = {k: v for k, v in target.env.items() if k not in _OWN_ENV}
        yield from self._deploy(
            image_ref=target.image_ref,
            image_id=target.image_id,
            commit=target.commit,
            env=env,
            cause=reason or f"rollback to revision {target.revision}",
            rollback_of=target.revision,
            cancel=cancel,
        )

    def _deploy(
        self,
        *,
        image_ref: str,
        image_id: str,
        commit: str,
        env: dict[str, str],
        cause: str,
        rollback_of: int | None,
        cancel: CancelToken,
    ) -> Iterator[Progress]:
        """Start-verify-retire ``image_id`` as a new revision (see the module docstring)."""
        api = self._ops()
        cancel.raise_if_cancelled()
        boxes = self._boxes()
        current = self._current(boxes)
        revision = (boxes[0].revision if boxes else 0) + 1
        port = self.port + 1 if current is not None and current.port == self.port else self.port
        for box in boxes:
            if box is not current and (box.running or box.restarting):
                yield Progress(step="cleanup", message=f"stopping leftover {box.name}")
                with self._errors(f"stop {box.name}"):
                    api.stop(box.id, timeout=10)
        base_name = f"{self.container}-r{revision}"
        labels = {
            LABEL_MODEL: self.model,
            LABEL_TARGET: self.name,
            LABEL_REV: str(revision),
            LABEL_COMMIT: commit,
            LABEL_PORT: str(port),
            LABEL_IMAGE: image_ref,
            LABEL_CAUSE: cause[:500],
        }
        if rollback_of is not None:
            labels[LABEL_ROLLBACK_OF] = str(rollback_of)
        full_env = {
            **env,
            "PORT": str(port),
            "MRC_MODEL": self.model,
            "MRC_COMMIT": commit,
            "MRC_REVISION": str(revision),
        }
        yield Progress(
            step="start",
            message=f"starting revision {revision} ({image_ref}) on :{port}",
            fraction=0.1,
            detail=base_name,
        )
        try:
            with self._errors(f"create {base_name}"):
                host_config = api.create_host_config(
                    network_mode="host", restart_policy={"Name": "unless-stopped"}
                )
                created = api.create_container(
                    image_id,
                    name=base_name + VERIFYING,
                    environment=full_env,
                    labels=labels,
                    host_config=host_config,
                )
        except Conflict as err:
            raise Conflict(
                f"revision {revision} of {self.model!r} was created by another rollout "
                f"at the same time; reload and try again ({err})"
            ) from err
        new_id = created["Id"]
        try:
            with self._errors(f"start {base_name}"):
                api.start(new_id)
            yield Progress(
                step="verify",
                message=f"waiting for revision {revision} to become healthy",
                fraction=0.3,
                detail=base_name,
            )
            yield from self._wait_healthy(new_id, base_name, port, cancel)
        except BaseException as err:
            self._fail(new_id, base_name)
            if isinstance(err, OperationFailed | Cancelled | BackendUnavailable):
                raise
            if isinstance(err, Exception):
                raise OperationFailed(f"revision {revision}: {err}") from err
            raise
        with self._errors(f"rename {base_name}"):
            api.rename(new_id, base_name)
        if current is not None:
            yield Progress(
                step="retire",
                message=f"stopping revision {current.revision} ({current.name})",
                fraction=0.9,
                detail=current.name,
            )
            with self._errors(f"stop {current.name}"):
                api.stop(current.id, timeout=10)
        self._prune()
        yield Progress(
            step="done",
            message=f"revision {revision} ({image_ref}) is live on :{port}",
            fraction=1.0,
            detail=base_name,
            result=revision,
        )

    def _wait_healthy(
        self, container_id: str, name: str, port: int, cancel: CancelToken
    ) -> Iterator[Progress]:
        api = self._api()
        deadline = time.monotonic() + self.health_timeout
        last = ""
        while True:
            cancel.raise_if_cancelled()
            with self._errors(f"inspect {name}"):
                data = api.inspect_container(container_id)
            state = data.get("State") or {}
            if state.get("Restarting") or int(data.get("RestartCount") or 0) > 0:
                raise self._unhealthy(
                    container_id,
                    name,
                    f"it crashed and is restarting (exit code {state.get('ExitCode')})",
                )
            if not state.get("Running"):
                raise self._unhealthy(
                    container_id, name, f"it exited with code {state.get('ExitCode')}"
                )
            health = state.get("Health")
            if health:
                status = health.get("Status")
                log = health.get("Log") or []
                output = str(log[-1].get("Output", "")).strip() if log else ""
                if status == "healthy":
                    yield Progress(step="verify", message=f"{name} healthy", fraction=0.8)
                    return
                if status == "unhealthy":
                    raise self._unhealthy(
                        container_id, name, f"its health check failed: {output[-300:]}"
                    )
                now = f"health check {status}"
            else:
                remaining = max(deadline - time.monotonic(), 0.2)
                ok, now = self._probe(port, min(2.0, remaining))
                if ok:
                    yield Progress(step="verify", message=f"{name}: {now}", fraction=0.8)
                    return
            if now != last:
                yield Progress(step="verify", message=f"{name}: {now}", fraction=0.5)
                last = now
            if time.monotonic() >= deadline:
                raise self._unhealthy(
                    container_id,
                    name,
                    f"not healthy after {self.health_timeout:g}s (last: {now})",
                )
            if cancel.wait(_POLL):
                cancel.raise_if_cancelled()

    def _unhealthy(self, container_id: str, name: str, why: str) -> OperationFailed:
        logs = self._logs(container_id)
        tail = "\n".join(f"  {line}" for line in logs.splitlines()[-20:]) or "  (no output)"
        return OperationFailed(
            f"{name} never became healthy: {why}; the previous revision keeps serving.\n"
            f"last log lines:\n{tail}"
        )

    def _fail(self, container_id: str, name: str) -> None:
        """Stop a revision that did not verify and mark it failed (best effort)."""
        api = self._ops()
        with contextlib.suppress(Exception), self._errors():
            api.stop(container_id, timeout=5)
        with contextlib.suppress(Exception), self._errors():
            api.rename(container_id, name + FAILED)

    def _prune(self) -> None:
        """Remove stopped containers beyond the newest ``keep`` good ones and the newest failed."""
        api = self._ops()
        boxes = self._boxes()
        good = [b for b in boxes if b.kind == "good"]
        other = [b for b in boxes if b.kind != "good"]
        doomed = good[self.keep :] + other[1:]
        for box in doomed:
            if box.running or box.restarting:
                continue
            with contextlib.suppress(NotFound, Conflict), self._errors(f"remove {box.name}"):
                api.remove_container(box.id, v=True)

    def pause(self, *, expected: Seen = None) -> None:
        """Raise OperationFailed: docker targets have no paused state."""
        raise OperationFailed(_UNSUPPORTED_PAUSE)

    def resume(self, *, expected: Seen = None) -> None:
        """Raise OperationFailed: docker targets have no paused state."""
        raise OperationFailed(_UNSUPPORTED_PAUSE)

    def restart(self, *, expected: Seen = None) -> None:
        """Restart the live container.

        Raises Conflict when ``expected`` is given and the live revision,
        image or commit changed since, NotFound when no container runs.
        """
        self._refuse_if_changed(expected, "restart")
        current = self._current(self._boxes())
        if current is None:
            raise NotFound(f"no running container of {self.model!r} on {self.name!r}")
        with self._errors(f"restart {current.name}"):
            self._ops().restart(current.id, timeout=10)

    def watch(self, cancel: CancelToken) -> Iterator[TargetEvent]:
        """Yield Docker events of the model's containers until ``cancel`` is set.

        Reconnects with a back-off when the stream breaks, resuming from the
        last event seen; each failed connection yields one "Disconnected"
        warning event.
        """
        since = int(time.time())
        backoff = 1.0
        while not cancel.cancelled:
            try:
                api = self._api()
                stream = DockerStream(self.base_url, api.api_version, cancel)
                try:
                    start = functools.partial(
                        _follow_events,
                        since=since,
                        filters={**self._filters(), "type": "container"},
                    )
                    for chunk in stream.chunks("events", start):
                        event = _event(chunk)
                        if event is not None:
                            since = int(event.time.timestamp())
                            backoff = 1.0
                            yield event
                finally:
                    stream.close()
            except Cancelled:
                return
            except BackendUnavailable as err:
                with self._lock:
                    self._client = None
                yield TargetEvent(
                    time=datetime.now(UTC),
                    kind="Warning",
                    reason="Disconnected",
                    message=str(err),
                    object=self.name,
                )
            if cancel.wait(backoff):
                return
            backoff = min(backoff * 2, 30.0)

    def close(self) -> None:
        """Close the connection pools (a later call reconnects)."""
        with self._lock:
            clients = (self._client, self._ops_client)
            self._client = self._ops_client = None
        for client in clients:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        if self._images is not None:
            self._images.close()


def _follow_events(client: Any, since: int, filters: dict[str, Any]) -> Any:
    return client.events(since=since, filters=filters, decode=True)


def _spec(box: _Box) -> list[str]:
    """The parts of a revision a rollback restores, as comparable lines."""
    lines = [f"image: {box.image_ref}", f"image id: {box.image_id}", f"commit: {box.commit}"]
    lines += [f"env {k}={v}" for k, v in sorted(box.env.items()) if k not in _OWN_ENV]
    return lines


_HEALTH_RE = re.compile(r"^health_status: (\w+)")


def _event(chunk: Mapping[str, Any]) -> TargetEvent | None:
    """Turn one Docker event into a TargetEvent (None for events without an action)."""
    action = str(chunk.get("Action") or chunk.get("status") or "")
    if not action or action.startswith(("exec_", "top", "attach")):
        return None
    actor = chunk.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    name = str(attributes.get("name", ""))
    nanos = chunk.get("timeNano")
    when = (
        datetime.fromtimestamp(int(nanos) / 1e9, UTC)
        if nanos
        else datetime.fromtimestamp(int(chunk.get("time") or 0), UTC)
    )
    message = f"{name}: {action}"
    if action == "die" and "exitCode" in attributes:
        message += f" (exit code {attributes['exitCode']})"
    kind = "Warning" if action.startswith(_WARNING_ACTIONS) else "Normal"
    reason = action.split(":")[0] if not _HEALTH_RE.match(action) else "health"
    return TargetEvent(time=when, kind=kind, reason=reason, message=message, object=name)
