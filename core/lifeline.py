"""The guard process of :mod:`core.procs`: run a command, stop its process group with the console.

    python -I -S lifeline.py --fd N --tag TAG -- COMMAND...

:func:`core.procs.spawn_guarded` starts this file as the leader of a new
session, with the read end of the console's lifeline pipe as descriptor N.
The guard spawns COMMAND in its process group and waits, asleep, until one
of these happens:

* COMMAND exits: the guard exits with its code (``128 + N`` for signal N);
* the lifeline breaks (the console is gone, however it ended);
* the guard gets SIGTERM, SIGHUP or SIGINT (:func:`core.procs.kill_group`).

In the last two cases, and after COMMAND exits, the guard sends SIGTERM to
its whole group, reaps every process (as a child subreaper on Linux, also
the orphans COMMAND left behind) and sends SIGKILL to the group when some
are still alive after :data:`GRACE` seconds.

A guard is started for every server, forwarder and traffic generator, on the
way to their first answer, so this file uses only modules built into the
interpreter (no ``subprocess``, ``threading`` or ``pathlib``): with ``-I -S``
it starts about as fast as a bare interpreter. ``TAG`` is only read by
:func:`core.procs.is_guard_of`, to recognise the guard later.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

#: Seconds between SIGTERM and SIGKILL when a group is stopped.
GRACE = 3.0

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def _parse(argv: list[str]) -> tuple[int, list[str]] | str:
    """Return ``(lifeline fd, command)`` from the arguments, or the usage error to print."""
    try:
        split = argv.index("--")
        options, command = argv[:split], argv[split + 1 :]
        fd = int(options[options.index("--fd") + 1])
    except (ValueError, IndexError):
        return "usage: lifeline.py --fd N --tag TAG -- COMMAND...\n"
    if not command:
        return "lifeline.py: no command\n"
    return fd, command


def _become_subreaper() -> None:
    """Make orphaned descendants children of this process (Linux), so it can reap them."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _reap(child: int) -> int | None:
    """Reap every exited child without waiting; return ``child``'s wait status if it was one."""
    status = None
    while True:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == child:
            status = code


def _wait_for_end(lifeline: int, wakeup: int, child: int) -> int | None:
    """Sleep until the child exits, the lifeline breaks or a stop signal arrives.

    Returns the child's wait status when it exited, else None.
    """
    poller = select.poll()
    poller.register(lifeline, select.POLLIN)
    poller.register(wakeup, select.POLLIN)
    stop_numbers = {int(s) for s in _STOP_SIGNALS}
    while True:
        status = _reap(child)
        if status is not None:
            return status
        for fd, _ in poller.poll():
            if fd == lifeline:
                try:
                    if not os.read(lifeline, 64):
                        return None  # every write end is closed: the console is gone
                except BlockingIOError:
                    pass
                except OSError:
                    return None
            else:
                try:
                    received = os.read(wakeup, 64)
                except BlockingIOError:
                    received = b""
                if stop_numbers.intersection(received):
                    return None


def _stop_group(child: int, status: int | None) -> int | None:
    """Terminate this process group, reap all of it; return ``child``'s wait status.

    SIGKILL goes to the group (this process included) when members are still
    alive :data:`GRACE` seconds after SIGTERM.
    """
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    try:
        os.killpg(os.getpgrp(), signal.SIGTERM)
    except OSError:
        pass
    deadline = time.monotonic() + GRACE
    while True:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == child:
            status = code
        if pid == 0:
            if time.monotonic() >= deadline:
                os.killpg(os.getpgrp(), signal.SIGKILL)
            time.sleep(0.01)


def main(argv: list[str]) -> int:
    """Run the command after ``--`` until it exits or the lifeline breaks; return its exit code.

    Returns 2 for bad arguments and 127 when the command cannot be started.
    """
    parsed = _parse(argv)
    if isinstance(parsed, str):
        sys.stderr.write(parsed)
        return 2
    lifeline, command = parsed
    os.set_inheritable(lifeline, False)  # the command does not hold the console's lifeline
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    for sig in (*_STOP_SIGNALS, signal.SIGCHLD):
        signal.signal(sig, lambda signum, frame: None)  # the wakeup pipe tells the main loop
    _become_subreaper()
    try:
        child = os.posix_spawnp(command[0], command, os.environ)
    except OSError as exc:
        sys.stderr.write(f"cannot start {command[0]}: {exc}\n")
        return 127
    status = _stop_group(child, _wait_for_end(lifeline, wake_read, child))
    code = os.waitstatus_to_exitcode(status) if status is not None else 1
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
