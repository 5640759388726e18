"""Child processes that die with the console.

Servers, proxies and traffic generators started by the console must not
outlive it, however it ends: a clean quit, Ctrl-C, SIGTERM, a closed terminal
or SSH session (SIGHUP), or even SIGKILL. Each such process is started behind
a *guard*, the script :mod:`core.lifeline` (built-in modules only, so it
starts fast)::

    python -I -S lifeline.py --fd N --tag TAG -- COMMAND...

The guard is the leader of a new session and process group; COMMAND runs in
that group. The guard holds the read end of a "lifeline" pipe whose only
write end stays in the console. When the console dies for any reason the
kernel closes the write end, the guard reads EOF and terminates its whole
process group (SIGTERM, then SIGKILL after a grace period). A pipe is used
rather than ``PR_SET_PDEATHSIG`` because the latter fires when the *thread*
that forked the child exits, and the console starts processes from worker
threads.

The console side also offers the one process-group killer, :func:`kill_group`
(terminate a group and reap it; the console's servers and the test runner
both use it), the one ``/proc/<pid>/stat`` reader (:func:`proc_stat`) and a
registry of cleanup callbacks run at exit and on SIGHUP/SIGTERM
(:func:`register_cleanup`, :func:`install_exit_handlers`) so processes are
stopped gracefully when possible.

Environment: no child gets the console's whole environment, which holds the
metrics tokens and passwords named by the configuration's ``*_env`` keys,
``KUBECONFIG``, ``DOCKER_CONFIG``, cloud credentials and the like. Every
child's environment is built by :func:`child_environment` from an allow-list
of variable names and globs (:data:`DEFAULT_CHILD_ENV`, or ``[console]
child_env`` through :class:`ChildEnv`) plus the values the console sets
itself; :func:`spawn_guarded` uses the default list when given no
environment.

Limitation: a process forked (not exec'd) from the console inherits the write
end and keeps guards alive until it exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from core.lifeline import GRACE  # seconds a group gets between SIGTERM and SIGKILL

#: Variables (names or ``fnmatch`` globs) a child process gets from the console's
#: environment unless ``[console] child_env`` says otherwise.
DEFAULT_CHILD_ENV: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TERM",
    "TMPDIR",
    "PYTHON*",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
)


class ChildEnv(NamedTuple):
    """Which of the console's environment variables a child process gets.

    ``allow`` holds names and ``fnmatch`` globs (case-sensitive, e.g.
    ``LC_*``); ``deny`` holds names never passed even when ``allow`` matches
    them (the variables the configuration reads secrets from).
    """

    allow: tuple[str, ...] = DEFAULT_CHILD_ENV
    deny: frozenset[str] = frozenset()

    def build(
        self, extra: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Return a child's environment under this policy; see :func:`child_environment`."""
        return child_environment(self.allow, extra, deny=self.deny, environ=environ)


def child_environment(
    allow: Sequence[str] = DEFAULT_CHILD_ENV,
    extra: Mapping[str, str] | None = None,
    *,
    deny: Collection[str] = (),
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return the environment of a child process: never the console's whole one.

    Holds the variables of ``environ`` (default ``os.environ``) whose name
    matches an entry of ``allow`` (a name or an ``fnmatch`` glob, matched
    case-sensitively) and is not in ``deny``, then ``extra`` (values the
    console sets itself, such as ``PORT``; they win over inherited ones and
    are passed as given). Never raises.
    """
    from fnmatch import fnmatchcase

    source = os.environ if environ is None else environ
    names = [a for a in allow if not any(c in a for c in "*?[")]
    globs = [a for a in allow if a not in names]
    env = {
        name: value
        for name, value in source.items()
        if name not in deny and (name in names or any(fnmatchcase(name, g) for g in globs))
    }
    env.update(extra or {})
    return env


#: Seconds :func:`kill_group` waits for a group to vanish after SIGKILL.
KILL_WAIT = 2.0

_lifeline_lock = threading.Lock()
_lifeline: tuple[int, int] | None = None


def _lifeline_fd() -> int:
    """Return the read end of this process's lifeline pipe, creating the pipe once."""
    global _lifeline
    with _lifeline_lock:
        if _lifeline is None:
            _lifeline = os.pipe()  # both ends close-on-exec: only guards get the read end
        return _lifeline[0]


def guard_script() -> str:
    """Return the path of the guard script, :mod:`core.lifeline`."""
    return str(Path(__file__).resolve().with_name("lifeline.py"))


def spawn_guarded(
    argv: Sequence[str],
    *,
    tag: str,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` behind a guard in a new session; return the guard's Popen.

    The guard's pid is also the process group id of everything it runs.
    ``tag`` is written on the guard's command line so that a later console can
    recognise the process (:func:`is_guard_of`). ``env`` is the whole
    environment of the guard and the command (build it with
    :func:`child_environment`); None gives :func:`child_environment` with the
    default allow-list, never the console's own environment. Output goes to
    ``log_path`` (appended) or is discarded. Raises OSError when the guard
    cannot start.
    """
    fd = _lifeline_fd()
    env = dict(env) if env is not None else child_environment()
    cmd = [sys.executable, "-I", "-S", guard_script(), "--fd", str(fd), "--tag", tag, "--"]
    cmd += list(argv)
    log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115
    try:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log if log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
            pass_fds=(fd,),
            start_new_session=True,
        )
    finally:
        if log is not None:
            log.close()


class ProcStat(NamedTuple):
    """What ``/proc/<pid>/stat`` says about a process (Linux)."""

    state: str
    """One letter: ``R`` running, ``S`` sleeping, ``D`` disk wait, ``Z`` zombie, ``X`` dead, ..."""
    pgid: int
    """The process group id."""
    start_ticks: int
    """The start time in clock ticks since boot: with the pid it names one process."""

    @property
    def live(self) -> bool:
        """True unless the process is a zombie or dead (such a process holds nothing)."""
        return self.state not in ("Z", "X")


def proc_stat(pid: int) -> ProcStat | None:
    """Return what ``/proc/<pid>/stat`` says about process ``pid``.

    Returns None when there is no such process. Raises OSError when the
    entry exists but cannot be read or parsed (another user's process under
    a restrictive ``/proc`` mount, or no ``/proc`` at all).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    # After it come state (field 3), ppid, pgrp (field 5) ... starttime (field 22).
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return ProcStat(fields[0].decode("ascii"), int(fields[2]), int(fields[19]))
    except (IndexError, ValueError) as exc:
        raise OSError(f"cannot parse /proc/{pid}/stat") from exc


def group_alive(pgid: int) -> bool:
    """Return True while some process of group ``pgid`` exists (zombies included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_group_members(pgid: int) -> list[int]:
    """Return the pids of the live (not zombie) processes of group ``pgid``.

    Scans ``/proc``; without it, returns ``[pgid]`` while the group exists
    (:func:`group_alive`) and ``[]`` once it is gone. Never raises.
    """
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [pgid] if group_alive(pgid) else []
    members = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = proc_stat(int(entry))
        except OSError:
            continue
        if stat is not None and stat.pgid == pgid and stat.live:
            members.append(int(entry))
    return members


def kill_group(
    pgid: int, popen: subprocess.Popen[bytes] | None = None, grace: float = GRACE
) -> bool:
    """Terminate process group ``pgid``: SIGTERM, then SIGKILL after ``grace`` seconds.

    ``popen`` (the group leader, if it is our child) is reaped on the way so
    it does not linger as a zombie. Returns True when no live process of the
    group remains (zombies hold nothing), False when something survived
    SIGKILL for a further :data:`KILL_WAIT` seconds (barring uninterruptible
    sleep it cannot) or belongs to another user. Never raises, also for a
    group that is already gone.
    """
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_WAIT)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # nothing of the group can be signalled: not ours
            return not live_group_members(pgid)
        deadline = time.monotonic() + wait
        while True:
            if popen is not None:
                popen.poll()
            if not live_group_members(pgid):
                _reap(popen)
                return True
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
    return not live_group_members(pgid)


def _reap(popen: subprocess.Popen[bytes] | None) -> None:
    """Collect the exit status of ``popen``, which is dead (at most a zombie), so none lingers."""
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=1.0)


def is_guard_of(pid: int, tag: str) -> bool:
    """Return True when ``pid`` is alive and is a guard started with ``tag``.

    Used before killing a pid recorded by an earlier console, so that a
    recycled pid of an unrelated process is never touched.
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    args = [a.decode("utf-8", "replace") for a in raw.split(b"\0")]
    if not any(a.endswith("lifeline.py") for a in args):
        return False
    try:
        i = args.index("--tag")
    except ValueError:
        return False
    return i + 1 < len(args) and args[i + 1] == tag


# --------------------------------------------------------------------------
# Cleanup at exit


_cleanups_lock = threading.Lock()
_cleanups: list[Callable[[], Callable[[], object] | None]] = []
_handlers_installed = False


def register_cleanup(callback: Callable[[], object]) -> None:
    """Run ``callback()`` at exit and on SIGHUP/SIGTERM (see :func:`install_exit_handlers`).

    Bound methods are held weakly, so registering does not keep an object
    alive; other callables are held strongly.
    """
    ref: Callable[[], Callable[[], object] | None]
    if hasattr(callback, "__self__") and hasattr(callback, "__func__"):
        ref = weakref.WeakMethod(callback)  # type: ignore[arg-type]
    else:

        def ref() -> Callable[[], object]:
            return callback

    with _cleanups_lock:
        _cleanups.append(ref)


def unregister_cleanup(callback: Callable[[], object]) -> None:
    """Forget ``callback`` (no error when it was not registered)."""
    with _cleanups_lock:
        _cleanups[:] = [r for r in _cleanups if r() not in (None, callback)]


def run_cleanups() -> None:
    """Run and forget every registered cleanup, newest first; exceptions are swallowed."""
    with _cleanups_lock:
        refs = list(reversed(_cleanups))
        _cleanups.clear()
    for ref in refs:
        callback = ref()
        if callback is None:
            continue
        with contextlib.suppress(Exception):
            callback()


def install_exit_handlers(signals: Sequence[int] = (signal.SIGHUP, signal.SIGTERM)) -> None:
    """Run the cleanups at interpreter exit and when one of ``signals`` arrives.

    On a signal the cleanups run, then the default action of the signal is
    restored and the signal re-raised, so the process still ends the way the
    signal asks. Must be called from the main thread (Python's rule for
    signal handlers); calling it again does nothing.
    """
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(run_cleanups)

    def handler(signum: int, frame: object) -> None:
        run_cleanups()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for sig in signals:
        signal.signal(sig, handler)
