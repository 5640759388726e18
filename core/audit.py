"""Who is acting: the identity recorded with every journal entry."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from core import procs


@dataclass(frozen=True, slots=True)
class Actor:
    """The person and process behind an action."""

    user: str
    """The OS user name (``unknown`` when it cannot be determined), followed by
    ``via browser`` for a console served by ``mrc serve`` (see :func:`whoami`)."""
    ssh_client: str
    """The SSH client address of the session, or "" when not over SSH."""
    host: str
    """The host name of the machine running the console."""
    pid: int
    """The process id of the console."""


def ssh_client_address(environ: Mapping[str, str] | None = None) -> str:
    """Return the client IP address of the SSH session, or "" outside SSH.

    Reads ``SSH_CLIENT`` ("ip port server_port"), falling back to
    ``SSH_CONNECTION`` ("ip port server_ip server_port").
    """
    env = os.environ if environ is None else environ
    for variable in ("SSH_CLIENT", "SSH_CONNECTION"):
        fields = env.get(variable, "").split()
        if fields:
            return fields[0]
    return ""


def current_user() -> str:
    """Return the OS user name, or ``uid <n>`` / ``unknown`` when it has no name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        pass
    try:
        return f"uid {os.getuid()}"
    except AttributeError:
        return "unknown"


#: The environment variable naming how the console is reached ("browser" from ``mrc serve``).
VIA_VARIABLE = "MRC_VIA"


def whoami(environ: Mapping[str, str] | None = None) -> Actor:
    """Return the :class:`Actor` of this process.

    When ``MRC_VIA`` is set (``mrc serve`` sets ``browser``), the user reads
    ``<user> via <MRC_VIA>``, so the journal tells browser changes apart.
    """
    env = os.environ if environ is None else environ
    via = env.get(VIA_VARIABLE, "").strip()
    return Actor(
        user=current_user() + (f" via {via}" if via else ""),
        ssh_client=ssh_client_address(environ),
        host=socket.gethostname(),
        pid=os.getpid(),
    )


def process_start_ticks(pid: int) -> str:
    """Return the start time of ``pid`` in clock ticks since boot (Linux), or "".

    Used with the pid to tell a live process from a later one that reused
    its pid; "" when the process does not exist or its entry cannot be read.
    """
    try:
        stat = procs.proc_stat(pid)
    except OSError:
        return ""
    return str(stat.start_ticks) if stat is not None else ""


def process_alive(pid: int, start_ticks: str = "") -> bool:
    """Return True when process ``pid`` exists on this host and is not a zombie.

    When ``start_ticks`` is given (see :func:`process_start_ticks`) and the
    running process started at another time, the pid was reused: False.
    A process that exists but whose ``/proc`` entry cannot be read counts as alive.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by somebody else
    try:
        stat = procs.proc_stat(pid)
    except OSError:
        return True
    if stat is None or not stat.live:
        return False
    return not (start_ticks and str(stat.start_ticks) != start_ticks)
