"""Run a model's test command at a commit and record the result.

A run checks the commit out into a temporary ``git worktree`` (the user's own
working tree is never touched) and runs the configured command there with
``/bin/sh -c`` in a new session, so that timeout and cancel can terminate the
whole process group (SIGTERM, then SIGKILL after a grace period).

The command gets two environment variables:

* ``MRC_JUNIT_XML``: where to write a JUnit XML report; it gives the pass /
  fail / error / skip counts and each failure's message.
* ``MRC_METRICS_FILE``: where the tests may write a JSON object of
  name -> number (e.g. ``{"accuracy": 0.93}``), recorded with the run so model
  quality is tracked per commit. Values that are not finite numbers are
  ignored with a warning line.

(and ``MRC_MODEL``, ``MRC_COMMIT``, ``PYTHONUNBUFFERED=1``). Of the console's
own environment it gets only what the runner's :class:`~core.procs.ChildEnv`
allows (``[console] child_env``); secrets named by ``*_env`` keys never.

JUnit rule: when the command is a single pytest invocation (it starts with
``pytest``, ``py.test`` or ``python -m pytest``, optionally after ``VAR=value``
assignments or a path, contains no shell operator such as ``;``, ``&&``,
``|`` or a redirection) and has no ``--junitxml`` option, the runner appends
``--junitxml="$MRC_JUNIT_XML"``. Any other command must write the report
itself (for pytest: pass ``--junitxml="$MRC_JUNIT_XML"``) or run without counts.

Status: ``passed`` (exit 0 and no failed test), ``failed`` (the report lists
failures or errors), ``error`` (the command could not run, or exited non-zero
without a report of failures), ``timeout``, ``cancelled``.

One run per model at a time: :meth:`TestRunner.submit` queues runs per model
in FIFO order; :meth:`RunHandle.events` (iterated from a worker thread) waits
for its turn, runs, and yields :data:`TestEvent` values. Every run is written
to the journal when submitted and updated when it starts and ends. Its output
goes to ``<output_dir>/<run id>.log``, bounded: the first lines up to most of
the budget, then a marker, then the last lines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

from core import paths, procs
from core.cancel import CancelToken
from core.domain import OutputLine, RunStatus, TestRun
from core.errors import MrcError
from core.git import Repository
from core.junit import InvalidReport, JUnitReport, parse_junit_file

#: Default bound of a run's output log on disk.
MAX_OUTPUT_BYTES = 5_000_000
#: Seconds between SIGTERM and SIGKILL when a run is stopped.
KILL_GRACE = 3.0
#: A process that exited but whose pipes stay open (a background child) is
#: given this long before its group is terminated.
LINGER = 2.0
#: Longest chunk read as one line (longer lines are split).
MAX_LINE_BYTES = 65536
MAX_METRICS_BYTES = 1_000_000

_OPERATORS = (";", "&", "|", "\n", "`", "$(", ">", "<")
_PYTEST = re.compile(
    r"""^\s*(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*   # VAR=value assignments
        (?:\S*/)?
        (?:pytest|py\.test|python[0-9.]*\s+(?:-(?!m\s)\S*\s+(?:[^-\s]\S*\s+)?)*-m\s+pytest)
        (?:\s|$)""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class RunQueued:
    """The run waits behind ``position`` earlier runs of the same model."""

    run: TestRun
    position: int


@dataclass(frozen=True, slots=True)
class RunStarted:
    """The command started (``run.status`` is RUNNING, ``run.output_path`` set)."""

    run: TestRun


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The run ended; ``run.status`` is final and ``run.message`` says why."""

    run: TestRun


TestEvent = RunQueued | RunStarted | OutputLine | RunFinished


class TestRunStore(Protocol):
    """Where test runs are recorded (implemented by :class:`core.journal.Journal`)."""

    def record_test_run(self, run: TestRun) -> int:
        """Insert ``run`` and return its new id."""
        ...

    def update_test_run(self, run: TestRun) -> None:
        """Store every field of ``run`` under ``run.id``."""
        ...

    def test_runs(
        self, model: str | None = None, commit: str | None = None, limit: int = 100
    ) -> list[TestRun]:
        """Return runs, newest first."""
        ...


def with_junit_report(command: str) -> str:
    """Return ``command`` with ``--junitxml="$MRC_JUNIT_XML"`` appended when the rule applies.

    See the module documentation for the rule; other commands are returned
    unchanged.
    """
    if "--junitxml" in command or "--junit-xml" in command:
        return command
    if any(op in command for op in _OPERATORS):
        return command
    if not _PYTEST.match(command):
        return command
    return command.rstrip() + ' --junitxml="$MRC_JUNIT_XML"'


def read_metrics(path: str | Path) -> tuple[dict[str, float], list[str]]:
    """Return (metrics, warnings) from the JSON metrics file at ``path``.

    A missing or empty file gives no metrics and no warning. Values that are
    not finite numbers (booleans included) are left out with one warning
    each; an unreadable, oversized or non-object file gives a warning.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return {}, []
    if size == 0:
        return {}, []
    if size > MAX_METRICS_BYTES:
        return {}, [f"metrics file ignored: {size} bytes is too large"]
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        return {}, [f"metrics file ignored: not valid JSON ({exc})"]
    if not isinstance(data, dict):
        return {}, ["metrics file ignored: expected a JSON object of name -> number"]
    metrics: dict[str, float] = {}
    warnings = []
    for name, value in data.items():
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and math.isfinite(value):
            metrics[str(name)] = float(value)
        else:
            warnings.append(f"metric {name!r} ignored: {json.dumps(value)[:80]} is not a number")
    return metrics, warnings


def _now() -> datetime:
    return datetime.now(UTC)


def _snapshot(run: TestRun) -> TestRun:
    return dataclasses.replace(run, metrics=dict(run.metrics), failures=list(run.failures))


# ----------------------------------------------------------------------- processes


def _pump(stream: IO[bytes], name: str, sink: queue.Queue[tuple[str, bytes | None]]) -> None:
    """Put each line of ``stream`` into ``sink`` as (name, bytes); (name, None) at the end."""
    try:
        while True:
            line = stream.readline(MAX_LINE_BYTES)
            if not line:
                break
            sink.put((name, line))
    except (OSError, ValueError):
        pass
    finally:
        sink.put((name, None))


class OutputLog:
    """A run's output on disk: the head up to most of ``limit`` bytes, a marker, the tail.

    Used by test runs and retrains. The head is written line by line (line
    buffered), so a process killed mid-run leaves what its command printed so
    far. Opening ``path`` (truncated) raises OSError; :meth:`write` and
    :meth:`close` raise only what writing the file raises.
    """

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self._file = open(path, "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
        self._head_left = max(limit - limit // 5, 0)
        self._tail_limit = limit // 5
        self._tail: deque[str] = deque()
        self._tail_bytes = 0
        self._dropped_lines = 0
        self._dropped_bytes = 0

    def write(self, text: str) -> None:
        """Keep ``text`` as one line: in the head while it has room, else in the bounded tail."""
        line = text + "\n"
        size = len(line.encode("utf-8", errors="replace"))
        if size <= self._head_left:
            self._head_left -= size
            self._file.write(line)
            return
        self._head_left = 0
        self._tail.append(line)
        self._tail_bytes += size
        while self._tail_bytes > self._tail_limit and self._tail:
            old = self._tail.popleft()
            old_size = len(old.encode("utf-8", errors="replace"))
            self._tail_bytes -= old_size
            self._dropped_lines += 1
            self._dropped_bytes += old_size

    def close(self) -> None:
        """Write the truncation marker (when lines were dropped) and the tail; close the file.

        Closing twice does nothing.
        """
        if self._file.closed:
            return
        if self._dropped_lines:
            self._file.write(
                f"[... output truncated: {self._dropped_lines} lines "
                f"({self._dropped_bytes} bytes) not kept ...]\n"
            )
        self._file.writelines(self._tail)
        self._file.close()


# ----------------------------------------------------------------------- queue


class RunHandle:
    """A submitted run: its :class:`TestRun` record, its place in the queue, its events.

    ``run`` is updated in place by the runner; events carry snapshots.
    """

    def __init__(
        self,
        runner: TestRunner,
        run: TestRun,
        repository: Repository | None,
        command: str,
        timeout: float | None,
        token: CancelToken,
    ) -> None:
        self.run = run
        self.command = command
        self.timeout = timeout
        self.cancel_token = token
        self._runner = runner
        self._repository = repository
        self._consumed = False
        self._pgid: int | None = None
        self._last_error = ""

    @property
    def position(self) -> int | None:
        """0 when running or next to run, n when n runs are ahead, None once finished."""
        return self._runner._position(self)

    def cancel(self) -> None:
        """Ask the run to stop: a queued run ends at once, a running one is killed."""
        self.cancel_token.cancel()

    def events(self) -> Iterator[TestEvent]:
        """Wait for this run's turn, run it, and yield its events; may be iterated once.

        Yields :class:`RunQueued` while waiting (on each change of position),
        then :class:`RunStarted`, one :class:`~core.domain.OutputLine` per
        output line, and always a final :class:`RunFinished`. Closing the
        iterator early kills the run and records it as cancelled. Raises
        RuntimeError when iterated a second time.
        """
        if self._consumed:
            raise RuntimeError(f"events of test run {self.run.id} were already consumed")
        self._consumed = True
        return self._runner._events(self)


class TestRunner:
    """Runs test commands, one at a time per model, recording each in ``journal``.

    ``output_dir`` receives ``<run id>.log`` (and ``<run id>.junit.xml``).
    ``journal`` None keeps runs in memory only (ids count from 1).
    Worktrees are created under ``worktree_dir`` (default: the temp dir).
    ``child_env`` says what the test commands get of the console's environment
    (default: :data:`core.procs.DEFAULT_CHILD_ENV`).
    """

    __test__ = False

    def __init__(
        self,
        journal: TestRunStore | None,
        output_dir: str | os.PathLike[str],
        *,
        max_output_bytes: int = MAX_OUTPUT_BYTES,
        kill_grace: float = KILL_GRACE,
        worktree_dir: str | os.PathLike[str] | None = None,
        child_env: procs.ChildEnv | None = None,
    ) -> None:
        self.journal = journal
        self.child_env = child_env if child_env is not None else procs.ChildEnv()
        self.output_dir = Path(output_dir)
        paths.ensure_dir(self.output_dir)
        self.max_output_bytes = max_output_bytes
        self.kill_grace = kill_grace
        self.worktree_dir = worktree_dir
        self._cond = threading.Condition()
        self._queues: dict[str, list[RunHandle]] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------ public API

    def submit(
        self,
        model: str,
        repo_path: str | os.PathLike[str],
        commit: str,
        command: str,
        timeout: float | None = None,
        cancel: CancelToken | None = None,
    ) -> RunHandle:
        """Queue a run of ``command`` at ``commit`` of the repository at ``repo_path``.

        Returns at once with a :class:`RunHandle` whose run is recorded as
        QUEUED. A commit (or repository) that cannot be found gives a handle
        whose run is already recorded as ERROR with the reason, e.g.
        ``commit 'abc123' not found in /path``. ``timeout`` is in seconds
        (None: no limit). The caller must iterate :meth:`RunHandle.events`
        (or cancel the handle): a run does not start by itself, and later runs
        of the same model wait for it. Raises only when the journal cannot be
        written.
        """
        token = cancel or CancelToken()
        run = TestRun(id=None, model=model, commit=commit, status=RunStatus.QUEUED)
        repository = None
        try:
            repository = Repository(repo_path)
            run.commit = repository.resolve(commit)
        except MrcError as exc:
            run.status = RunStatus.ERROR
            run.message = str(exc)
            run.finished_at = _now()
        run.id = self._record(run)
        handle = RunHandle(self, run, repository, command, timeout, token)
        if run.status.finished:
            return handle
        with self._cond:
            self._queues.setdefault(model, []).append(handle)
        token.on_cancel(lambda: self._on_cancel(handle))
        return handle

    def run(
        self,
        model: str,
        repo_path: str | os.PathLike[str],
        commit: str,
        command: str,
        timeout: float | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[TestEvent]:
        """Submit a run and return its events (see :meth:`RunHandle.events`)."""
        return self.submit(model, repo_path, commit, command, timeout, cancel).events()

    def queue(self, model: str | None = None) -> list[TestRun]:
        """Return snapshots of unfinished runs (of ``model``, or all), running first, FIFO."""
        with self._cond:
            handles = [
                h
                for name, items in self._queues.items()
                if model is None or name == model
                for h in items
            ]
            return [_snapshot(h.run) for h in handles]

    def cancel(self, run_id: int) -> bool:
        """Cancel the unfinished run ``run_id``; return False when there is none."""
        with self._cond:
            found = [h for items in self._queues.values() for h in items if h.run.id == run_id]
        for handle in found:
            handle.cancel()
        return bool(found)

    # ------------------------------------------------------------ internals

    def _record(self, run: TestRun) -> int:
        if self.journal is None:
            return next(self._ids)
        return self.journal.record_test_run(run)

    def _update(self, run: TestRun) -> str | None:
        """Store ``run``; return a warning instead of raising when the journal fails."""
        if self.journal is None:
            return None
        try:
            self.journal.update_test_run(run)
        except MrcError as exc:
            return f"could not record test run {run.id} in the journal: {exc}"
        return None

    def _position(self, handle: RunHandle) -> int | None:
        with self._cond:
            items = self._queues.get(handle.run.model, [])
            return items.index(handle) if handle in items else None

    def _remove(self, handle: RunHandle) -> None:
        with self._cond:
            items = self._queues.get(handle.run.model, [])
            if handle in items:
                items.remove(handle)
            if not items:
                self._queues.pop(handle.run.model, None)
            self._cond.notify_all()

    def _on_cancel(self, handle: RunHandle) -> None:
        with self._cond:
            waiting = handle.run.status == RunStatus.QUEUED and not handle.run.status.finished
            if waiting:
                handle.run.status = RunStatus.CANCELLED
                handle.run.message = "cancelled while queued"
                handle.run.finished_at = _now()
            pgid = handle._pgid
        if waiting:
            self._remove(handle)
            self._update(handle.run)
        elif pgid is not None:
            # Stop at once; the run's own loop escalates to SIGKILL if needed.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)

    def _events(self, handle: RunHandle) -> Iterator[TestEvent]:
        run = handle.run
        try:
            last = None
            while True:
                with self._cond:
                    if run.status.finished:
                        break
                    position = self._position(handle)
                    if position == 0:
                        run.status = RunStatus.RUNNING
                        break
                    if position == last:
                        self._cond.wait(0.5)
                        continue
                    last = position
                if position is not None:
                    yield RunQueued(_snapshot(run), position)
            if run.status.finished:
                yield RunFinished(_snapshot(run))
                return
            yield from self._execute(handle)
        finally:
            self._remove(handle)

    def _execute(self, handle: RunHandle) -> Iterator[TestEvent]:
        run = handle.run
        assert run.id is not None and handle._repository is not None
        log_path = self.output_dir / f"{run.id}.log"
        run.started_at = _now()
        run.output_path = str(log_path)
        warning = self._update(run)
        output = OutputLog(log_path, self.max_output_bytes)
        finished = False
        try:
            yield RunStarted(_snapshot(run))
            if warning:
                output.write(f"mrc: warning: {warning}")
                yield OutputLine(f"mrc: warning: {warning}", "stderr")
            for event in self._run_in_worktree(handle, output):
                if isinstance(event, OutputLine):
                    output.write(event.text)
                yield event
            finished = True
        finally:
            if not finished:  # the consumer stopped iterating, or an unexpected error
                if handle._pgid is not None:
                    procs.kill_group(handle._pgid, None, self.kill_grace)
                if not run.status.finished:
                    run.status = RunStatus.CANCELLED
                    run.message = "stopped: nobody was reading the run's events"
                    run.finished_at = _now()
            output.close()
            warning = self._update(run)
        if warning:
            yield OutputLine(f"mrc: warning: {warning}", "stderr")
        yield RunFinished(_snapshot(run))

    def _finish(self, run: TestRun, status: RunStatus, message: str) -> None:
        run.status = status
        run.message = message
        run.finished_at = _now()

    def _run_in_worktree(self, handle: RunHandle, output: OutputLog) -> Iterator[OutputLine]:
        """Run the command; yield its lines and the runner's own warnings; set the outcome."""
        run = handle.run
        token = handle.cancel_token
        repository = handle._repository
        assert repository is not None and run.id is not None
        if token.cancelled:
            self._finish(run, RunStatus.CANCELLED, "cancelled before start")
            return
        with tempfile.TemporaryDirectory(prefix="mrc-run-") as scratch:
            junit = Path(scratch) / "junit.xml"
            metrics_file = Path(scratch) / "metrics.json"
            with contextlib.ExitStack() as stack:
                try:
                    tree = stack.enter_context(
                        repository.worktree(run.commit, parent=self.worktree_dir)
                    )
                except MrcError as exc:
                    self._finish(run, RunStatus.ERROR, f"cannot check out {run.commit[:8]}: {exc}")
                    return
                yield from self._run_process(handle, tree, junit, metrics_file)
            for text in self._collect(handle, junit, metrics_file):
                yield OutputLine(f"mrc: warning: {text}", "stderr")

    def _run_process(
        self, handle: RunHandle, tree: Path, junit: Path, metrics_file: Path
    ) -> Iterator[OutputLine]:
        run = handle.run
        token = handle.cancel_token
        env = self.child_env.build(
            {
                "MRC_JUNIT_XML": str(junit),
                "MRC_METRICS_FILE": str(metrics_file),
                "MRC_MODEL": run.model,
                "MRC_COMMIT": run.commit,
                "PYTHONUNBUFFERED": "1",
            }
        )
        command = with_junit_report(handle.command)
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", command],
                cwd=tree,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            self._finish(run, RunStatus.ERROR, f"cannot start the test command: {exc}")
            return
        with self._cond:
            handle._pgid = proc.pid
        assert proc.stdout is not None and proc.stderr is not None
        sink: queue.Queue[tuple[str, bytes | None]] = queue.Queue()
        pumps = []
        for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            pump = threading.Thread(target=_pump, args=(stream, name, sink), daemon=True)
            pump.start()
            pumps.append((pump, stream))
        deadline = time.monotonic() + handle.timeout if handle.timeout else None
        stopped: RunStatus | None = None
        exited_at: float | None = None
        killed_leftovers = False
        open_streams = 2
        try:
            while True:
                now = time.monotonic()
                if stopped is None and token.cancelled:
                    stopped = RunStatus.CANCELLED
                    procs.kill_group(proc.pid, proc, self.kill_grace)
                elif stopped is None and deadline is not None and now >= deadline:
                    stopped = RunStatus.TIMEOUT
                    procs.kill_group(proc.pid, proc, self.kill_grace)
                if proc.poll() is not None:
                    if exited_at is None:
                        exited_at = now
                    if not open_streams:
                        break
                    if now - exited_at > LINGER:
                        # The shell is gone but a background child keeps the pipes open.
                        if killed_leftovers:
                            break
                        procs.kill_group(proc.pid, proc, min(self.kill_grace, 1.0))
                        killed_leftovers = True
                        exited_at = now
                if not open_streams:
                    token.wait(0.1)  # pipes closed, process still running
                    continue
                try:
                    name, data = sink.get(timeout=0.1)
                except queue.Empty:
                    continue
                if data is None:
                    open_streams -= 1
                    continue
                text = data.decode("utf-8", errors="replace").rstrip("\r\n")
                if name == "stderr" and text.strip():
                    handle._last_error = text.strip()
                yield OutputLine(text, name)
        finally:
            if proc.poll() is None:  # the consumer went away, or an unexpected error
                procs.kill_group(proc.pid, proc, self.kill_grace)
            code = proc.wait()
            if procs.live_group_members(proc.pid):
                procs.kill_group(proc.pid, proc, min(self.kill_grace, 1.0))
            with self._cond:
                handle._pgid = None
            for pump, stream in pumps:
                pump.join(timeout=0.5)
                if not pump.is_alive():  # closing under a blocked reader would hang
                    stream.close()
        run.exit_code = code
        if stopped == RunStatus.CANCELLED:
            self._finish(run, stopped, "cancelled by the user")
        elif stopped == RunStatus.TIMEOUT:
            self._finish(run, stopped, f"timed out after {handle.timeout:g} s")

    def _collect(self, handle: RunHandle, junit: Path, metrics_file: Path) -> list[str]:
        """Read the report and metrics into ``handle.run``, decide the status; return warnings."""
        run = handle.run
        warnings: list[str] = []
        report: JUnitReport | None = None
        if junit.exists() and junit.stat().st_size > 0:
            try:
                report = parse_junit_file(junit)
                shutil.copyfile(junit, self.output_dir / f"{run.id}.junit.xml")
            except (InvalidReport, OSError) as exc:
                warnings.append(f"JUnit report ignored: {exc}")
        if report is not None:
            run.passed, run.failed = report.passed, report.failed
            run.errors, run.skipped = report.errors, report.skipped
            run.failures = list(report.failures)
        run.metrics, metric_warnings = read_metrics(metrics_file)
        warnings.extend(metric_warnings)
        if run.status.finished:  # timeout or cancel already decided
            return warnings
        code = run.exit_code
        tail = f": {handle._last_error}" if handle._last_error else ""
        if report is not None and (report.failed or report.errors):
            parts = [f"{report.failed} failed"] if report.failed else []
            parts += [f"{report.errors} errors"] if report.errors else []
            self._finish(run, RunStatus.FAILED, ", ".join(parts) + f", {report.passed} passed")
        elif code == 0:
            counted = f"{report.passed} passed" if report is not None else "exit code 0"
            self._finish(run, RunStatus.PASSED, counted)
        elif code is not None and code < 0:
            self._finish(run, RunStatus.ERROR, f"command killed by signal {-code}{tail}")
        elif code in (126, 127):
            self._finish(run, RunStatus.ERROR, f"command could not run (exit {code}){tail}")
        elif report is not None:
            self._finish(
                run, RunStatus.ERROR, f"command exited with {code} although no test failed{tail}"
            )
        else:
            self._finish(
                run, RunStatus.ERROR, f"command exited with {code} without a JUnit report{tail}"
            )
        return warnings
