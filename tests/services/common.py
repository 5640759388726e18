"""Process, port, lock and state-directory helpers shared by the service harness.

Standard library only: `python3 -m tests.services` runs before the virtualenv exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

STATE_ROOT = Path(os.environ.get("MRC_SERVICES_DIR", "/tmp/mrc-services"))
CACHE_DIR = Path(os.environ.get("MRC_CACHE_DIR", str(Path.home() / ".cache" / "mrc")))
SHARED_DIR_NAME = "up"
# Bulk data (image layers, registry blobs) goes to memory when it can: vfs copies whole image
# trees for every container and build step, about ten times faster on tmpfs than on disk here.
SCRATCH_ROOT = Path(os.environ.get("MRC_SCRATCH_DIR", "/dev/shm/mrc-services"))


def scratch_dir(state_dir: Path) -> Path:
    """Returns the directory for bulk data of the service in `state_dir`.

    It mirrors `state_dir` below SCRATCH_ROOT when that is usable (its parent exists and is
    writable), else it is `state_dir` itself. The caller creates it.
    """
    parent = SCRATCH_ROOT.parent
    if not (parent.is_dir() and os.access(parent, os.W_OK)):
        return state_dir
    try:
        relative = state_dir.resolve().relative_to(STATE_ROOT.resolve())
    except ValueError:
        relative = Path(str(state_dir.resolve()).strip("/").replace("/", "_"))
    return SCRATCH_ROOT / relative


class ServiceError(RuntimeError):
    """A service could not be prepared or started; carries the path of its log."""

    def __init__(self, service: str, message: str, log_path: Path | None = None) -> None:
        self.service = service
        self.log_path = log_path
        super().__init__(f"{service}: {message}")

    def log_tail(self, lines: int = 60) -> str:
        """Returns the last `lines` lines of the service's log, or "" without one."""
        return log_tail(self.log_path, lines) if self.log_path else ""


def log_tail(path: Path, lines: int = 60) -> str:
    """Returns the last `lines` lines of a text file ("" when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that was free when asked."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Returns whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def listening_ports() -> set[int]:
    """Returns the TCP ports in LISTEN state on this machine (IPv4 and IPv6)."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 3 and fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.2,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Polls `predicate` until it returns true.

    Raises TimeoutError after `timeout` seconds, or RuntimeError as soon as `alive()` is false.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:
            pass
        if alive is not None and not alive():
            raise RuntimeError(f"process exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive advisory lock on `path` (created when missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def pid_alive(pid: int) -> bool:
    """Returns whether a process with this pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def process_start_time(pid: int) -> int | None:
    """Returns the kernel start time (clock ticks since boot) of `pid`, None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def processes_mentioning(text: str) -> list[int]:
    """Returns the pids (other than this one) whose command line contains `text`.

    Pass a directory with a trailing "/" so that /x/session-1 does not match /x/session-12.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            )
        except OSError:
            continue
        if text in cmdline and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def mounts_under(path: Path) -> list[str]:
    """Returns the mount points at or below `path` in this mount namespace."""
    prefix = str(path.resolve())
    result = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            result.append(point)
    return result


def unmount_under(path: Path) -> None:
    """Lazily unmounts everything mounted at or below `path`, deepest first."""
    for point in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def kill_pids(
    pids: Sequence[int], timeout: float = 10.0, second_term_after: float | None = None
) -> None:
    """Sends SIGTERM to each pid (again after `second_term_after` seconds if given), then
    SIGKILL to those still alive after `timeout` seconds."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if second_term_after is not None:
        deadline = time.monotonic() + second_term_after
        while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
            time.sleep(0.1)
        for pid in pids:
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class ProcessRecord:
    """What is needed to find and stop a started process again, also from another process."""

    name: str
    pid: int
    start_time: int | None
    log: str

    def alive(self) -> bool:
        """Returns whether this very process (not a reuse of its pid) still runs."""
        return pid_alive(self.pid) and process_start_time(self.pid) == self.start_time


class Service:
    """A daemon started in its own session with its output kept in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        nice: int = 0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.nice = nice
        self.proc: subprocess.Popen[bytes] | None = None
        self.record: ProcessRecord | None = None

    def start(self) -> None:
        """Starts the process. Raises ServiceError when the executable cannot be run."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
            log.flush()
            nice = self.nice
            try:
                self.proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                    preexec_fn=(lambda: os.nice(nice)) if nice else None,
                )
            except OSError as e:
                raise ServiceError(
                    self.name, f"cannot run {self.argv[0]}: {e}", self.log_path
                ) from e
        self.record = ProcessRecord(
            self.name, self.proc.pid, process_start_time(self.proc.pid), str(self.log_path)
        )

    def alive(self) -> bool:
        """Returns whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0, second_term_after: float | None = None) -> None:
        """Stops the process: SIGTERM (again after `second_term_after` seconds if given, for
        daemons that exit at once on a second signal), then SIGKILL after `timeout` seconds;
        reaps it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                if second_term_after is not None:
                    try:
                        self.proc.wait(second_term_after)
                    except subprocess.TimeoutExpired:
                        with contextlib.suppress(ProcessLookupError):
                            self.proc.terminate()
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # Children left in the process group (none expected) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None

    def wait_ready(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Waits for `predicate`; raises ServiceError with the log path on exit or timeout."""
        try:
            wait_until(predicate, timeout, what, alive=self.alive)
        except (TimeoutError, RuntimeError) as e:
            raise ServiceError(self.name, str(e), self.log_path) from e


def write_json(path: Path, data: object) -> None:
    """Writes `data` as JSON atomically (write then rename)."""
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def run(argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Runs a command capturing text output; raises CalledProcessError with its stderr."""
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


class ReadyEndpoint:
    """A loopback service with a Prometheus-style ``/-/ready`` (Prometheus, Alertmanager).

    Subclasses set ``port``.
    """

    port: int

    @property
    def url(self) -> str:
        """Returns the base URL, http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        """Returns whether /-/ready answers 200."""
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False
