"""Benchmark: ``mrc demo`` start to the first frame listing commits, and to the first drift score.

Each round runs the real ``mrc demo --dir <fresh dir>`` in a pseudo-terminal at
120x40: the clock starts at spawn (which includes building the sandbox, its
git history, and starting the model server and traffic) and stops when the
first commit subject reaches the terminal; then ``5`` opens the Drift screen
and the clock stops again when a drift score (not "not enough data") is drawn.
A bare Textual app's time to its first frame, measured in the same run, is the
baseline. Both start as an installed program starts the second time: with their
modules' bytecode cached (:func:`~tests.benchmarks.terminal.cached_bytecode_env`),
after one unmeasured round. Prints medians and records the drift time against its goal
(:data:`DRIFT_GOAL`) for the summary table; asserts nothing.
"""

from __future__ import annotations

import os
import re
import select
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.summary import record
from tests.benchmarks.terminal import PtySession, cached_bytecode_env, time_to_text

ROUNDS = 3
BARE_ROUNDS = 5
SIZE = (120, 40)
#: Goal for spawn -> first drift score, in seconds.
DRIFT_GOAL = 3.0
COMMITS_MARKER = re.compile(rb"Initial churn")
DRIFT_MARKER = re.compile(rb"drift now: (?:\x1b\[[0-9;]*m)*[0-9]+\.[0-9]")

BARE_APP = """
from textual.app import App
from textual.widgets import Label

class Bare(App):
    def compose(self):
        yield Label("bare-app-ready")

Bare().run()
"""


def _wait(session: PtySession, marker: re.Pattern[bytes], timeout: float) -> float:
    """Read the pty until ``marker`` matches its output; return the perf_counter time then.

    Raises TimeoutError (with the output's tail) after ``timeout`` seconds.
    """
    deadline = time.perf_counter() + timeout
    while not marker.search(session.output):
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError(f"{marker.pattern!r} did not appear: {session.output[-400:]!r}")
        ready, _, _ = select.select([session.master], [], [], min(remaining, 0.05))
        if ready:
            try:
                chunk = os.read(session.master, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise RuntimeError(f"mrc closed the terminal: {session.output[-800:]!r}")
            session.output = (session.output + chunk)[-400_000:]
    return time.perf_counter()


def _wait_exit(session: PtySession, timeout: float) -> None:
    """Keep reading the pty until the program exits (a full pty would block its last frames).

    Raises TimeoutError when it is still running after ``timeout`` seconds.
    """
    deadline = time.perf_counter() + timeout
    while session.proc.poll() is None:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"mrc did not exit after q: {session.output[-400:]!r}")
        session.read_for(0.1)


def demo_round(root: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``mrc demo`` once in ``root`` with ``env``; return seconds to commits and to the
    first drift score."""
    mrc = str(Path(sys.executable).with_name("mrc"))
    start = time.perf_counter()
    session = PtySession([mrc, "demo", "--dir", str(root / "demo")], size=SIZE, env=env)
    try:
        commits = _wait(session, COMMITS_MARKER, 120) - start
        session.type("5")
        drift = _wait(session, DRIFT_MARKER, 120) - start
        session.type("q")
        _wait_exit(session, 15)
    finally:
        session.close()
    return commits, drift


def main() -> None:
    """Run the rounds and print the medians next to the bare Textual baseline."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = cached_bytecode_env(root / "pycache")
        for name in ("MRC_STATE_DIR", "COLORTERM"):
            env.pop(name, None)
        bare = root / "bare.py"
        bare.write_text(BARE_APP)
        bare_argv = [sys.executable, str(bare)]
        time_to_text(bare_argv, b"bare-app-ready", size=SIZE, env=env)  # caches bytecode
        bare_times = [
            time_to_text(bare_argv, b"bare-app-ready", size=SIZE, env=env)[0]
            for _ in range(BARE_ROUNDS)
        ]
        demo_round(root / "warm-up", env)  # caches bytecode
        commits_times, drift_times = [], []
        for n in range(ROUNDS):
            commits, drift = demo_round(root / f"round-{n}", env)
            commits_times.append(commits)
            drift_times.append(drift)
    bare_median = statistics.median(bare_times)
    commits_median = statistics.median(commits_times)
    drift_median = statistics.median(drift_times)
    print(f"demo: process start -> on screen, pty at {SIZE[0]}x{SIZE[1]}, fresh sandbox each run")
    print(f"  bare Textual app, first frame : median {bare_median * 1000:7.0f} ms ({BARE_ROUNDS})")
    print(
        f"  mrc demo, commits listed       : median {commits_median * 1000:7.0f} ms ({ROUNDS})"
        f"  = {commits_median / bare_median:.1f}x bare"
    )
    print(
        f"  mrc demo, first drift score    : median {drift_median * 1000:7.0f} ms ({ROUNDS})"
        f"  = {drift_median / bare_median:.1f}x bare"
    )
    print("  per run (commits / drift, s): " + ", ".join(
        f"{c:.2f}/{d:.2f}" for c, d in zip(commits_times, drift_times, strict=True)
    ))  # fmt: skip
    record("demo: spawn -> first drift score", "3 s", drift_median, DRIFT_GOAL, 1)


if __name__ == "__main__":
    main()
