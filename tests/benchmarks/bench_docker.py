"""Docker benchmarks on the real engine, each against a baseline of the same run.

1. Rebuild of an unchanged commit (entirely from the build cache: the image
   is reproducible) versus the first build of that commit.
2. Rollback: from calling :meth:`DockerTarget.rollback` to the previous
   version answering ``GET /version`` with HTTP 200, versus starting a
   container of the same image by hand (create + start + first HTTP 200), the
   floor any rollback on this host pays. Also printed: the time until
   ``rollback()`` returned (health verified, old container retired).

Run: ``.venv/bin/python -m tests.benchmarks.bench_docker`` (starts dockerd
through tests/services unless ``make services-up`` already did).
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from core.domain import Artifact
from core.images import ImageBuilder
from core.targets.docker import DockerTarget
from tests.support.model_server_image import (
    commit_model_server,
    served_version,
    wait_served_version,
)

REBUILDS = 3
ROLLBACKS = 3


def _timed_build(builder: ImageBuilder, repo: Path, sha: str, image: str) -> tuple[float, str]:
    start = time.perf_counter()
    ref = ""
    for item in builder.build(repo, sha, image, "bench"):
        if item.step == "done":
            ref = item.result.tags[0]
    return time.perf_counter() - start, ref


def bench_rebuild(builder: ImageBuilder, repo: Path, base: str, image: str) -> list[str]:
    """Print first-build and cached-rebuild times and their ratio; return the refs built."""
    version = f"bench-{uuid.uuid4().hex[:8]}"
    sha = commit_model_server(repo, base, version, step=0)
    first, ref = _timed_build(builder, repo, sha, image)
    again = [_timed_build(builder, repo, sha, image)[0] for _ in range(REBUILDS)]
    rebuild = statistics.median(again)
    print(f"first build of {sha[:8]}: {first:.2f}s")
    print(f"rebuild of the unchanged commit (median of {REBUILDS}): {rebuild:.3f}s")
    print(f"ratio rebuild / first build: {rebuild / first:.3f}")
    sha2 = commit_model_server(repo, base, f"{version}-b", step=1, healthcheck=False)
    _, ref2 = _timed_build(builder, repo, sha2, image)
    return [ref, ref2]


def _free_pair() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port + 1))
            return port


def _live_port(target: DockerTarget) -> int:
    return int(next(r for r in target.history() if r.current).extra["port"])


def _serving_after(call: Any, port: int, version: str) -> tuple[float, float]:
    """Run ``call()`` while polling ``port``; return (seconds to serve ``version``, to return)."""
    start = time.perf_counter()
    served: list[float] = []

    def poll() -> None:
        wait_served_version(port, version, timeout=300)
        served.append(time.perf_counter() - start)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    call()
    returned = time.perf_counter() - start
    poller.join(timeout=300)
    if not served:
        raise RuntimeError(f"port {port} never served {version}")
    return served[0], returned


def _start_by_hand(api: Any, ref: str, version: str) -> float:
    """Return the seconds from creating a container of ``ref`` to its first HTTP 200."""
    port = _free_pair()
    start = time.perf_counter()
    container = api.create_container(
        ref,
        environment={"PORT": str(port)},
        host_config=api.create_host_config(network_mode="host"),
    )
    try:
        api.start(container["Id"])
        wait_served_version(port, version, timeout=300)
        return time.perf_counter() - start
    finally:
        api.remove_container(container["Id"], force=True)


def bench_rollback(base_url: str, api: Any, refs: list[str]) -> None:
    """Print rollback-to-serving times against starting the same image by hand."""
    target = DockerTarget(
        f"bench{uuid.uuid4().hex[:6]}", "bench", base_url=base_url, port=_free_pair(), keep=10
    )
    versions = {}
    try:
        for ref in refs:
            list(target.rollout(Artifact(image=ref)))
            versions[ref] = served_version(_live_port(target))["version"]
        to_serve: list[float] = []
        to_return: list[float] = []
        floor: list[float] = []
        # Rounds alternate with the baseline so that both see the same machine load.
        for _ in range(ROLLBACKS):
            previous = target.preview_rollback()
            port = target.port if _live_port(target) != target.port else target.port + 1
            version = versions[previous.to_image]
            served, returned = _serving_after(lambda: list(target.rollback()), port, version)
            to_serve.append(served)
            to_return.append(returned)
            floor.append(_start_by_hand(api, refs[0], versions[refs[0]]))
    finally:
        for c in api.containers(all=True, filters={"label": f"mrc.model={target.model}"}):
            with contextlib.suppress(Exception):
                api.remove_container(c["Id"], force=True)
        target.close()
    served_med, returned_med, floor_med = map(statistics.median, (to_serve, to_return, floor))
    print(f"rollback call -> previous version serving (median of {ROLLBACKS}): {served_med:.2f}s")
    print(f"rollback call -> returned (verified, old retired): {returned_med:.2f}s")
    print(f"baseline: create + start + first 200 of the same image: {floor_med:.2f}s")
    print(f"ratio rollback-to-serving / baseline: {served_med / floor_med:.2f}")


def main() -> int:
    """Run both benchmarks on a dockerd from tests/services; return the exit status."""
    from tests.services.fixtures import _Services

    services = _Services()
    refs: list[str] = []
    try:
        daemon = services.docker()
        base = services.python_base_image()
        builder = ImageBuilder(daemon.base_url, timeout=300)
        with tempfile.TemporaryDirectory(prefix="mrc-bench-docker-") as tmp:
            refs = bench_rebuild(builder, Path(tmp) / "repo", base, "mrc-bench/server")
        import docker

        api = docker.APIClient(base_url=daemon.base_url, timeout=300)
        try:
            bench_rollback(daemon.base_url, api, refs)
        finally:
            for ref in refs:
                with contextlib.suppress(Exception):
                    api.remove_image(ref, force=True)
            api.close()
        builder.close()
    finally:
        services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
