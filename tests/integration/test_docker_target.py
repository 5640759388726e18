"""The Docker host target on the real engine, with a real HTTP model-server image."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.cancel import CancelToken
from core.domain import Artifact, Phase, Progress, TargetEvent
from core.errors import BackendUnavailable, Conflict, NotFound, OperationFailed
from core.images import ImageBuilder
from core.targets.base import ACTIONS, Target
from core.targets.docker import DockerTarget
from tests.support.model_server_image import (
    commit_model_server,
    served_version,
    wait_served_version,
)

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@dataclass(frozen=True)
class ServerImages:
    v1: str  # HEALTHCHECK in the image
    v2: str  # no HEALTHCHECK: the target probes /healthz itself
    bad: str  # HEALTHCHECK that fails
    bad_probe: str  # no HEALTHCHECK, /healthz answers 500
    commits: dict[str, str]


@pytest.fixture(scope="module")
def server_images(
    docker_service: Any, python_base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerImages]:
    repo = tmp_path_factory.mktemp("model-server") / "repo"
    image = f"mrc-test/server-{uuid.uuid4().hex[:8]}"
    builder = ImageBuilder(docker_service.base_url, timeout=120)
    variants = {
        "v1": {"healthy": True, "healthcheck": True},
        "v2": {"healthy": True, "healthcheck": False},
        "bad": {"healthy": False, "healthcheck": True},
        "bad_probe": {"healthy": False, "healthcheck": False},
    }
    refs: dict[str, str] = {}
    commits: dict[str, str] = {}
    try:
        for step, (version, options) in enumerate(variants.items()):
            sha = commit_model_server(repo, python_base_image, version, step=step, **options)
            for item in builder.build(repo, sha, image, "server"):
                if item.step == "done":
                    refs[version] = item.result.tags[0]
            commits[version] = sha
        yield ServerImages(
            v1=refs["v1"],
            v2=refs["v2"],
            bad=refs["bad"],
            bad_probe=refs["bad_probe"],
            commits=commits,
        )
    finally:
        for ref in refs.values():
            with contextlib.suppress(Exception):
                builder.remove(ref, force=True)
        builder.close()


def _free_port_pair() -> int:
    """Return a port P such that P and P + 1 are both free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return int(port)
    raise RuntimeError("no free pair of ports")


@pytest.fixture()
def make_target(docker_service: Any) -> Iterator[Any]:
    """Factory of DockerTargets for a fresh model; removes their containers afterwards."""
    targets: list[DockerTarget] = []

    def make(**kwargs: Any) -> DockerTarget:
        model = f"m{uuid.uuid4().hex[:8]}"
        options: dict[str, Any] = {
            "base_url": docker_service.base_url,
            "port": _free_port_pair(),
            "health_timeout": 60.0,
            "keep": 3,
        }
        options.update(kwargs)
        target = DockerTarget(model, "host-a", **options)
        targets.append(target)
        return target

    yield make
    api = docker_service.api()
    for target in targets:
        target.close()
        for c in api.containers(all=True, filters={"label": f"mrc.model={target.model}"}):
            with contextlib.suppress(Exception):
                api.remove_container(c["Id"], force=True)
    api.close()


def _run(gen: Iterator[Progress]) -> list[Progress]:
    return list(gen)


def _no_answer(port: int) -> bool:
    try:
        served_version(port, timeout=1)
    except OSError:
        return True
    return False


def test_rollout_and_rollback_serve_each_version(
    make_target: Any, server_images: ServerImages
) -> None:
    target = make_target(keep=2)
    assert isinstance(target, Target)
    p = target.port

    steps = _run(target.rollout(Artifact(image=server_images.v1), reason="first release"))
    assert steps[-1].step == "done" and steps[-1].result == 1
    assert served_version(p) == {"version": "v1", "commit": server_images.commits["v1"]}
    state = target.status()
    assert (state.phase, state.revision, state.commit) == (
        Phase.COMPLETE,
        1,
        server_images.commits["v1"],
    )

    # v2 has no HEALTHCHECK: verified by the target's own HTTP probe, on the other port.
    steps = _run(target.rollout(Artifact(image=server_images.v2)))
    assert any(s.step == "retire" for s in steps)
    assert served_version(p + 1)["version"] == "v2"
    assert _no_answer(p), "the old revision must be retired"
    history = target.history()
    assert [(r.number, r.current) for r in history] == [(2, True), (1, False)]
    assert history[1].change_cause == "first release"
    assert history[1].commit == server_images.commits["v1"]

    preview = target.preview_rollback()
    assert (preview.from_revision, preview.to_revision) == (2, 1)
    assert (preview.from_image, preview.to_image) == (server_images.v2, server_images.v1)
    assert not preview.noop and server_images.v1 in preview.diff

    _run(target.rollback(reason="v2 misbehaves"))
    assert served_version(p) == {"version": "v1", "commit": server_images.commits["v1"]}
    assert _no_answer(p + 1)
    history = target.history()
    # keep=2: revision 1 was pruned once revision 3 (its rollback) went live.
    assert [(r.number, r.current) for r in history] == [(3, True), (2, False)]
    assert history[0].extra["rollback_of"] == "1"
    assert history[0].change_cause == "v2 misbehaves"
    with pytest.raises(NotFound, match="revision 1"):
        target.preview_rollback(1)

    _run(target.rollback(to_revision=2))
    assert served_version(p + 1)["version"] == "v2"
    assert target.status().revision == 4


def test_unhealthy_new_revision_leaves_the_old_one_serving(
    make_target: Any, server_images: ServerImages, docker_service: Any
) -> None:
    target = make_target()
    p = target.port
    _run(target.rollout(Artifact(image=server_images.v1)))

    with pytest.raises(OperationFailed) as info:
        _run(target.rollout(Artifact(image=server_images.bad)))

    message = str(info.value)
    assert "health check failed" in message
    assert "model server bad listening" in message  # the container's last log lines
    assert served_version(p)["version"] == "v1"
    state = target.status()
    assert (state.phase, state.revision) == (Phase.COMPLETE, 1)
    assert [r.number for r in target.history()] == [1]
    failed = docker_service.api().containers(
        all=True, filters={"label": [f"mrc.model={target.model}", "mrc.revision=2"]}
    )
    assert [(c["Names"], c["State"]) for c in failed] == [
        ([f"/{target.container}-r2-failed"], "exited")
    ]

    # The next good rollout takes the next number and the free port.
    _run(target.rollout(Artifact(image=server_images.v2)))
    assert target.status().revision == 3
    assert served_version(p + 1)["version"] == "v2"


def test_http_probe_failure_times_out_with_the_reason(
    make_target: Any, server_images: ServerImages
) -> None:
    target = make_target(health_timeout=4.0)
    _run(target.rollout(Artifact(image=server_images.v1)))

    with pytest.raises(OperationFailed, match="HTTP 500") as info:
        _run(target.rollout(Artifact(image=server_images.bad_probe)))

    assert "not healthy after 4s" in str(info.value)
    assert served_version(target.port)["version"] == "v1"


def test_status_detail_restart_watch_and_permissions(
    make_target: Any, server_images: ServerImages
) -> None:
    target = make_target()
    with pytest.raises(NotFound):
        target.status()
    assert target.history() == []
    _run(target.rollout(Artifact(image=server_images.v1)))

    events: list[TargetEvent] = []
    cancel = CancelToken()

    def watch() -> None:
        events.extend(target.watch(cancel))

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.5)
    target.restart()
    wait_served_version(target.port, "v1")
    deadline = time.monotonic() + 30
    while target.status().phase != Phase.COMPLETE and time.monotonic() < deadline:
        time.sleep(0.3)
    cancel.cancel()
    watcher.join(timeout=5)
    assert not watcher.is_alive(), "watch() must end when cancelled"
    assert {"restart", "start"} <= {e.reason for e in events}

    detail = target.detail()
    assert detail.state.phase == Phase.COMPLETE
    assert [(p.name, p.ready) for p in detail.pods] == [(f"{target.container}-r1", True)]
    assert "restarts" in detail.state.message and "up " in detail.state.message
    assert {"create", "start", "restart"} <= {e.reason for e in detail.events}
    assert detail.conditions[0].status == "True"

    permissions = target.permissions()
    assert set(permissions) == set(ACTIONS)
    assert permissions["rollout"].allowed and permissions["rollback"].allowed
    assert not permissions["pause"].allowed
    with pytest.raises(OperationFailed, match="cannot be paused"):
        target.pause()


def test_racing_rollout_is_a_conflict(
    make_target: Any, server_images: ServerImages, docker_service: Any
) -> None:
    target = make_target()
    api = docker_service.api()
    # What another console creates for the same revision while this one prepares.
    squatter = api.create_container(
        server_images.v1, name=f"{target.container}-r1-verifying", command=["true"]
    )
    try:
        with pytest.raises(Conflict, match="created by another rollout"):
            _run(target.rollout(Artifact(image=server_images.v1)))
    finally:
        api.remove_container(squatter["Id"], force=True)
        api.close()


def test_a_change_made_since_the_operator_looked_is_refused(
    make_target: Any, server_images: ServerImages, docker_service: Any
) -> None:
    target = make_target()
    _run(target.rollout(Artifact(image=server_images.v1)))
    seen = target.status()  # what the operator was shown: revision 1, v1
    # Another console rolls v2 out on the same host meanwhile.
    other = DockerTarget(
        target.model,
        target.name,
        base_url=docker_service.base_url,
        port=target.port,
        health_timeout=60.0,
        keep=3,
    )
    try:
        _run(other.rollout(Artifact(image=server_images.v2)))
    finally:
        other.close()
    with pytest.raises(Conflict, match=r"changed since it was shown \(revision 1 -> 2"):
        _run(target.rollout(Artifact(image=server_images.v1), expected=seen))
    with pytest.raises(Conflict, match="restart refused"):
        target.restart(expected=seen)
    state = target.status()
    assert (state.revision, state.image) == (2, server_images.v2)
    assert served_version(target.port + 1)["version"] == "v2"  # the new revision's port


def test_unreachable_daemon_is_a_clear_error(tmp_path: Path) -> None:
    target = DockerTarget("iris", "gone", base_url=f"unix://{tmp_path}/docker.sock")
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"cannot reach Docker at unix://"):
        target.status()
    with pytest.raises(BackendUnavailable):
        _run(target.rollout(Artifact(image="iris:1")))
    permissions = target.permissions()
    assert not any(p.allowed for p in permissions.values())
    assert "cannot reach Docker" in permissions["rollback"].reason
    assert time.monotonic() - start < 3

    # watch() reports the disconnection, keeps retrying, and ends when cancelled.
    cancel = CancelToken()
    events = target.watch(cancel)
    first = next(events)
    assert (first.kind, first.reason) == ("Warning", "Disconnected")
    assert "cannot reach Docker" in first.message
    threading.Timer(0.3, cancel.cancel).start()
    start = time.monotonic()
    assert list(events) == []
    assert time.monotonic() - start < 2
