"""The ``local`` target: model-server processes on this machine.

A *revision* is a commit of the model repository served by a process. Its
artifact is the commit's tree exported (:meth:`core.git.Repository.export`) into
``<state_dir>/artifacts/<sha>/`` (cached). The server command is a shell
template: ``{port}``, ``{artifact}``, ``{python}`` (this interpreter),
``{commit}`` and ``{revision}`` are substituted; it runs with the artifact as
working directory, with ``MRC_COMMIT``, ``MRC_REVISION`` and ``PORT`` in its
environment. Of the console's own environment a server (and the forwarder)
gets only what the target's :class:`~core.procs.ChildEnv` allows
(``[console] child_env``); secrets named by ``*_env`` keys never.

Switching without moving the address: clients talk to the target's stable
``port``, served by a small forwarder process (:mod:`core.targets.local_proxy`)
that forwards each request to the live server's internal port, read from
``<state_dir>/upstream.json``. A rollout, rollback or restart therefore:

1. exports the artifact and starts the new server on a free internal port
   (and the forwarder, when it does not run yet);
2. waits until ``GET health_path`` answers 200 (up to ``health_timeout``);
   if it does not, the new process is killed, the old one keeps serving and
   :class:`~core.errors.OperationFailed` carries the last lines of its log;
3. rewrites ``upstream.json`` atomically (the switch: the next request goes
   to the new server) and records the revision in ``state.json``; the
   change is done;
4. stops the old server after a short drain (:data:`DRAIN`), in the
   background, as Kubernetes lets a replaced pod terminate after the rollout.

``state.json`` is the target's own record (revisions newest first, the live
one, the processes it started); the journal records the actions. Revision
numbers only increase; as with ``kubectl rollout undo``, rolling back to a
revision gives it a new number, so each commit appears once in the history,
and ``keep`` revisions are kept.

Lifetime: every process runs behind a guard (:mod:`core.procs`) and dies with
the console, including on SIGHUP or SIGKILL. A console takes an exclusive
lock on the state dir at its first start or change; at that point it kills
the processes a previous console recorded and left behind (only if their
command line still names this state dir). It does not restart anything by
itself: :meth:`LocalTarget.start` (or :meth:`LocalTarget.restart`) brings the
recorded live revision back, and until then :meth:`LocalTarget.status` says
STOPPED. A second console on the same state dir can read but any change
raises :class:`~core.errors.Conflict`.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import http.client
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import paths, procs
from core.cancel import CancelToken
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
    MrcError,
    NotFound,
    OperationFailed,
)
from core.git import Repository
from core.targets.base import Seen, Target
from core.targets.expected import ExpectedState, refuse_if_changed

if TYPE_CHECKING:
    from core.config import LocalTargetConfig, ModelConfig

#: Seconds the old server keeps running after the switch, for requests in flight. The
#: change does not wait for them: it is done once the new revision is live.
DRAIN = 0.5
#: Seconds between health checks of a starting server (a refused connection costs little).
HEALTH_POLL = 0.02
#: Lines of a server's log quoted when it fails.
LOG_TAIL = 15
_STATE_VERSION = 1


def _logged_since(log: Path, offset: int, text: bytes) -> bool:
    """Return True when ``log`` holds ``text`` after its first ``offset`` bytes."""
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            return text in handle.read()
    except OSError:
        return False


def target_state_dir(base: Path, model: str, name: str) -> Path:
    """Return the state dir of target ``name`` of ``model`` under the console's ``base`` dir."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{model}--{name}")
    return base / "local" / safe


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = LOG_TAIL) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").splitlines()[-lines:]
    return "\n".join(text)


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class _Proc:
    """A guarded process this console started."""

    role: str  # "server" or "proxy"
    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    started: datetime
    revision: int = 0
    commit: str = ""
    restarts: int = 0
    killed: bool = False
    log_offset: int = 0  # size of ``log`` before this process started

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class _Entry:
    """One revision in ``state.json``."""

    number: int
    commit: str
    created: datetime
    change_cause: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "commit": self.commit,
            "created": self.created.isoformat(),
            "change_cause": self.change_cause,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Entry:
        return cls(
            number=int(data["number"]),
            commit=str(data["commit"]),
            created=datetime.fromisoformat(str(data["created"])),
            change_cause=str(data.get("change_cause", "")),
            extra=dict(data.get("extra") or {}),
        )


class LocalTarget(Target):
    """One model served by processes on this machine (see the module docstring)."""

    kind = "local"

    def __init__(
        self,
        model: str,
        name: str,
        repo_path: Path | str,
        command: str,
        *,
        state_dir: Path | str,
        port: int | None = 8080,
        health_path: str = "/healthz",
        keep: int = 3,
        health_timeout: float = 20.0,
        request_timeout: float = 2.0,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
        child_env: procs.ChildEnv | None = None,
    ) -> None:
        """Describe the target; nothing is started and no lock is taken yet.

        ``port`` is the stable address (None: no forwarder, clients must ask
        :meth:`detail` for the live port). ``keep`` is the number of revisions
        kept for rollback, the live one included. ``env`` holds values set for
        every server on top of what ``child_env`` (default
        :data:`core.procs.DEFAULT_CHILD_ENV`) lets through of the console's
        environment.
        """
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.model = model
        self.name = name
        self.repo_path = Path(repo_path)
        self.command = command
        self.state_dir = Path(state_dir).resolve()
        self.port = port
        self.health_path = health_path if health_path.startswith("/") else "/" + health_path
        self.keep = keep
        self.health_timeout = health_timeout
        self.request_timeout = request_timeout
        self.env = dict(env or {})
        self.child_env = child_env if child_env is not None else procs.ChildEnv()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()  # guards the fields below and state.json
        self._op_lock = threading.Lock()  # one change at a time
        self._servers: dict[int, _Proc] = {}  # by revision number
        self._proxy: _Proc | None = None
        # Old servers stopping after DRAIN, with the timer that stops them.
        self._retirements: list[tuple[threading.Timer, list[_Proc]]] = []
        self._busy = ""  # what the running change is doing, "" when idle
        self._deploying = ""  # the commit the running change exports and starts
        self._stopped_by_user = False
        self._lockfile: Any = None
        self._events: deque[TargetEvent] = deque(maxlen=200)
        self._event_seq = 0
        self._cleanup_registered = False
        self._repo_lock = threading.Lock()  # guards _repo
        self._repo: Repository | None = None

    # ------------------------------------------------------------------
    # Construction from the configuration

    @classmethod
    def from_config(
        cls, model: ModelConfig, target: LocalTargetConfig, state_base: Path
    ) -> LocalTarget:
        """Return the target described by ``target`` of ``model``.

        Its state lives under ``state_base`` (the console's state dir), see
        :func:`target_state_dir`.
        """
        return cls(
            model.name,
            target.name,
            model.repo,
            target.command,
            state_dir=target_state_dir(state_base, model.name, target.name),
            port=target.port,
            health_path=target.health_path,
            keep=target.keep,
            health_timeout=target.ready_timeout,
            request_timeout=target.timeout,
            child_env=target.child_env,
        )

    # ------------------------------------------------------------------
    # Files

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def upstream_file(self) -> Path:
        """The file the forwarder reads the live server's port from."""
        return self.state_dir / "upstream.json"

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self._state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": _STATE_VERSION, "next": 1, "current": None, "revisions": []}
        except (OSError, ValueError) as exc:
            raise BackendUnavailable(f"cannot read {self._state_file}: {exc}") from exc
        if not isinstance(data, dict):
            raise BackendUnavailable(f"cannot read {self._state_file}: not a JSON object")
        return data

    def _entries(self, data: Mapping[str, Any]) -> list[_Entry]:
        try:
            entries = [_Entry.from_json(e) for e in data.get("revisions", [])]
        except (KeyError, ValueError, TypeError) as exc:
            raise BackendUnavailable(f"corrupt revision in {self._state_file}: {exc}") from exc
        return sorted(entries, key=lambda e: e.number, reverse=True)

    def _save(self, data: dict[str, Any]) -> None:
        data["version"] = _STATE_VERSION
        data["processes"] = [
            {"role": p.role, "pid": p.pid, "port": p.port, "revision": p.revision}
            for p in self._all_procs()
            if p.alive()
        ]
        paths.ensure_dir(self.state_dir)
        _write_json_atomic(self._state_file, data)

    def _all_procs(self) -> list[_Proc]:
        procs_ = list(self._servers.values())
        if self._proxy is not None:
            procs_.append(self._proxy)
        return procs_

    @property
    def _tag(self) -> str:
        return str(self.state_dir)

    # ------------------------------------------------------------------
    # Ownership of the state dir

    def _claim(self) -> None:
        """Take the state-dir lock once; kill what a dead console left behind.

        Raises Conflict when another live console holds the lock.
        """
        if self._lockfile is not None:
            return
        paths.ensure_dir(self.state_dir)
        fh = open(self.state_dir / "lock", "a+")  # noqa: SIM115
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.close()
            raise Conflict(
                f"{self.model}/{self.name}: another console is managing {self.state_dir}"
            ) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._lockfile = fh
        with self._lock:
            data = self._load()
            for record in data.get("processes", []):
                pid = int(record.get("pid", 0))
                if pid > 0 and procs.is_guard_of(pid, self._tag):
                    procs.kill_group(pid, grace=1.0)
                    self._event("Normal", "Cleaned", f"stopped leftover {record.get('role')} {pid}")
            if data.get("processes"):
                self._save(data)
        if not self._cleanup_registered:
            procs.register_cleanup(self.stop_all)
            self._cleanup_registered = True

    # ------------------------------------------------------------------
    # Events

    def _event(self, kind: str, reason: str, message: str, obj: str = "") -> None:
        with self._lock:
            self._events.append(TargetEvent(self._clock(), kind, reason, message, obj))
            self._event_seq += 1

    # ------------------------------------------------------------------
    # Artifacts

    def _repository(self) -> Repository:
        """Return the model repository, opened once.

        Raises BackendUnavailable when the path is missing, is not a git
        repository, or git cannot be used.
        """
        with self._repo_lock:
            if self._repo is None:
                if not self.repo_path.is_dir():
                    raise BackendUnavailable(f"repository {self.repo_path} does not exist")
                try:
                    self._repo = Repository(self.repo_path)
                except NotFound as exc:
                    raise BackendUnavailable(f"{self.repo_path} is not a git repository") from exc
            return self._repo

    def resolve(self, ref: str) -> str:
        """Return the full sha of commit ``ref``.

        Raises NotFound for an unknown ref, BackendUnavailable when git fails.
        """
        if not ref:
            raise NotFound("the artifact names no commit")
        return self._repository().resolve(ref)

    def artifact_dir(self, sha: str) -> Path:
        """Return the export directory of commit ``sha`` (it may not exist yet)."""
        return self.state_dir / "artifacts" / sha

    def export(self, sha: str) -> Path:
        """Export the tree of ``sha`` (a full sha) into its artifact dir, once; return the dir.

        Raises NotFound for an unknown commit, BackendUnavailable when git
        cannot produce the tree or the state dir cannot hold it.
        """
        target = self.artifact_dir(sha)
        if target.is_dir():
            return target
        repository = self._repository()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{sha}-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            repository.export(sha, tmp)
        except NotFound:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except (MrcError, OSError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BackendUnavailable(f"cannot export commit {sha[:8]}: {exc}") from exc
        try:
            os.rename(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # exported concurrently: keep the other
        return target

    # ------------------------------------------------------------------
    # Processes

    def render_command(self, sha: str, revision: int, port: int, artifact: Path) -> str:
        """Return the shell command line of the server of ``revision`` on ``port``."""
        values = {
            "{port}": str(port),
            "{artifact}": shlex.quote(str(artifact)),
            "{python}": shlex.quote(sys.executable),
            "{commit}": sha,
            "{revision}": str(revision),
        }
        out = self.command
        for key, value in values.items():
            out = out.replace(key, value)
        return out

    def _start_server(self, number: int, sha: str, artifact: Path) -> _Proc:
        port = free_port()
        command = self.render_command(sha, number, port, artifact)
        log = self.state_dir / "logs" / f"rev-{number}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as fh:
            stamp = self._clock().isoformat(timespec="seconds")
            fh.write(f"--- {stamp} starting revision {number} on port {port}: {command}\n".encode())
        env = self.child_env.build(
            {
                **self.env,
                "MRC_COMMIT": sha,
                "MRC_REVISION": str(number),
                "PORT": str(port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        try:
            popen = procs.spawn_guarded(
                ["/bin/sh", "-c", command], tag=self._tag, cwd=artifact, env=env, log_path=log
            )
        except OSError as exc:
            raise OperationFailed(f"cannot start revision {number}: {exc}") from exc
        proc = _Proc("server", popen, port, log, self._clock(), number, sha)
        self._event("Normal", "Started", f"revision {number} (pid {popen.pid}, port {port})")
        return proc

    def _spawn_proxy(self) -> _Proc | None:
        """Start the forwarder on the stable port unless it runs; return it, not yet listening.

        Returns None when there is no stable port or the forwarder already
        runs. The caller passes the result to :meth:`_await_proxy` (or
        :meth:`_discard_proxy`), so the forwarder's start overlaps other work.
        Raises OperationFailed when it cannot be spawned.
        """
        if self.port is None:
            return None
        with self._lock:
            if self._proxy is not None and self._proxy.alive():
                return None
            if self._proxy is not None:
                procs.kill_group(self._proxy.pid, self._proxy.popen, grace=0.5)
                self._proxy = None
            log = self.state_dir / "logs" / "proxy.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            script = str(Path(__file__).with_name("local_proxy.py"))
            argv = [sys.executable, "-I", "-S", script, "--port", str(self.port)]
            argv += ["--upstream-file", str(self.upstream_file)]
            offset = log.stat().st_size if log.exists() else 0
            try:
                popen = procs.spawn_guarded(
                    argv, tag=self._tag, env=self.child_env.build(), log_path=log
                )
            except OSError as exc:
                raise OperationFailed(f"cannot start the forwarder: {exc}") from exc
            return _Proc("proxy", popen, self.port, log, self._clock(), log_offset=offset)

    def _await_proxy(self, proxy: _Proc | None) -> None:
        """Return once ``proxy`` (from :meth:`_spawn_proxy`) listens, and keep it.

        None returns at once. The forwarder's log says when it listens (a
        connection could reach another program holding the port). Raises
        OperationFailed (the forwarder is stopped) when it exits, e.g.
        because the port is taken, or does not listen within 10 s.
        """
        if proxy is None:
            return
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if _logged_since(proxy.log, proxy.log_offset, b"forwarding "):
                break
            if proxy.popen.poll() is not None:
                raise OperationFailed(
                    f"port {self.port} is not available for {self.model}/{self.name}:\n"
                    + _tail(proxy.log, 3)
                )
            time.sleep(0.02)
        else:
            self._discard_proxy(proxy)
            raise OperationFailed(f"the forwarder on port {self.port} did not start")
        with self._lock:
            self._proxy = proxy
        self._event("Normal", "Listening", f"forwarder on 127.0.0.1:{self.port}")

    @staticmethod
    def _discard_proxy(proxy: _Proc | None) -> None:
        """Stop ``proxy`` (from :meth:`_spawn_proxy`) when it was not kept; never raises."""
        if proxy is not None:
            with contextlib.suppress(Exception):
                procs.kill_group(proxy.pid, proxy.popen, grace=0.5)

    def _healthy(self, port: int) -> tuple[bool, str]:
        """Ask the server on ``port`` for its health path once.

        Returns ``(True, "")`` when it answers 200, else ``(False, why)``; never
        raises. A plain HTTP/1.1 request to 127.0.0.1 needs no client with
        proxies or TLS: :mod:`http.client` asks it without building either.
        """
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=self.request_timeout)
        try:
            conn.request("GET", self.health_path)
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            return False, f"{self.health_path}: {type(exc).__name__} {exc}".strip()
        finally:
            conn.close()
        if status == 200:
            return True, ""
        return False, f"{self.health_path} answered {status}"

    def _wait_healthy(self, proc: _Proc, cancel: CancelToken | None) -> None:
        """Return once ``proc`` answers its health check; else kill it and raise.

        Raises OperationFailed (with the log tail) or Cancelled.
        """
        deadline = time.monotonic() + self.health_timeout
        reason = "no answer yet"
        while True:
            if proc.popen.poll() is not None:
                reason = f"the process exited with code {proc.popen.returncode}"
                break
            ok, why = self._healthy(proc.port)
            if ok:
                return
            reason = why or reason
            if time.monotonic() >= deadline:
                if proc.popen.poll() is not None:
                    reason = f"the process exited with code {proc.popen.returncode}"
                else:
                    reason = f"not healthy after {self.health_timeout:g}s ({reason})"
                break
            if cancel is not None and cancel.wait(HEALTH_POLL):
                self._kill(proc)
                raise Cancelled(f"cancelled while revision {proc.revision} was starting")
            if cancel is None:
                time.sleep(HEALTH_POLL)
        self._kill(proc)
        tail = _tail(proc.log)
        self._event("Warning", "Unhealthy", f"revision {proc.revision}: {reason}")
        message = f"revision {proc.revision} (commit {proc.commit[:8]}) failed: {reason}"
        if tail:
            message += f"\nlast lines of {proc.log}:\n{tail}"
        raise OperationFailed(message)

    def _kill(self, proc: _Proc) -> bool:
        """Stop ``proc``'s group and forget it; return False when it was stopped before."""
        with self._lock:
            first = not proc.killed  # once: after reaping, the pid may belong to someone else
            proc.killed = True
        if first:
            procs.kill_group(proc.pid, proc.popen)
        with self._lock:
            if self._servers.get(proc.revision) is proc:
                del self._servers[proc.revision]
        return first

    def _retire_after_drain(self, old: list[_Proc]) -> None:
        """Stop the ``old`` servers :data:`DRAIN` seconds from now, in the background."""
        timer = threading.Timer(DRAIN, self._retire, args=(old,))
        timer.daemon = True
        with self._lock:
            self._retirements = [r for r in self._retirements if r[0].is_alive()]
            self._retirements.append((timer, old))
        timer.start()

    def _retire(self, old: list[_Proc]) -> None:
        """Stop the ``old`` servers (unless stopped already) and record it; never raises."""
        stopped = [p for p in old if self._kill(p)]
        for p in stopped:
            self._event("Normal", "Stopped", f"revision {p.revision} (pid {p.pid})")
        if stopped:
            with contextlib.suppress(Exception):
                self._prune_artifacts()
                with self._lock:
                    self._save(self._load())

    def _switch_to(self, proc: _Proc) -> None:
        _write_json_atomic(self.upstream_file, {"port": proc.port, "revision": proc.revision})

    # ------------------------------------------------------------------
    # The start-verify-switch sequence

    def _deploy(
        self,
        sha: str,
        change_cause: str,
        cancel: CancelToken | None,
        *,
        reuse_number: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Iterator[Progress]:
        """Start ``sha``, verify it, switch to it and retire the old server.

        With ``reuse_number`` the revision keeps its number (restart/start);
        otherwise it gets the next number and replaces any entry with the
        same commit. Caller holds ``_op_lock`` and has claimed the state dir.
        """
        short = sha[:8]
        if cancel is not None:
            cancel.raise_if_cancelled()
        yield Progress("prepare", f"exporting commit {short}", 0.1)
        # The forwarder starts while the commit is exported and its server starts.
        proxy = self._spawn_proxy()
        proc: _Proc | None = None
        with self._lock:
            self._deploying = sha  # its tree is not pruned meanwhile
        try:
            artifact = self.export(sha)
            with self._lock:
                data = self._load()
                number = reuse_number if reuse_number is not None else int(data.get("next", 1))
                if reuse_number is None:
                    data["next"] = number + 1
                    self._save(data)
            if cancel is not None:
                cancel.raise_if_cancelled()
            yield Progress("start", f"starting revision {number} (commit {short})", 0.2)
            with self._lock:
                self._busy = f"starting revision {number}"
                previous = self._servers.get(number)
            proc = self._start_server(number, sha, artifact)
            if previous is not None:
                proc.restarts = previous.restarts + 1
            yield Progress("verify", f"waiting for {self.health_path} on port {proc.port}", 0.4)
            self._wait_healthy(proc, cancel)
            self._await_proxy(proxy)
        except BaseException:
            # Failed, cancelled, or the caller dropped the generator: never leave the new
            # server running, nor a forwarder that is not kept.
            if proc is not None:
                self._kill(proc)
            self._discard_proxy(proxy)
            with self._lock:
                self._deploying = ""
            raise
        finally:
            with self._lock:
                self._busy = ""
        with self._lock:
            old = [p for n, p in self._servers.items() if p is not proc]
            self._servers = {n: p for n, p in self._servers.items() if n != number}
            self._servers[number] = proc
            self._switch_to(proc)
            data = self._load()
            entries = self._entries(data)
            if reuse_number is None:
                entries = [e for e in entries if e.commit != sha]
                entries.insert(
                    0, _Entry(number, sha, self._clock(), change_cause, dict(extra or {}))
                )
            entries = entries[: self.keep]
            data["revisions"] = [e.to_json() for e in entries]
            data["current"] = number
            self._stopped_by_user = False
            self._save(data)
        self._event("Normal", "Switched", f"revision {number} (commit {short}) is live")
        # Scheduled before yielding again, so that a caller who stops iterating here does
        # not leave the old servers running; their trees go when they have stopped.
        if old:
            self._retire_after_drain(old)
        with self._lock:
            self._deploying = ""
        self._prune_artifacts()
        with self._lock:
            self._save(self._load())
        yield Progress("switch", f"revision {number} is live", 0.8)
        if old:
            retiring = ", ".join(str(p.revision) for p in old)
            yield Progress(
                "retire", f"revision {retiring} stops in {DRAIN:g} s (requests in flight)"
            )
        yield Progress("done", f"revision {number} (commit {short}) is live", 1.0)

    def _prune_artifacts(self) -> None:
        """Remove the exported trees that no kept revision, running server or change needs.

        Also removes exports left half-done by a console that died. Raises
        BackendUnavailable when the state file is unreadable.
        """
        root = self.state_dir / "artifacts"
        mine = f"-{os.getpid()}-"
        with self._lock:
            if not root.is_dir():
                return
            keep = {e.commit for e in self._entries(self._load())}
            keep |= {p.commit for p in self._servers.values() if not p.killed}
            keep.add(self._deploying)
            for child in root.iterdir():
                if child.name.startswith(".tmp-"):
                    if mine not in child.name:  # left by a console that died while exporting
                        shutil.rmtree(child, ignore_errors=True)
                elif child.name not in keep:
                    shutil.rmtree(child, ignore_errors=True)

    def _begin(self) -> None:
        if not self._op_lock.acquire(blocking=False):
            raise Conflict(f"{self.model}/{self.name}: another change is in progress")
        try:
            self._claim()
        except BaseException:
            self._op_lock.release()
            raise

    # ------------------------------------------------------------------
    # Target protocol: changes

    def _refuse_if_changed(self, current: _Entry | None, expected: Seen, action: str) -> None:
        """Raise Conflict when the live revision (``current``) is not the one ``expected`` saw.

        The live revision number and its commit are compared (None: nothing
        live). ``expected`` None checks nothing.
        """
        if expected is None:
            return
        now = ExpectedState(
            revision=None if current is None else current.number,
            commit="" if current is None else current.commit,
        )
        refuse_if_changed(f"{self.model}/{self.name}", action, expected, now)

    def rollout(
        self,
        artifact: Artifact,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: Seen = None,
    ) -> Iterator[Progress]:
        """Serve ``artifact.commit`` as a new revision; yield progress until it is live.

        ``expected`` is the state the operator saw: when the live revision
        changed since, nothing is done and Conflict is raised. Raises
        NotFound (unknown commit), OperationFailed (the new server never
        became healthy: the old one keeps serving), Conflict (another change
        runs, or another console owns the state dir), Cancelled,
        BackendUnavailable (git or the state dir failed).
        """
        self._begin()
        try:
            sha = self.resolve(artifact.commit)
            with self._lock:
                data = self._load()
                current = self._current_entry(data)
                running = current is not None and self._running(current.number)
            self._refuse_if_changed(current, expected, "rollout")
            if current is not None and current.commit == sha and running:
                yield Progress("done", f"commit {sha[:8]} is already live", 1.0)
                return
            cause = reason or f"rollout of commit {sha[:8]}"
            yield from self._deploy(sha, cause, cancel)
        finally:
            self._op_lock.release()

    def rollback(
        self,
        to_revision: int | None = None,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: RollbackPreview | None = None,
    ) -> Iterator[Progress]:
        """Serve revision ``to_revision`` (None: the previous one) again, under a new number.

        ``expected`` is the preview the operator confirmed: when the live or
        the target revision changed since, nothing is done and Conflict is
        raised. Same errors as :meth:`rollout`; NotFound when there is no
        such revision.
        """
        self._begin()
        try:
            with self._lock:
                data = self._load()
                entry = self._rollback_target(data, to_revision)
                current = self._current_entry(data)
            if expected is not None:
                live = current.number if current is not None else None
                if live != expected.from_revision or entry.commit != expected.to_commit:
                    raise Conflict(
                        f"{self.model}/{self.name} changed since the rollback was confirmed "
                        f"(live revision {live}, was {expected.from_revision}); review it again"
                    )
            if current is not None and entry.number == current.number:
                yield Progress("done", f"revision {entry.number} is already live", 1.0)
                return
            cause = reason or f"rollback to revision {entry.number}"
            yield from self._deploy(
                entry.commit, cause, cancel, extra={"rolled_back_from": entry.number}
            )
        finally:
            self._op_lock.release()

    def start(self, *, cancel: CancelToken | None = None) -> Iterator[Progress]:
        """Start the recorded live revision if it is not running; yield progress.

        Yields nothing but a "done" step when it already runs. Raises
        OperationFailed when nothing was ever deployed, and the errors of
        :meth:`rollout`.
        """
        self._begin()
        try:
            with self._lock:
                current = self._current_entry(self._load())
            if current is None:
                raise OperationFailed(f"{self.model}/{self.name}: nothing deployed yet")
            if self._running(current.number) and (self.port is None or self._proxy_alive()):
                yield Progress("done", f"revision {current.number} is already running", 1.0)
                return
            yield from self._deploy(current.commit, "", cancel, reuse_number=current.number)
        finally:
            self._op_lock.release()

    def restart(self, *, expected: Seen = None) -> None:
        """Restart the live revision (a fresh process, same start-verify-switch sequence).

        Starts it when it was not running. Raises OperationFailed when nothing
        is deployed or the new process is unhealthy, Conflict as for rollout
        (including a live revision that is no longer ``expected``'s).
        """
        self._begin()
        try:
            with self._lock:
                current = self._current_entry(self._load())
            self._refuse_if_changed(current, expected, "restart")
            if current is None:
                raise OperationFailed(f"{self.model}/{self.name}: nothing deployed yet")
            for _ in self._deploy(current.commit, "", None, reuse_number=current.number):
                pass
        finally:
            self._op_lock.release()

    def pause(self, *, expected: Seen = None) -> None:
        """Always raises OperationFailed: local processes have no paused state."""
        raise OperationFailed("a local target cannot be paused")

    def resume(self, *, expected: Seen = None) -> None:
        """Always raises OperationFailed: local processes have no paused state."""
        raise OperationFailed("a local target cannot be paused or resumed")

    def stop_all(self) -> None:
        """Stop every process of this target (servers and forwarder); never raises.

        The history keeps its live revision, so :meth:`start` can bring it back.
        """
        with self._lock:
            targets = self._all_procs()
            self._servers = {}
            self._proxy = None
            self._stopped_by_user = True
            for timer, old in self._retirements:
                timer.cancel()
                targets += [p for p in old if p not in targets]
            self._retirements = []
        for proc in targets:
            with contextlib.suppress(Exception):
                self._kill(proc)
        if targets:
            self._event("Normal", "Stopped", "all processes stopped")
        if self._lockfile is not None:  # only the owning console touches the shared files
            with contextlib.suppress(Exception):
                self.upstream_file.unlink(missing_ok=True)
            with self._lock, contextlib.suppress(Exception):
                self._save(self._load())

    def close(self) -> None:
        """Stop the processes and release the state-dir lock."""
        self.stop_all()
        if self._cleanup_registered:
            procs.unregister_cleanup(self.stop_all)
            self._cleanup_registered = False
        if self._lockfile is not None:
            with contextlib.suppress(Exception):
                self._lockfile.close()
            self._lockfile = None

    # ------------------------------------------------------------------
    # Target protocol: reading

    def _current_entry(self, data: Mapping[str, Any]) -> _Entry | None:
        number = data.get("current")
        for entry in self._entries(data):
            if entry.number == number:
                return entry
        return None

    def _rollback_target(self, data: Mapping[str, Any], to_revision: int | None) -> _Entry:
        entries = self._entries(data)
        current = data.get("current")
        if to_revision is None:
            for entry in entries:
                if entry.number != current:
                    return entry
            raise NotFound(f"{self.model}/{self.name}: no previous revision to roll back to")
        for entry in entries:
            if entry.number == to_revision:
                return entry
        kept = ", ".join(str(e.number) for e in entries) or "none"
        raise NotFound(f"{self.model}/{self.name}: no revision {to_revision} (kept: {kept})")

    def _running(self, number: int) -> bool:
        with self._lock:
            proc = self._servers.get(number)
            return proc is not None and proc.alive()

    def _proxy_alive(self) -> bool:
        with self._lock:
            return self._proxy is not None and self._proxy.alive()

    def history(self) -> list[Revision]:
        """Return the kept revisions, newest first, ``current`` marking the live one.

        Raises BackendUnavailable when the state file is unreadable.
        """
        with self._lock:
            data = self._load()
        current = data.get("current")
        out = []
        for entry in self._entries(data):
            extra = dict(entry.extra)
            extra["artifact"] = str(self.artifact_dir(entry.commit))
            out.append(
                Revision(
                    number=entry.number,
                    commit=entry.commit,
                    created=entry.created,
                    change_cause=entry.change_cause,
                    current=entry.number == current,
                    extra=extra,
                )
            )
        return out

    def status(self) -> RolloutState:
        """Return the live state: COMPLETE when the live server answers its health check.

        PROGRESSING while a change runs, DEGRADED when the live server (or the
        forwarder) exited or is unhealthy, STOPPED when nothing runs. Raises
        BackendUnavailable when the state file is unreadable.
        """
        now = self._clock()
        with self._lock:
            data = self._load()
            current = self._current_entry(data)
            proc = self._servers.get(current.number) if current else None
            proxy = self._proxy
            busy = self._busy
            stopped = self._stopped_by_user
        base: dict[str, Any] = {
            "model": self.model,
            "target": self.name,
            "kind": self.kind,
            "desired": 0 if current is None else 1,
            "observed_at": now,
        }
        if current is not None:
            base.update(revision=current.number, commit=current.commit, since=current.created)
        if current is None:
            phase, message = Phase.STOPPED, "nothing deployed yet"
            if busy:
                phase, message = Phase.PROGRESSING, busy
            return RolloutState(phase=phase, message=message, **base)
        if proc is None and self._lockfile is None and not busy:
            served = self._served_elsewhere(current.number)
            if served is not None:
                base.update(ready=1, updated=1, available=1)
                return RolloutState(phase=Phase.COMPLETE, message=served, **base)
        if proc is None:
            phase = Phase.PROGRESSING if busy else Phase.STOPPED
            message = busy or (
                f"revision {current.number} is stopped"
                if stopped
                else f"revision {current.number} is not running (restart to start it)"
            )
            return RolloutState(phase=phase, message=message, **base)
        if not proc.alive():
            code = proc.popen.returncode
            last = _tail(proc.log, 1)
            message = f"revision {current.number} exited with code {code}"
            if last:
                message += f": {last}"
            return RolloutState(phase=Phase.DEGRADED, message=message, **base)
        ok, why = self._healthy(proc.port)
        ready = 1 if ok else 0
        base.update(ready=ready, updated=1, available=ready)
        if not ok:
            return RolloutState(phase=Phase.DEGRADED, message=why, **base)
        if self.port is not None and (proxy is None or not proxy.alive()):
            message = f"the forwarder on port {self.port} is not running"
            return RolloutState(phase=Phase.DEGRADED, message=message, **base)
        if busy:
            return RolloutState(phase=Phase.PROGRESSING, message=busy, **base)
        where = f"127.0.0.1:{self.port}" if self.port is not None else f"port {proc.port}"
        message = f"revision {current.number} serving on {where}"
        return RolloutState(phase=Phase.COMPLETE, message=message, **base)

    def _served_elsewhere(self, number: int) -> str | None:
        """Return a status message when another console serves revision ``number``, else None."""
        try:
            upstream = json.loads(self.upstream_file.read_text(encoding="utf-8"))
            port, revision = int(upstream["port"]), int(upstream["revision"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if revision != number or not self._healthy(port)[0]:
            return None
        owner = ""
        with contextlib.suppress(OSError, ValueError):
            owner = f" (pid {int((self.state_dir / 'lock').read_text().split()[0])})"
        return f"revision {number} served by another console{owner}"

    def detail(self) -> TargetDetail:
        """Return status, the processes (as pods), conditions and recent events."""
        state = self.status()
        host = socket.gethostname()
        pods = []
        with self._lock:
            procs_ = self._all_procs()
            events = tuple(self._events)[-20:]
        for proc in procs_:
            alive = proc.alive()
            phase = "Running" if alive else f"Exited({proc.popen.returncode})"
            if proc.role == "proxy":
                name = f"forwarder :{proc.port} (pid {proc.pid})"
                ready = alive
                image = ""
            else:
                name = f"revision {proc.revision} :{proc.port} (pid {proc.pid})"
                ready = alive and state.revision == proc.revision and state.ready == 1
                image = f"commit {proc.commit[:8]}"
            pods.append(PodInfo(name, phase, ready, proc.restarts, image, host, proc.started))
        conditions = (
            Condition(
                "Available",
                "True" if state.ready else "False",
                state.phase.value,
                state.message,
            ),
        )
        return TargetDetail(state, tuple(pods), conditions, events)

    def preview_rollback(self, to_revision: int | None = None) -> RollbackPreview:
        """Describe the rollback to ``to_revision`` (None: previous) without doing it.

        Raises NotFound when there is no such revision.
        """
        with self._lock:
            data = self._load()
            entry = self._rollback_target(data, to_revision)
            current = self._current_entry(data)
        from_commit = current.commit if current else ""
        noop = current is not None and entry.number == current.number

        def spec(sha: str) -> list[str]:
            if not sha:
                return []
            return [f"commit: {sha}\n", f"artifact: {self.artifact_dir(sha)}\n"]

        diff = "".join(
            difflib.unified_diff(
                spec(from_commit),
                spec(entry.commit),
                f"revision {current.number if current else '-'}",
                f"revision {entry.number}",
            )
        )
        warning = ""
        if current is not None and not self._running(current.number):
            warning = f"revision {current.number} is not running"
        return RollbackPreview(
            model=self.model,
            target=self.name,
            from_revision=current.number if current else None,
            to_revision=entry.number,
            from_commit=from_commit,
            to_commit=entry.commit,
            diff=diff,
            noop=noop,
            warning=warning,
        )

    def watch(self, cancel: CancelToken) -> Iterator[TargetEvent]:
        """Yield this target's events and its state changes (polled every second)."""
        with self._lock:
            seen = self._event_seq
        last: tuple[Phase, int | None] | None = None
        while not cancel.cancelled:
            with self._lock:
                fresh = self._event_seq - seen
                pending = list(self._events)[-fresh:] if fresh > 0 else []
                seen = self._event_seq
            yield from pending
            try:
                state = self.status()
            except BackendUnavailable as exc:
                yield TargetEvent(self._clock(), "Warning", "Unavailable", str(exc))
            else:
                key = (state.phase, state.revision)
                if key != last:
                    last = key
                    yield TargetEvent(
                        self._clock(), "state", state.phase.value, state.message, self.name
                    )
            if cancel.wait(1.0):
                break

    def permissions(self) -> dict[str, Permission]:
        """Return what may be done: everything but pause/resume, which processes lack."""
        unsupported = Permission(False, "local targets cannot be paused")
        allowed = Permission(True)
        return {
            "rollout": allowed,
            "rollback": allowed,
            "pause": unsupported,
            "resume": unsupported,
            "restart": allowed,
        }

    def live_port(self) -> int | None:
        """Return the internal port of the live server, or None when it is not running."""
        with self._lock:
            data = self._load()
            current = self._current_entry(data)
            proc = self._servers.get(current.number) if current else None
            return proc.port if proc is not None and proc.alive() else None
