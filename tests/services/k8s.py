"""A Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC), kube-controller-manager,
kube-scheduler and kwok as the kubelet of one fake Node, with an admin and a read-only user."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.services.common import Service, ServiceError, free_port

HERE = Path(__file__).resolve().parent
NODE_NAME = "kwok-node-0"
ADMIN_CONTEXT = "mrc-admin"
RESTRICTED_CONTEXT = "mrc-viewer"
RESTRICTED_USER = "mrc-viewer"
# kube-apiserver stops listening at once on SIGTERM but then lingers for ~10 s finishing
# background work; a second SIGTERM makes it exit immediately.
APISERVER_GRACE = 1.0


@dataclass(frozen=True)
class Binaries:
    """Paths of the control-plane executables built by build_k8s.sh."""

    k8s_bin: Path
    etcd: Path
    kwok: Path
    kwok_stages: Path

    @property
    def kubectl(self) -> Path:
        """Returns the path of kubectl."""
        return self.k8s_bin / "kubectl"

    def missing(self) -> list[str]:
        """Returns the paths among these that do not exist."""
        paths = [self.etcd, self.kwok, self.kwok_stages, self.kubectl]
        paths += [self.k8s_bin / b for b in ("kube-apiserver", "kube-controller-manager")]
        paths += [self.k8s_bin / "kube-scheduler"]
        return [str(p) for p in paths if not p.exists()]


def binaries() -> Binaries:
    """Returns where build_k8s.sh puts (or has put) the binaries of the pinned versions."""
    out = subprocess.run(
        ["bash", str(HERE / "build_k8s.sh"), "--print-dirs"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    dirs = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    kwok = Path(dirs["KWOK_DIR"])
    return Binaries(
        k8s_bin=Path(dirs["K8S_DIR"]) / "bin",
        etcd=Path(dirs["ETCD_DIR"]) / "bin" / "etcd",
        kwok=kwok / "bin" / "kwok",
        kwok_stages=kwok / "stages.yaml",
    )


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(pki: Path) -> None:
    """Writes a CA, an apiserver serving cert, admin and restricted client certs, and the
    service-account key pair into `pki`. Raises CalledProcessError when openssl fails."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650", "-subj", "/CN=mrc-test-ca",
        cwd=pki,
    )  # fmt: skip
    leaves = {
        "server": ("/CN=kube-apiserver", "serverAuth,clientAuth"),
        "admin": ("/O=system:masters/CN=mrc-admin", "clientAuth"),
        "viewer": (f"/CN={RESTRICTED_USER}", "clientAuth"),
    }
    for name, (subject, usage) in leaves.items():
        ext = pki / f"{name}.ext"
        ext.write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={usage}\n"
            + (
                "subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
                "DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.0.0.1\n"
                if name == "server"
                else ""
            )
        )
        _openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=pki,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "3650", "-extfile", ext.name,
            cwd=pki,
        )  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_kubeconfig(path: Path, server: str, pki: Path, user: str, context: str) -> None:
    """Writes a kubeconfig (JSON, which is YAML) for client cert `user` in `pki`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "mrc-test",
                "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": context,
                "user": {
                    "client-certificate": str(pki / f"{user}.crt"),
                    "client-key": str(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": "mrc-test", "user": context}}],
        "current-context": context,
    }
    path.write_text(json.dumps(config, indent=2) + "\n")


BOOTSTRAP_OBJECTS: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "mrc-read-only"},
            "rules": [
                {
                    "apiGroups": ["", "apps", "events.k8s.io"],
                    "resources": ["*"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "mrc-read-only"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "mrc-read-only",
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "User",
                    "name": RESTRICTED_USER,
                }
            ],
        },
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
            },
        },
    ],
}


class K8sCluster:
    """The control plane's processes and files below `state_dir`."""

    name = "kubernetes"

    def __init__(self, state_dir: Path, bins: Binaries | None = None) -> None:
        self.state_dir = state_dir
        self.bins = bins or binaries()
        self.pki = state_dir / "pki"
        self.kubeconfig = state_dir / "admin.kubeconfig"
        self.restricted_kubeconfig = state_dir / "viewer.kubeconfig"
        self.context = ADMIN_CONTEXT
        self.restricted_context = RESTRICTED_CONTEXT
        self.log_path = state_dir / "kube-apiserver.log"
        self.etcd_port = free_port()
        self.apiserver_port = free_port()
        self.services: dict[str, Service] = {}

    @property
    def kubectl_path(self) -> Path:
        """Returns the kubectl built from the same Kubernetes version."""
        return self.bins.kubectl

    @property
    def server(self) -> str:
        """Returns the API server URL."""
        return f"https://127.0.0.1:{self.apiserver_port}"

    def processes(self) -> dict[str, int]:
        """Returns the pid of each running control-plane process by name."""
        return {n: s.proc.pid for n, s in self.services.items() if s.proc is not None and s.alive()}

    def kubectl(
        self, *args: str, kubeconfig: str | Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl against this cluster (admin unless `kubeconfig` is given).

        Returns the completed process; raises CalledProcessError when `check` and it fails.
        """
        argv = [str(self.kubectl_path), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)

    # --- health checks -------------------------------------------------------------------

    def _get(self, url: str, client: str | None = "admin", timeout: float = 2.0) -> str:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        if client is None:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx.load_cert_chain(self.pki / f"{client}.crt", self.pki / f"{client}.key")
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
            return str(r.read().decode())

    def etcd_healthy(self) -> bool:
        """Returns whether etcd reports itself healthy."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.etcd_port}/health", timeout=2
            ) as r:
                return bool(json.load(r).get("health") == "true")
        except OSError:
            return False

    def apiserver_ready(self) -> bool:
        """Returns whether the API server answers /readyz with ok."""
        try:
            return self._get(f"{self.server}/readyz").strip() == "ok"
        except OSError:
            return False

    def _component_healthy(self, port: int) -> bool:
        try:
            return self._get(f"https://127.0.0.1:{port}/healthz", client=None).strip() == "ok"
        except OSError:
            return False

    def node_ready(self) -> bool:
        """Returns whether the fake Node reports Ready=True."""
        out = self.kubectl(
            "get",
            "node",
            NODE_NAME,
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
            check=False,
        )
        return out.stdout.strip() == "True"

    # --- lifecycle -----------------------------------------------------------------------

    def _service(self, name: str, argv: list[str]) -> Service:
        svc = Service(name, argv, self.state_dir / f"{name}.log", nice=0)
        self.services[name] = svc
        svc.start()
        return svc

    def start(self, timeout: float = 120.0) -> None:
        """Starts every component and waits until the fake Node is Ready.

        Raises ServiceError (with the failing component's log) when something does not come up.
        """
        missing = self.bins.missing()
        if missing:
            raise ServiceError(
                self.name, f"binaries missing (run tests/services/build_k8s.sh): {missing}"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            make_certificates(self.pki)
        except subprocess.CalledProcessError as e:
            raise ServiceError(self.name, f"openssl failed: {e.stderr!r}") from e
        write_kubeconfig(self.kubeconfig, self.server, self.pki, "admin", self.context)
        write_kubeconfig(
            self.restricted_kubeconfig, self.server, self.pki, "viewer", self.restricted_context
        )
        started = time.monotonic()
        self._start_etcd(timeout)
        self.start_apiserver(timeout)
        self._start_controllers(timeout)
        self.kubectl_apply(BOOTSTRAP_OBJECTS)
        kwok = self._service(
            "kwok",
            [
                str(self.bins.kwok),
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=true",
                f"--config={self.bins.kwok_stages}",
                # With the heartbeat-with-lease stage the Node status is refreshed only every
                # ten minutes; without a renewed Lease the node lifecycle controller would
                # mark the Node NotReady after the grace period and every pod unready.
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
        )
        remaining = max(10.0, timeout - (time.monotonic() - started))
        kwok.wait_ready(self.node_ready, remaining, f"node {NODE_NAME} to become Ready")

    def _start_etcd(self, timeout: float) -> None:
        peer = free_port()
        etcd = self._service(
            "etcd",
            [
                str(self.bins.etcd),
                "--name=default",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                # Test data is thrown away with the cluster.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        etcd.wait_ready(self.etcd_healthy, timeout, "etcd /health")

    def start_apiserver(self, timeout: float = 120.0) -> None:
        """Starts kube-apiserver (again, on the same port) and waits for /readyz.

        Raises ServiceError when it does not become ready in `timeout` seconds.
        """
        pki = self.pki
        api = self._service(
            "kube-apiserver",
            [
                str(self.bins.k8s_bin / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                f"--tls-cert-file={pki / 'server.crt'}",
                f"--tls-private-key-file={pki / 'server.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                f"--cert-dir={self.state_dir / 'apiserver-certs'}",
                "--v=0",
            ],
        )
        api.wait_ready(self.apiserver_ready, timeout, "kube-apiserver /readyz")

    def stop_apiserver(self) -> None:
        """Stops kube-apiserver only (the rest keeps running), for disconnection tests."""
        svc = self.services.pop("kube-apiserver", None)
        if svc is not None:
            svc.stop(second_term_after=APISERVER_GRACE)

    def _start_controllers(self, timeout: float) -> None:
        common = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            "--profiling=false",
        ]
        cm_port, sched_port = free_port(), free_port()
        cm = self._service(
            "kube-controller-manager",
            [
                str(self.bins.k8s_bin / "kube-controller-manager"),
                *common,
                f"--secure-port={cm_port}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                "--use-service-account-credentials=false",
                # Margin for lease renewals delayed on a loaded machine.
                "--node-monitor-grace-period=2m",
                # The workload controllers plus what namespaces, garbage collection and nodes
                # need; volume, certificate and cloud controllers have nothing to do here.
                "--controllers=deployment,replicaset,statefulset,daemonset,job,cronjob,"
                "disruption,namespace,garbagecollector,serviceaccount,serviceaccount-token,"
                "nodelifecycle,podgc,ttl,endpoint,endpointslice",
            ],
        )
        sched = self._service(
            "kube-scheduler",
            [str(self.bins.k8s_bin / "kube-scheduler"), *common, f"--secure-port={sched_port}"],
        )
        cm.wait_ready(lambda: self._component_healthy(cm_port), timeout, "controller /healthz")
        sched.wait_ready(lambda: self._component_healthy(sched_port), timeout, "scheduler /healthz")

    def kubectl_apply(self, obj: dict[str, Any]) -> None:
        """Applies a manifest as admin. Raises ServiceError with kubectl's stderr on failure."""
        manifest = self.state_dir / "apply.json"
        manifest.write_text(json.dumps(obj))
        proc = self.kubectl("apply", "-f", str(manifest), check=False)
        if proc.returncode != 0:
            raise ServiceError(self.name, f"kubectl apply failed: {proc.stderr.strip()}")

    def stop(self) -> None:
        """Stops every component, kwok first and etcd last."""
        order = ["kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
        for name in order + [n for n in self.services if n not in order]:
            svc = self.services.pop(name, None)
            if svc is not None:
                svc.stop(second_term_after=APISERVER_GRACE if name == "kube-apiserver" else None)

    def rss_bytes(self) -> dict[str, int]:
        """Returns the current resident set size of each running component."""
        result = {}
        for name, pid in self.processes().items():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        result[name] = int(line.split()[1]) * 1024
            except OSError:
                continue
        return result

    def peak_rss_bytes(self) -> dict[str, int]:
        """Returns the peak resident set size (VmHWM) of each running component."""
        result = {}
        for name, pid in self.processes().items():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        result[name] = int(line.split()[1]) * 1024
            except OSError:
                continue
        return result
