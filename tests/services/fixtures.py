"""Session-scoped pytest fixtures handing tests the real services.

Each pytest session starts what its tests ask for in a private state directory
($MRC_SERVICES_DIR/session-<pid>, default /tmp/mrc-services) and stops it at session end,
asserting that no process, mount or socket is left. Services started by `make services-up`
are reused instead while they run. Service logs are copied to $MRC_SERVICES_DIR/logs/ at
session end (the newest ten sets are kept). Outside CI a service that cannot start skips the test
with a reason saying how to start it; with CI=true it fails with the service's log tail.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.services.alertmanager import Alertmanager
from tests.services.common import ProcessRecord, ServiceError, scratch_dir, write_json
from tests.services.docker_engine import DockerDaemon, import_base_image
from tests.services.harness import (
    SHARED_ROOT,
    SHARED_STATE,
    ServiceSet,
    read_shared_state,
    session_root,
)
from tests.services.k8s import APISERVER_GRACE, K8sCluster
from tests.services.prometheus import Prometheus


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def service_unavailable(error: ServiceError) -> NoReturn:
    """Skips (outside CI) or fails (in CI) the requesting test because of `error`."""
    if _in_ci():
        tail = error.log_tail()
        where = f"\n--- {error.log_path} (last lines)\n{tail}" if tail else ""
        pytest.fail(f"service unavailable: {error}{where}", pytrace=False)
    pytest.skip(
        f"{error} -- install with `bash tests/services/install.sh` and start with "
        "`make services-up`"
    )


class DockerService:
    """The Docker engine handed to tests."""

    def __init__(self, daemon: DockerDaemon) -> None:
        self.daemon = daemon
        self.base_url = daemon.base_url
        self.socket_path = daemon.socket_path
        self.log_path = daemon.log_path

    def client(self) -> Any:
        """Returns a docker.DockerClient talking to this daemon."""
        import docker

        return docker.DockerClient(base_url=self.base_url, timeout=300)

    def api(self) -> Any:
        """Returns a low-level docker.APIClient talking to this daemon."""
        import docker

        return docker.APIClient(base_url=self.base_url, timeout=300)


class SharedCluster(K8sCluster):
    """The control plane of `make services-up`, attached to rather than started.

    stop_apiserver()/start_apiserver() act on its kube-apiserver; the restarted process is
    recorded in the shared state so that `make services-down` stops it.
    """

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__(Path(state["k8s"]["state_dir"]))
        self.etcd_port = int(state["k8s"]["etcd_port"])
        self.apiserver_port = int(state["k8s"]["apiserver_port"])
        self._state = state

    def stop_apiserver(self) -> None:
        """Stops the shared kube-apiserver."""
        from tests.services.common import kill_pids

        records = [ProcessRecord(**r) for r in self._state["processes"]]
        kill_pids(
            [r.pid for r in records if r.name == "kube-apiserver" and r.alive()],
            second_term_after=APISERVER_GRACE,
        )

    def start_apiserver(self, timeout: float = 120.0) -> None:
        """Starts the shared kube-apiserver again and waits for /readyz."""
        super().start_apiserver(timeout)
        svc = self.services.pop("kube-apiserver")
        assert svc.record is not None
        _DETACHED.append(svc.proc)
        procs = [r for r in self._state["processes"] if r["name"] != "kube-apiserver"]
        procs.append(asdict(svc.record))
        self._state["processes"] = procs
        write_json(SHARED_STATE, self._state)


# Popen objects of processes handed over to `make services-down`; kept referenced so that
# they are not reported as still running when garbage collected.
_DETACHED: list[Any] = []


class _Services:
    """Lazily started private services plus the shared `services-up` instance, if any."""

    def __init__(self) -> None:
        self._own: ServiceSet | None = None
        self.shared = read_shared_state()
        self._shared_docker: DockerDaemon | None = None

    @property
    def own(self) -> ServiceSet:
        if self._own is None:
            self._own = ServiceSet(session_root())
        return self._own

    def docker(self) -> DockerDaemon:
        if self.shared and "docker" in self.shared:
            if self._shared_docker is None:
                daemon = DockerDaemon(SHARED_ROOT / "docker")
                if daemon.healthy():
                    self._shared_docker = daemon
            if self._shared_docker is not None:
                return self._shared_docker
        return self.own.start_docker()

    def python_base_image(self) -> str:
        daemon = self.docker()
        if daemon is self._shared_docker:
            return import_base_image(daemon)
        return self.own.python_base_image()

    def registry(self) -> str:
        if self.shared and "registry" in self.shared:
            return str(self.shared["registry"]["address"])
        return self.own.start_registry().address

    def k8s(self) -> K8sCluster:
        if self.shared and "k8s" in self.shared:
            cluster = SharedCluster(self.shared)
            if cluster.apiserver_ready():
                return cluster
        return self.own.start_k8s()

    def close(self) -> dict[str, list[Any]]:
        """Stops the private services; returns what they left behind (empty lists if none)."""
        if self._own is None:
            return {}
        root = self._own.root
        self._own.stop(remove=False)
        from tests.services.harness import cleanup_dir, leftovers

        left = leftovers(root)
        cleanup_dir(root)
        left["files"] = [str(d) for d in (root, scratch_dir(root)) if d.exists()]
        return left


@pytest.fixture(scope="session")
def mrc_services() -> Iterator[_Services]:
    """The session's services; at session end stops them and fails if anything is left."""
    services = _Services()
    yield services
    left = services.close()
    if any(left.values()):
        raise AssertionError(f"services left behind after teardown: {left}")


@pytest.fixture(scope="session")
def docker_service(mrc_services: _Services) -> DockerService:
    """The Docker engine: `.base_url`, `.client()`, `.api()`."""
    try:
        return DockerService(mrc_services.docker())
    except ServiceError as e:
        service_unavailable(e)


@pytest.fixture(scope="session")
def python_base_image(mrc_services: _Services, docker_service: DockerService) -> str:
    """Reference of a Debian bookworm minbase image with /usr/bin/python3 in that daemon."""
    try:
        return mrc_services.python_base_image()
    except ServiceError as e:
        service_unavailable(e)


@pytest.fixture(scope="session")
def registry(mrc_services: _Services) -> str:
    """ "127.0.0.1:PORT" of a plain-HTTP image registry."""
    try:
        return mrc_services.registry()
    except ServiceError as e:
        service_unavailable(e)


@pytest.fixture()
def prometheus_factory(mrc_services: _Services) -> Iterator[Callable[..., Prometheus]]:
    """Factory starting Prometheus instances (`.url`, `.stop()`), stopped at test end.

    Call as `prometheus_factory(openmetrics=None, scrape_targets=[], scrape_interval="1s")`.
    """
    started: list[Prometheus] = []

    def factory(
        openmetrics: str | None = None,
        scrape_targets: list[str] | None = None,
        scrape_interval: str = "1s",
    ) -> Prometheus:
        try:
            prom = mrc_services.own.start_prometheus(openmetrics, scrape_targets, scrape_interval)
        except ServiceError as e:
            if "promtool rejected" in str(e):
                raise
            service_unavailable(e)
        started.append(prom)
        return prom

    yield factory
    for prom in started:
        mrc_services.own.stop_prometheus(prom)


@pytest.fixture()
def alertmanager(mrc_services: _Services) -> Iterator[Alertmanager]:
    """A fresh Alertmanager (`.url`, `.stop()`, `.start()`), stopped at test end."""
    try:
        manager = mrc_services.own.start_alertmanager()
    except ServiceError as e:
        service_unavailable(e)
    yield manager
    mrc_services.own.stop_alertmanager(manager)


@pytest.fixture(scope="session")
def k8s_cluster(mrc_services: _Services) -> K8sCluster:
    """The Kubernetes control plane: kubeconfigs, contexts, `.kubectl()`, apiserver stop/start."""
    try:
        return mrc_services.k8s()
    except ServiceError as e:
        service_unavailable(e)


@pytest.fixture()
def k8s_namespace(k8s_cluster: K8sCluster) -> Iterator[str]:
    """A fresh namespace, deleted (without waiting) after the test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    k8s_cluster.kubectl("create", "namespace", name)
    yield name
    with contextlib.suppress(Exception):
        k8s_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
