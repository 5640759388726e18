"""Starting, finding and stopping sets of services.

A `ServiceSet` owns a state directory and starts services in it on demand. The pytest session
uses a private one (`session-<pid>`), so several sessions can run side by side; `make
services-up` starts one in `up/` and records it in `up/state.json`, which test sessions reuse
while its processes are alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.services.alertmanager import Alertmanager
from tests.services.common import (
    SCRATCH_ROOT,
    SHARED_DIR_NAME,
    STATE_ROOT,
    ProcessRecord,
    Service,
    file_lock,
    kill_pids,
    mounts_under,
    pid_alive,
    processes_mentioning,
    scratch_dir,
    unmount_under,
    write_json,
)
from tests.services.docker_engine import DockerDaemon, import_base_image
from tests.services.k8s import K8sCluster
from tests.services.prometheus import Prometheus
from tests.services.registry import Registry


class ServiceSet:
    """Services started below one state directory, each at most once (Prometheus: many)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.docker: DockerDaemon | None = None
        self.base_image: str | None = None
        self.registry: Registry | None = None
        self.k8s: K8sCluster | None = None
        self.prometheis: list[Prometheus] = []
        self._prom_count = 0
        self.alertmanagers: list[Alertmanager] = []
        self._am_count = 0
        self.timings: dict[str, float] = {}

    def _timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.monotonic() - started, 2)

    def start_docker(self) -> DockerDaemon:
        """Returns the running dockerd, starting it first. Raises ServiceError on failure."""
        if self.docker is None:
            started = time.monotonic()
            self.root.mkdir(parents=True, exist_ok=True)
            daemon = DockerDaemon(self.root / "docker")
            try:
                daemon.start()
            except BaseException:
                daemon.stop()
                raise
            self.docker = daemon
            self._timed("dockerd", started)
        return self.docker

    def python_base_image(self) -> str:
        """Returns the base image reference, importing it into dockerd on first use."""
        if self.base_image is None:
            started = time.monotonic()
            self.base_image = import_base_image(self.start_docker())
            self._timed("python_base_image", started)
        return self.base_image

    def start_registry(self) -> Registry:
        """Returns the running registry, starting it first. Raises ServiceError on failure."""
        if self.registry is None:
            started = time.monotonic()
            registry = Registry(self.root / "registry")
            try:
                registry.start()
            except BaseException:
                registry.stop()
                raise
            self.registry = registry
            self._timed("registry", started)
        return self.registry

    def start_k8s(self) -> K8sCluster:
        """Returns the running control plane, starting it first. Raises ServiceError."""
        if self.k8s is None:
            started = time.monotonic()
            cluster = K8sCluster(self.root / "k8s")
            try:
                cluster.start()
            except BaseException:
                cluster.stop()
                raise
            self.k8s = cluster
            self._timed("kubernetes", started)
        return self.k8s

    def start_prometheus(
        self,
        openmetrics: str | None = None,
        scrape_targets: list[str] | None = None,
        scrape_interval: str = "1s",
    ) -> Prometheus:
        """Starts a new Prometheus instance in its own directory. Raises ServiceError."""
        self._prom_count += 1
        prom = Prometheus(
            self.root / f"prometheus-{self._prom_count}",
            openmetrics=openmetrics,
            scrape_targets=scrape_targets,
            scrape_interval=scrape_interval,
        )
        try:
            prom.start()
        except BaseException:
            prom.stop()
            raise
        self.prometheis.append(prom)
        return prom

    def stop_prometheus(self, prom: Prometheus) -> None:
        """Stops one Prometheus instance and removes its data (its log stays until the set
        is stopped)."""
        prom.stop()
        if prom in self.prometheis:
            self.prometheis.remove(prom)
        shutil.rmtree(prom.data_dir, ignore_errors=True)

    def start_alertmanager(self) -> Alertmanager:
        """Starts a new Alertmanager instance in its own directory. Raises ServiceError."""
        self._am_count += 1
        manager = Alertmanager(self.root / f"alertmanager-{self._am_count}")
        try:
            manager.start()
        except BaseException:
            manager.stop()
            raise
        self.alertmanagers.append(manager)
        return manager

    def stop_alertmanager(self, manager: Alertmanager) -> None:
        """Stops one Alertmanager instance and removes its data (its log stays)."""
        manager.stop()
        if manager in self.alertmanagers:
            self.alertmanagers.remove(manager)
        shutil.rmtree(manager.data_dir, ignore_errors=True)

    def services(self) -> list[Service]:
        """Returns every process-backed service currently started by this set."""
        found: list[Service] = []
        if self.docker and self.docker.service:
            found.append(self.docker.service)
        if self.registry and self.registry.service:
            found.append(self.registry.service)
        if self.k8s:
            found += list(self.k8s.services.values())
        found += [p.service for p in self.prometheis if p.service]
        found += [a.service for a in self.alertmanagers if a.service]
        return found

    def stop(self, remove: bool = True) -> None:
        """Stops everything, kills stray processes naming the state dir, unmounts, and
        (with `remove`) deletes the state directory."""
        for prom in list(self.prometheis):
            self.stop_prometheus(prom)
        for manager in list(self.alertmanagers):
            self.stop_alertmanager(manager)
        if self.k8s is not None:
            self.k8s.stop()
            self.k8s = None
        if self.registry is not None:
            self.registry.stop()
            self.registry = None
        if self.docker is not None:
            self.docker.stop()
            self.docker = None
        self.base_image = None
        keep_logs(self.root)
        cleanup_dir(self.root, remove=remove)

    def leftovers(self) -> dict[str, list[Any]]:
        """Returns processes, mounts and sockets still present for this state directory."""
        return leftovers(self.root)

    # --- records for `services-up` ------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Returns a JSON-able description of the running services and their processes."""
        records = [asdict(s.record) for s in self.services() if s.record is not None]
        state: dict[str, Any] = {"root": str(self.root), "processes": records}
        if self.docker:
            state["docker"] = {"base_url": self.docker.base_url}
        if self.base_image:
            state["python_base_image"] = self.base_image
        if self.registry:
            state["registry"] = {"address": self.registry.address}
        if self.k8s:
            state["k8s"] = {
                "state_dir": str(self.k8s.state_dir),
                "etcd_port": self.k8s.etcd_port,
                "apiserver_port": self.k8s.apiserver_port,
            }
        return state


def _socket_listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


def leftovers(root: Path) -> dict[str, list[Any]]:
    """Returns the processes naming `root` (or its scratch mirror), mounts below either and
    unix sockets in `root` that something still listens on (containerd leaves dead socket
    files, removed with the directory)."""
    sockets: list[str] = []
    if root.exists():
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                p = Path(dirpath) / f
                with contextlib.suppress(OSError):
                    if p.is_socket() and _socket_listening(p):
                        sockets.append(str(p))
    dirs = {root, scratch_dir(root)}
    return {
        "processes": sorted({p for d in dirs for p in processes_mentioning(f"{d}/")}),
        "mounts": [m for d in dirs if d.exists() for m in mounts_under(d)],
        "sockets": sockets,
    }


LOGS_ROOT = STATE_ROOT / "logs"
KEEP_LOG_SETS = 10


def keep_logs(root: Path) -> Path | None:
    """Copies the *.log files below `root` to LOGS_ROOT/<root name>, keeping the newest
    KEEP_LOG_SETS such copies; returns the copy's directory (None when there were no logs)."""
    logs = list(root.rglob("*.log")) if root.exists() else []
    if not logs:
        return None
    target = LOGS_ROOT / root.name
    shutil.rmtree(target, ignore_errors=True)
    for log in logs:
        dest = target / log.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            shutil.copyfile(log, dest)
    sets = sorted(LOGS_ROOT.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in sets[KEEP_LOG_SETS:]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def cleanup_dir(root: Path, remove: bool = True) -> None:
    """Kills processes naming `root` or its scratch mirror, unmounts below both and
    optionally deletes both."""
    for d in dict.fromkeys([root, scratch_dir(root)]):
        stray = processes_mentioning(f"{d}/")
        if stray:
            kill_pids(stray)
        if d.exists():
            unmount_under(d)
            if remove:
                shutil.rmtree(d, ignore_errors=True)


def session_root() -> Path:
    """Returns a fresh state directory for this process, removing ones of dead sessions."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    with file_lock(STATE_ROOT / ".sessions.lock"):
        for d in [
            *STATE_ROOT.glob("session-*"),
            *STATE_ROOT.glob("teardown-*"),
            *SCRATCH_ROOT.glob("session-*"),
            *SCRATCH_ROOT.glob("teardown-*"),
        ]:
            with contextlib.suppress(ValueError):
                if not pid_alive(int(d.name.split("-", 1)[1])):
                    cleanup_dir(STATE_ROOT / d.name)
        root = STATE_ROOT / f"session-{os.getpid()}"
        if root.exists():
            cleanup_dir(root)
        root.mkdir()
    return root


# --- the shared instance started by `make services-up` -------------------------------------

SHARED_ROOT = STATE_ROOT / SHARED_DIR_NAME
SHARED_STATE = SHARED_ROOT / "state.json"


def read_shared_state() -> dict[str, Any] | None:
    """Returns the state of the `services-up` instance if all its processes still run."""
    try:
        state = json.loads(SHARED_STATE.read_text())
    except (OSError, ValueError):
        return None
    records = [ProcessRecord(**r) for r in state.get("processes", [])]
    if not records or not all(r.alive() for r in records):
        return None
    return dict(state)


def shared_up() -> dict[str, Any]:
    """Starts every service in the shared directory (unless running); returns its state."""
    with file_lock(STATE_ROOT / ".up.lock"):
        state = read_shared_state()
        if state is not None:
            return state
        shared_down_locked()
        services = ServiceSet(SHARED_ROOT)
        services.start_docker()
        services.python_base_image()
        services.start_registry()
        services.start_k8s()
        state = services.state()
        state["timings"] = services.timings
        write_json(SHARED_STATE, state)
        # The processes run in their own sessions and outlive this one on purpose.
        for svc in services.services():
            svc.proc = None
        return state


def shared_down() -> None:
    """Stops the `services-up` instance and removes its directory."""
    with file_lock(STATE_ROOT / ".up.lock"):
        shared_down_locked()


def shared_down_locked() -> None:
    try:
        state = json.loads(SHARED_STATE.read_text())
    except (OSError, ValueError):
        state = {}
    records = [ProcessRecord(**r) for r in state.get("processes", [])]
    docker_sock = SHARED_ROOT / "docker" / "docker.sock"
    if docker_sock.exists():
        daemon = DockerDaemon(SHARED_ROOT / "docker")
        daemon.remove_all_containers()
    # Kubernetes components first (the apiserver exits at once on a second SIGTERM), then
    # etcd, the registry and dockerd.
    k8s = {"kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver"}
    kill_pids([r.pid for r in records if r.name in k8s and r.alive()], second_term_after=1.0)
    kill_pids([r.pid for r in records if r.name not in k8s and r.alive()], timeout=30)
    cleanup_dir(SHARED_ROOT)
