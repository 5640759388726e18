"""The one process-group killer and the one /proc/<pid>/stat reader, on real processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core import audit, procs

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition()`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def group() -> Iterator[subprocess.Popen[bytes]]:
    """A shell leading its own process group, with a background child, both ignoring SIGTERM.

    The shell prints the child's pid once both ignore SIGTERM.
    """
    proc = subprocess.Popen(
        ["/bin/sh", "-c", 'trap "" TERM; sleep 60 & echo $!; wait'],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None
    proc.child = int(proc.stdout.readline())  # type: ignore[attr-defined]
    yield proc
    procs.kill_group(proc.pid, proc, grace=0.0)
    proc.stdout.close()


def test_proc_stat_of_this_process() -> None:
    stat = procs.proc_stat(os.getpid())
    assert stat is not None and stat.live
    assert stat.pgid == os.getpgrp()
    assert stat.start_ticks > 0
    assert audit.process_start_ticks(os.getpid()) == str(stat.start_ticks)


def test_proc_stat_reads_a_command_name_with_parentheses_and_spaces(tmp_path: Path) -> None:
    odd = tmp_path / "x) R 1 2 3 (y"
    odd.symlink_to(shutil.which("sleep") or "/bin/sleep")
    child = subprocess.Popen([str(odd), "60"], start_new_session=True)
    try:
        wait_for(lambda: b"x) R 1" in Path(f"/proc/{child.pid}/stat").read_bytes(), "the exec")
        stat = procs.proc_stat(child.pid)
        assert stat is not None
        assert stat.pgid == child.pid and stat.live
    finally:
        procs.kill_group(child.pid, child, grace=0.0)


def test_proc_stat_of_a_zombie_and_of_a_gone_process() -> None:
    child = subprocess.Popen(["true"])
    wait_for(lambda: (s := procs.proc_stat(child.pid)) is not None and s.state == "Z", "zombie")
    stat = procs.proc_stat(child.pid)
    assert stat is not None and not stat.live
    assert not audit.process_alive(child.pid)
    child.wait()
    assert procs.proc_stat(child.pid) is None
    assert audit.process_start_ticks(child.pid) == ""
    assert not audit.process_alive(child.pid)


def test_kill_group_kills_members_that_ignore_sigterm(group: subprocess.Popen[bytes]) -> None:
    assert sorted(procs.live_group_members(group.pid)) == sorted([group.pid, group.child])
    assert procs.kill_group(group.pid, group, grace=0.1)
    assert procs.live_group_members(group.pid) == []
    assert group.returncode is not None  # the leader was reaped on the way


def test_kill_group_without_the_popen_does_not_count_the_unreaped_leader(
    group: subprocess.Popen[bytes],
) -> None:
    # The leader is our child but nobody polls it: it stays a zombie, which holds nothing.
    assert procs.kill_group(group.pid, None, grace=0.1)
    assert procs.live_group_members(group.pid) == []
    stat = procs.proc_stat(group.pid)
    assert stat is not None and stat.state == "Z"


def test_kill_group_of_a_gone_group_is_true(group: subprocess.Popen[bytes]) -> None:
    assert procs.kill_group(group.pid, group, grace=0.1)
    assert procs.kill_group(group.pid, group, grace=0.1)


def test_kill_group_kills_what_the_leader_left_behind(group: subprocess.Popen[bytes]) -> None:
    os.kill(group.pid, 9)
    group.wait()
    assert procs.live_group_members(group.pid) == [group.child]
    assert procs.kill_group(group.pid, None, grace=0.1)
    assert procs.live_group_members(group.pid) == []
