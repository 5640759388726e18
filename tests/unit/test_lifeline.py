"""The guard script: exit codes, the lifeline, stop signals and what it loads, on real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import procs

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


@pytest.fixture
def lifeline() -> Iterator[tuple[int, int]]:
    """A lifeline pipe of the test's own: ``(read end, write end)``; closed afterwards."""
    read, write = os.pipe()
    yield read, write
    for fd in (read, write):
        try:
            os.close(fd)
        except OSError:
            pass


def guard(
    read_fd: int, *command: str, python_flags: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """Start the guard script as :func:`core.procs.spawn_guarded` does, with this lifeline."""
    argv = [sys.executable, *python_flags, "-I", "-S", procs.guard_script()]
    argv += ["--fd", str(read_fd), "--tag", "test", "--", *command]
    return subprocess.Popen(
        argv,
        pass_fds=(read_fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def gone(pid: int) -> bool:
    """True when ``pid`` no longer exists (not even as a zombie)."""
    return procs.proc_stat(pid) is None


@pytest.mark.parametrize(
    ("command", "code"),
    [(["true"], 0), (["sh", "-c", "exit 3"], 3), (["sh", "-c", "kill -9 $$"], 128 + 9)],
    ids=["success", "failure", "killed"],
)
def test_the_guard_exits_with_the_commands_code(
    lifeline: tuple[int, int], command: list[str], code: int
) -> None:
    proc = guard(lifeline[0], *command)
    assert proc.wait(10) == code


def test_a_command_that_cannot_start_is_127_with_the_reason(lifeline: tuple[int, int]) -> None:
    proc = guard(lifeline[0], "no-such-program-here")
    assert proc.wait(10) == 127
    assert proc.stderr is not None
    assert b"cannot start no-such-program-here" in proc.stderr.read()


def test_bad_arguments_are_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-I", "-S", procs.guard_script(), "--tag", "x", "--", "true"],
        capture_output=True,
        timeout=10,
    )
    assert proc.returncode == 2
    assert b"usage:" in proc.stderr


def test_a_broken_lifeline_stops_the_command_and_what_it_left_behind(
    lifeline: tuple[int, int],
) -> None:
    read, write = lifeline
    # The shell starts a background sleep and prints its pid; that sleep outlives nobody.
    proc = guard(read, "sh", "-c", "sleep 60 & echo $!; wait")
    assert proc.stdout is not None
    orphan = int(proc.stdout.readline())
    assert not gone(orphan)
    os.close(write)  # as when the console dies
    assert proc.wait(10) == 128 + signal.SIGTERM
    assert gone(orphan)  # terminated and reaped by the guard, not left a zombie


def test_sigterm_to_the_guard_stops_the_command(lifeline: tuple[int, int]) -> None:
    proc = guard(lifeline[0], "sh", "-c", "echo started; exec sleep 60")
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(10) == 128 + signal.SIGTERM


def test_the_command_does_not_hold_the_lifeline(lifeline: tuple[int, int]) -> None:
    read, _ = lifeline
    proc = guard(read, "sh", "-c", "ls /proc/$$/fd")
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert str(read) not in out.decode().split()


def test_the_guard_loads_only_what_the_interpreter_has_built_in(
    lifeline: tuple[int, int],
) -> None:
    """It starts before every server: nothing like subprocess, threading or pathlib."""
    proc = guard(lifeline[0], "true", python_flags=("-X", "importtime"))
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    loaded = {line.rsplit("|", 1)[-1].strip() for line in err.decode().splitlines()}
    assert "signal" in loaded  # the report is there
    assert not loaded & {"subprocess", "threading", "pathlib", "typing", "core.procs"}
