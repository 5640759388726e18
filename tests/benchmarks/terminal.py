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
from collections.abc import Sequence


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
