"""dockerd on a private socket (vfs, no bridge, no iptables) and the Python base image."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.services.common import (
    CACHE_DIR,
    Service,
    ServiceError,
    file_lock,
    kill_pids,
    mounts_under,
    processes_mentioning,
    scratch_dir,
    unmount_under,
)

BASE_SUITE = "bookworm"
BASE_IMAGE = f"mrc-python-base:{BASE_SUITE}"
# Bump the recipe number when the root filesystem recipe changes, to rebuild the cache.
BASE_RECIPE = 2
BASE_TARBALL = CACHE_DIR / f"python-base-{BASE_SUITE}-r{BASE_RECIPE}.tar"
DEBIAN_MIRROR_DEFAULT = "http://deb.debian.org/debian"


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def docker_api(socket_path: Path, method: str, url: str, timeout: float = 10.0) -> object:
    """Calls the Engine API over its unix socket; returns the decoded JSON body (or None).

    Raises OSError when the socket does not answer, RuntimeError on an HTTP error status.
    """
    conn = _UnixHTTPConnection(str(socket_path), timeout)
    try:
        conn.request(method, url)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status >= 400:
        raise RuntimeError(f"{method} {url}: HTTP {resp.status} {body[:200]!r}")
    return json.loads(body) if body.strip() else None


class DockerDaemon:
    """A dockerd with its own data root, exec root, socket and log below `state_dir`."""

    name = "dockerd"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.socket_path = state_dir / "docker.sock"
        self.data_root = scratch_dir(state_dir) / "data"
        self.exec_root = state_dir / "exec"
        self.log_path = state_dir / "dockerd.log"
        self.service: Service | None = None

    @property
    def base_url(self) -> str:
        """Returns the Engine API address, unix://<socket>."""
        return f"unix://{self.socket_path}"

    def healthy(self) -> bool:
        """Returns whether the daemon answers /_ping."""
        try:
            conn = _UnixHTTPConnection(str(self.socket_path), 2.0)
            conn.request("GET", "/_ping")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def start(self, timeout: float = 60.0) -> None:
        """Starts dockerd and waits for /_ping. Raises ServiceError on failure."""
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if not os.path.exists(dockerd):
            raise ServiceError(self.name, "dockerd is not installed (apt-get install docker.io)")
        for d in (self.data_root, self.exec_root):
            d.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "daemon.json"
        config.write_text("{}\n")
        path = os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        self.service = Service(
            self.name,
            [
                dockerd,
                f"--config-file={config}",
                f"--host={self.base_url}",
                f"--data-root={self.data_root}",
                f"--exec-root={self.exec_root}",
                f"--pidfile={self.state_dir / 'dockerd.pid'}",
                "--storage-driver=vfs",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--userland-proxy=false",
                "--log-level=warn",
            ],
            self.log_path,
            env={**os.environ, "PATH": path},
        )
        self.service.start()
        self.service.wait_ready(self.healthy, timeout, "the Engine API to answer /_ping")

    def remove_all_containers(self) -> None:
        """Force-removes every container of this daemon (best effort)."""
        try:
            containers = docker_api(self.socket_path, "GET", "/containers/json?all=1")
        except (OSError, RuntimeError):
            return
        for c in containers or []:  # type: ignore[attr-defined]
            try:
                docker_api(self.socket_path, "DELETE", f"/containers/{c['Id']}?force=1&v=1", 30)
            except (OSError, RuntimeError):
                pass

    def stop(self) -> None:
        """Removes containers, stops dockerd and its containerd, and unmounts what is left."""
        if self.service is not None:
            self.remove_all_containers()
            self.service.stop(timeout=30)
            self.service = None
        # containerd shims detach from dockerd's process group; they name the exec root.
        leftovers = processes_mentioning(f"{self.exec_root}/")
        if leftovers:
            kill_pids(leftovers)
        for d in (self.state_dir, self.data_root):
            if mounts_under(d):
                unmount_under(d)

    def image_present(self, ref: str) -> bool:
        """Returns whether the daemon has an image called `ref`."""
        try:
            docker_api(self.socket_path, "GET", f"/images/{ref}/json")
            return True
        except RuntimeError:
            return False


def debian_mirror() -> str:
    """Returns the Debian mirror apt is configured with (the deb.debian.org default otherwise)."""
    candidates: list[str] = []
    files = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        files += sorted(d.iterdir())
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
                if uris and suites and BASE_SUITE in suites.group(1).split():
                    candidates.append(uris.group(1))
        else:
            for line in text.splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s", line + " ")
                if m and m.group(2) == BASE_SUITE:
                    candidates.append(m.group(1))
    for uri in candidates:
        if "security" not in uri:
            return uri.rstrip("/")
    return DEBIAN_MIRROR_DEFAULT


def build_base_tarball(log_path: Path | None = None) -> Path:
    """Builds (once per machine) the Debian minbase + python3 root filesystem tarball.

    Returns its path. Raises ServiceError when debootstrap is missing or fails.
    """
    with file_lock(CACHE_DIR / "python-base.lock"):
        if BASE_TARBALL.exists():
            return BASE_TARBALL
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        if not os.path.exists(debootstrap):
            raise ServiceError("python-base", "debootstrap is not installed")
        log_path = log_path or CACHE_DIR / "python-base.log"
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="rootfs.", dir=CACHE_DIR))
        try:
            with open(log_path, "ab") as log:
                subprocess.run(
                    [
                        "nice",
                        debootstrap,
                        "--variant=minbase",
                        "--include=python3",
                        BASE_SUITE,
                        str(work / "root"),
                        debian_mirror(),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=True,
                )
                root = work / "root"
                # Every container and build step copies the whole tree (vfs): keep it small.
                for junk in (
                    "var/cache/apt",
                    "var/lib/apt/lists",
                    "usr/share/doc",
                    "usr/share/man",
                    "usr/share/info",
                    "usr/share/locale",
                ):
                    for p in (root / junk).glob("*"):
                        if p.is_dir() and not p.is_symlink():
                            shutil.rmtree(p)
                        else:
                            p.unlink()
                tmp = work / "rootfs.tar"
                subprocess.run(
                    ["tar", "--numeric-owner", "-C", str(root), "-cf", str(tmp), "."],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=True,
                )
                tmp.replace(BASE_TARBALL)
        except subprocess.CalledProcessError as e:
            raise ServiceError("python-base", f"{e.cmd[1]} failed", log_path) from e
        finally:
            unmount_under(work)
            shutil.rmtree(work, ignore_errors=True)
        return BASE_TARBALL


def import_base_image(daemon: DockerDaemon) -> str:
    """Imports the cached base tarball into `daemon` unless present; returns the image ref.

    Raises ServiceError when the tarball cannot be built or imported.
    """
    tarball = build_base_tarball()
    digest = hashlib.sha256(f"{tarball.stat().st_size}:{tarball.stat().st_mtime}".encode())
    label = digest.hexdigest()[:12]
    if daemon.image_present(BASE_IMAGE):
        info = docker_api(daemon.socket_path, "GET", f"/images/{BASE_IMAGE}/json")
        labels = (info or {}).get("Config", {}).get("Labels") or {}  # type: ignore[attr-defined]
        if labels.get("mrc.tarball") == label:
            return BASE_IMAGE
    changes = [
        'CMD ["/usr/bin/python3"]',
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"LABEL mrc.tarball={label}",
    ]
    _import_via_api(daemon, tarball, changes)
    return BASE_IMAGE


def _import_via_api(daemon: DockerDaemon, tarball: Path, changes: list[str]) -> None:
    """Imports `tarball` with POST /images/create. Raises ServiceError on failure."""
    from urllib.parse import urlencode

    query = urlencode(
        [("fromSrc", "-"), ("repo", BASE_IMAGE.split(":")[0]), ("tag", BASE_SUITE)]
        + [("changes", c) for c in changes]
    )
    conn = _UnixHTTPConnection(str(daemon.socket_path), 300)
    try:
        with open(tarball, "rb") as f:
            conn.request(
                "POST",
                f"/images/create?{query}",
                body=f,
                headers={
                    "Content-Type": "application/x-tar",
                    "Content-Length": str(tarball.stat().st_size),
                },
            )
            resp = conn.getresponse()
            body = resp.read()
    finally:
        conn.close()
    if resp.status >= 400 or b'"error"' in body:
        raise ServiceError("python-base", f"image import failed: {body[-300:]!r}")
