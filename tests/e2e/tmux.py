"""Drive a program inside a private tmux server: keys in, screen text out.

Each :class:`TmuxSession` starts its own tmux server (``tmux -L <socket>``,
no user configuration), so tests never touch a tmux the developer is using.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def tmux_available() -> bool:
    """Return True when a tmux binary is on PATH."""
    return shutil.which("tmux") is not None


class TmuxSession:
    """One detached tmux session of ``width`` x ``height`` running one command.

    The pane stays after the command exits (``remain-on-exit``), so its last
    screen and exit status can still be read.
    """

    def __init__(self, width: int = 80, height: int = 24, name: str = "mrc") -> None:
        self.socket = f"mrc-e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.width = width
        self.height = height
        self.name = name
        self.last_screen = ""

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", os.devnull, *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=20,
        )

    def start(self, argv: Sequence[str], env: Mapping[str, str | None], cwd: Path) -> None:
        """Run ``argv`` in the session with ``env`` applied (a None value unsets a variable).

        The command goes through ``env`` so the pane's TERM and COLORTERM are
        exactly what the test asks for, whatever tmux's defaults are.
        """
        words = ["env"]
        for key, value in env.items():
            words += ["-u", key] if value is None else []
        words += [f"{key}={value}" for key, value in env.items() if value is not None]
        command = shlex.join([*words, *argv])
        self._tmux(
            "new-session",
            "-d",
            "-s",
            self.name,
            "-x",
            str(self.width),
            "-y",
            str(self.height),
            "-c",
            str(cwd),
            command,
            ";",
            "set-option",
            "-t",
            self.name,
            "remain-on-exit",
            "on",
        )

    def send(self, *keys: str) -> None:
        """Press ``keys`` (tmux key names: ``"1"``, ``"Down"``, ``"Escape"``), one at a time."""
        for key in keys:
            self._tmux("send-keys", "-t", self.name, key)
            time.sleep(0.15)

    def type_text(self, text: str) -> None:
        """Type ``text`` literally (no tmux key-name lookup), as a person would."""
        self._tmux("send-keys", "-t", self.name, "-l", text)
        time.sleep(0.15)

    def capture(self, *, escapes: bool = False) -> str:
        """Return the visible screen (with SGR colour sequences when ``escapes``)."""
        args = ["capture-pane", "-p", "-t", self.name]
        if escapes:
            args.append("-e")
        text = self._tmux(*args).stdout
        if not escapes:
            self.last_screen = text
        return text

    def pane_dead(self) -> bool:
        """Return True when the command in the pane has exited."""
        out = self._tmux("display-message", "-p", "-t", self.name, "#{pane_dead}", check=False)
        return out.returncode != 0 or out.stdout.strip() == "1"

    def pane_pid(self) -> int:
        """Return the pid of the command running in the pane."""
        out = self._tmux("display-message", "-p", "-t", self.name, "#{pane_pid}")
        return int(out.stdout.strip())

    def wait_for(self, check: Callable[[str], T | None], what: str, timeout: float = 30.0) -> T:
        """Poll the screen until ``check(screen)`` returns a truthy value; return it.

        Raises AssertionError naming ``what`` and showing the last screen on timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            result = check(screen)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:g}s waiting for {what}; last screen:\n{screen}"
                )
            time.sleep(0.3)

    def wait_text(self, pattern: str, what: str = "", timeout: float = 30.0) -> re.Match[str]:
        """Wait until the regular expression ``pattern`` matches the screen; return the match."""
        regex = re.compile(pattern)
        return self.wait_for(regex.search, what or repr(pattern), timeout)

    def kill_session(self) -> None:
        """Close the session as a closed terminal would (the pane's process gets SIGHUP)."""
        self._tmux("kill-session", "-t", self.name, check=False)

    def close(self) -> None:
        """Stop this private tmux server (idempotent)."""
        self._tmux("kill-server", check=False)


def processes_mentioning(needle: str) -> dict[int, str]:
    """Return {pid: command line} of live processes tied to ``needle`` (a path).

    A process counts when its command line, working directory or environment
    contains ``needle``. tmux servers (whose titles repeat the command they
    were given) and this process are ignored.
    """
    found: dict[int, str] = {}
    raw = needle.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        base = Path("/proc") / entry
        try:
            cmdline = (base / "cmdline").read_bytes()
            if cmdline.startswith(b"tmux"):
                continue
            hit = raw in cmdline
            if not hit:
                try:
                    hit = os.readlink(base / "cwd").startswith(needle)
                except OSError:
                    pass
            if not hit:
                try:
                    hit = raw in (base / "environ").read_bytes()
                except OSError:
                    pass
            if hit and (base / "stat").read_text().split(") ")[-1][:1] != "Z":
                found[int(entry)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def wait_no_processes(needle: str, timeout: float = 15.0) -> dict[int, str]:
    """Wait until no process mentions ``needle``; return those still alive at the timeout."""
    deadline = time.monotonic() + timeout
    left = processes_mentioning(needle)
    while left and time.monotonic() < deadline:
        time.sleep(0.3)
        left = processes_mentioning(needle)
    return left
