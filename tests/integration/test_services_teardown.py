"""Stopping a set of services leaves no process, mount, socket, port or file behind."""

from __future__ import annotations

import os

import pytest

from tests.services.common import STATE_ROOT, listening_ports, pid_alive, scratch_dir
from tests.services.harness import ServiceSet, leftovers

pytestmark = [
    pytest.mark.integration,
    pytest.mark.docker,
    pytest.mark.registry,
    pytest.mark.prometheus,
    pytest.mark.k8s,
]


@pytest.fixture()
def service_set():
    # Not tmp_path: unix socket paths below it would be too long for containerd.
    services = ServiceSet(STATE_ROOT / f"teardown-{os.getpid()}")
    yield services
    services.stop()


def test_stop_leaves_nothing_behind(service_set):
    from tests.services.common import ServiceError
    from tests.services.fixtures import service_unavailable

    try:
        daemon = service_set.start_docker()
        image = service_set.python_base_image()
        reg = service_set.start_registry()
        prom = service_set.start_prometheus(scrape_targets=[reg.address])
        cluster = service_set.start_k8s()
    except ServiceError as e:
        service_unavailable(e)

    # A running container: containerd shim, runc state and mounts exist while it runs.
    import docker

    client = docker.DockerClient(base_url=daemon.base_url)
    client.containers.run(image, ["sleep", "600"], detach=True, network_mode="host")
    client.close()

    pids = {s.name: s.proc.pid for s in service_set.services() if s.proc is not None}
    assert {"dockerd", "registry", "prometheus", "etcd", "kube-apiserver", "kwok"} <= set(pids)
    shims = [p for p in leftovers(service_set.root)["processes"] if p not in pids.values()]
    assert shims, "expected containerd and a shim to run for the container"
    ports = {reg.port, prom.port, cluster.apiserver_port, cluster.etcd_port}
    assert ports <= listening_ports()

    service_set.stop()

    assert not any(pid_alive(p) for p in list(pids.values()) + shims)
    assert not ports & listening_ports()
    assert leftovers(service_set.root) == {"processes": [], "mounts": [], "sockets": []}
    assert not service_set.root.exists()
    assert not scratch_dir(service_set.root).exists()
