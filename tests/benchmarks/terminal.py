"""Run a program in a pseudo-terminal and time until a text appears on it."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def cached_bytecode_env(pycache: Path, **extra: str) -> dict[str, str]:
    """Return this process's environment for a program measured as an installed one runs.

    Its modules' bytecode is cached under ``pycache`` (``PYTHONPYCACHEPREFIX``,
    so the working tree is not written to), also when this environment sets
    ``PYTHONDONTWRITEBYTECODE``, which would make every run compile every
    module again; ``extra`` variables are added. Run the program once untimed
    to fill the cache.
    """
    env: Mapping[str, str] = {**os.environ, "PYTHONPYCACHEPREFIX": str(pycache), **extra}
    return {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}


def time_to_text(
    argv: Sequence[str],
    marker: bytes,
    *,
    size: tuple[int, int] = (120, 40),
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 60.0,
) -> tuple[float, int]:
    """Start ``argv`` on a new pty of ``size`` (columns, rows) and wait for ``marker``.

    Returns (seconds from spawn until ``marker`` was first written, bytes the
    program wrote until then). Raises TimeoutError when it never appears. The
    program is killed afterwards.
    """
    master, slave = pty.openpty()
    cols, rows = size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    environment = dict(os.environ if env is None else env)
    environment.setdefault("TERM", "xterm-256color")
    environment.pop("TEXTUAL", None)
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=environment,
        cwd=cwd,
        start_new_session=True,
        close_fds=True,
    )
    os.close(slave)
    seen = b""
    try:
        while True:
            remaining = timeout - (time.perf_counter() - start)
            if remaining <= 0:
                raise TimeoutError(f"{marker!r} did not appear within {timeout}s: {seen[-400:]!r}")
            ready, _, _ = select.select([master], [], [], min(remaining, 0.5))
            if not ready:
                if proc.poll() is not None:
                    raise RuntimeError(f"{argv[0]} exited early: {seen[-800:]!r}")
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise RuntimeError(f"{argv[0]} closed the terminal: {seen[-800:]!r}")
            seen += chunk
            if marker in seen:
                return time.perf_counter() - start, len(seen)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        os.close(master)


class PtySession:
    """A program running on a pty that a benchmark can type into and measure."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        size: tuple[int, int] = (120, 40),
        env: dict[str, str] | None = None,
    ) -> None:
        self.master, slave = pty.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        environment = dict(os.environ if env is None else env)
        environment.setdefault("TERM", "xterm-256color")
        self.proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=environment,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self.output = b""

    def read_for(self, seconds: float) -> int:
        """Read (and keep the tail of) everything written for ``seconds``; return the byte count."""
        deadline = time.perf_counter() + seconds
        count = 0
        while (remaining := deadline - time.perf_counter()) > 0:
            ready, _, _ = select.select([self.master], [], [], min(remaining, 0.2))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    break
                count += len(chunk)
                self.output = (self.output + chunk)[-200_000:]
        return count

    def wait_for(self, marker: bytes, timeout: float = 60.0) -> None:
        """Read until ``marker`` appears; raise TimeoutError after ``timeout``."""
        deadline = time.perf_counter() + timeout
        while marker not in self.output:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{marker!r} did not appear: {self.output[-400:]!r}")
            self.read_for(0.2)

    def type(self, keys: str) -> None:
        """Send ``keys`` as if typed."""
        os.write(self.master, keys.encode())

    def cpu_seconds(self) -> float:
        """User + system CPU time the program (all its threads) has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def close(self) -> None:
        """Kill the program's whole session and release the pty."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        os.close(self.master)
