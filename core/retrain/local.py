"""The ``local`` retrain executor: the command runs on this machine, in the job's worktree.

The command runs as ``sh -c COMMAND`` behind a guard of :mod:`core.procs`
(:func:`~core.procs.spawn_guarded`): it is the leader of its own process
group, so a timeout or a cancel stops the command and everything it started
(:func:`~core.procs.kill_group`), and it dies with the console however the
console ends. Its environment is explicit: what ``[console] child_env``
allows, the job's ``MRC_RETRAIN_*`` variables and ``PYTHONUNBUFFERED=1``;
never the console's secrets. Standard output and error go, interleaved as
the command writes them, to a scratch log that is followed line by line.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from core import durations, procs
from core.cancel import CancelToken
from core.domain import Progress
from core.errors import Cancelled, OperationFailed
from core.retrain.base import RetrainJob

#: Longest chunk yielded as one line (longer lines are split).
MAX_LINE_BYTES = 65536
#: Lines of output quoted in the error of a failed command.
TAIL_LINES = 10
#: Seconds between two reads of the log while the command is quiet.
POLL = 0.1


class LocalExecutor:
    """Runs a :class:`~core.retrain.base.RetrainJob` as a local process group.

    ``child_env`` says what the command gets of the console's environment
    (default: :data:`core.procs.DEFAULT_CHILD_ENV`); ``grace`` is the time
    between SIGTERM and SIGKILL when it is stopped.
    """

    kind: ClassVar[str] = "local"
    publishes_branch: ClassVar[bool] = False

    def __init__(self, child_env: procs.ChildEnv | None = None, *, grace: float = 3.0) -> None:
        self.child_env = child_env if child_env is not None else procs.ChildEnv()
        self.grace = grace

    def environment(self, job: RetrainJob) -> dict[str, str]:
        """Return the command's whole environment (policy, ``MRC_RETRAIN_*``); never raises."""
        return self.child_env.build({**job.environment(), "PYTHONUNBUFFERED": "1"})

    def run(self, job: RetrainJob, cancel: CancelToken) -> Iterator[Progress]:
        """Run ``job.command`` in ``job.workdir``; yield each line it prints.

        Yields ``Progress(step="executor")`` once started (with the process
        group id) and ``Progress(step="output", message=line)`` per line.
        Returns when the command exited 0. Raises OperationFailed when it
        cannot start, exits non-zero (the exit code and its last lines) or
        runs past ``job.timeout`` ("timed out after ..."), and Cancelled once
        ``cancel`` is set; in both of the last cases its process group is
        stopped first. Closing the iterator early stops the group too.
        """
        cancel.raise_if_cancelled()
        with tempfile.TemporaryDirectory(prefix="mrc-retrain-log-") as scratch:
            log = Path(scratch) / "output.log"
            log.touch()
            try:
                proc = procs.spawn_guarded(
                    ["/bin/sh", "-c", job.command],
                    tag=f"mrc-retrain:{job.model}",
                    cwd=job.workdir,
                    env=self.environment(job),
                    log_path=log,
                )
            except OSError as exc:
                raise OperationFailed(f"cannot start the retrain command: {exc}") from exc
            yield Progress(
                step="executor", message=f"started `{job.command}` (process group {proc.pid})"
            )
            yield from self._follow(job, proc, log, cancel)

    def _follow(
        self, job: RetrainJob, proc: subprocess.Popen[bytes], log: Path, cancel: CancelToken
    ) -> Iterator[Progress]:
        """Yield the lines of ``log`` while ``proc`` runs; stop it on cancel or timeout."""
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        deadline = time.monotonic() + job.timeout if job.timeout > 0 else None
        stopped = ""
        pending = b""
        try:
            with open(log, "rb") as handle:
                while True:
                    exited = proc.poll() is not None
                    chunk = handle.read(MAX_LINE_BYTES)
                    if chunk:
                        pending += chunk
                        *lines, pending = _split(pending)
                        for line in lines:
                            text = line.decode("utf-8", errors="replace").rstrip("\r")
                            tail.append(text)
                            yield Progress(step="output", message=text)
                        continue
                    if exited:
                        break
                    if cancel.cancelled:
                        stopped = "cancelled"
                    elif deadline is not None and time.monotonic() >= deadline:
                        stopped = "timeout"
                    if stopped:
                        procs.kill_group(proc.pid, proc, self.grace)
                        continue  # read what it wrote until it died, then leave
                    cancel.wait(POLL)
                if pending:
                    text = pending.decode("utf-8", errors="replace").rstrip("\r")
                    tail.append(text)
                    yield Progress(step="output", message=text)
        finally:
            if proc.poll() is None or procs.live_group_members(proc.pid):
                procs.kill_group(proc.pid, proc, self.grace)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.grace + procs.KILL_WAIT)
        if stopped == "cancelled":
            raise Cancelled("retrain cancelled: the command and its processes were stopped")
        if stopped == "timeout":
            raise OperationFailed(
                f"the retrain command timed out after {durations.format(job.timeout)} "
                f"and was stopped{_last_lines(tail)}"
            )
        code = proc.returncode
        if code != 0:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            raise OperationFailed(f"the retrain command {how}{_last_lines(tail)}")


def _split(data: bytes) -> list[bytes]:
    """Return the complete lines of ``data`` then the unfinished rest (lines cut at the bound)."""
    parts = data.split(b"\n")
    rest = parts.pop()
    out: list[bytes] = []
    for part in parts:
        out.extend(
            part[i : i + MAX_LINE_BYTES] for i in range(0, max(len(part), 1), MAX_LINE_BYTES)
        )
    while len(rest) > MAX_LINE_BYTES:
        out.append(rest[:MAX_LINE_BYTES])
        rest = rest[MAX_LINE_BYTES:]
    return [*out, rest]


def _last_lines(tail: deque[str]) -> str:
    """Return ``; last output:`` and the lines of ``tail``, or "" when there are none."""
    lines = [line for line in tail if line.strip()]
    if not lines:
        return " (it printed nothing)"
    return "; last output:" + "".join(f"\n  {line}" for line in lines)
