"""Benchmark: ``mrc watch`` CPU seconds per model per minute, against the Drift screen's.

One demo sandbox (model server and traffic, run by this process) feeds both
programs in turn, for the same window and at the same one-second cadence:

* ``mrc watch --interval 1s`` (the exporter, scored once a second like the
  screen refreshes), measured from its first evaluation on;
* the console on the Drift screen at 120x40 in a pty (``mrc --config``),
  measured from one second after its first score, as in
  :mod:`tests.benchmarks.bench_drift_idle`.

Prints CPU seconds per model per minute of each and the ratio; records it
in the summary table (goal: the exporter costs at most what the screen
does). Set MRC_BENCH_SECONDS to measure a shorter window.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.summary import record
from tests.benchmarks.terminal import PtySession

SECONDS = float(os.environ.get("MRC_BENCH_SECONDS", "60"))
GOAL = 1.0
ROOT = Path(__file__).resolve().parents[2]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _watch_cpu(env: dict[str, str]) -> float:
    """Run ``mrc watch`` for the window after its first evaluation; return its CPU seconds."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "watch", "--listen", "127.0.0.1:0", "--interval", "1s"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # blocks until the first evaluation is served
            if "serving http://" in line:
                break
        else:
            raise RuntimeError(f"mrc watch exited with {proc.wait()}")
        before = _cpu_seconds(proc.pid)
        try:
            proc.wait(timeout=SECONDS)
        except subprocess.TimeoutExpired:
            pass
        return _cpu_seconds(proc.pid) - before
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _drift_screen_cpu(env: dict[str, str]) -> float:
    """Run the console on the Drift screen for the window; return its CPU seconds."""
    session = PtySession([sys.executable, "-m", "tui.cli"], env=env)
    try:
        session.wait_for(b"Commits", timeout=120)
        session.type("5")
        session.wait_for(b"drift now", timeout=60)
        session.read_for(1)
        before = session.cpu_seconds()
        session.read_for(SECONDS)
        return session.cpu_seconds() - before
    finally:
        session.close()


def main() -> None:
    """Measure both programs on one sandbox, print per-model per-minute figures, record."""
    from core.config import load_file
    from core.demo import build_sandbox
    from core.services.workspace import Workspace

    scale = 60.0 / SECONDS
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = build_sandbox(Path(tmp) / "demo")
        config = load_file(sandbox.config)
        models = max(1, len(config.models))
        workspace = Workspace(config, state_dir=sandbox.state_dir)
        background = sandbox.start_background(workspace)
        env = {
            **os.environ,
            "MRC_CONFIG": str(sandbox.config),
            "MRC_STATE_DIR": str(sandbox.state_dir),
            "PYTHONPATH": str(ROOT),
        }
        try:
            watch_cpu = _watch_cpu(env)
            screen_cpu = _drift_screen_cpu(env)
        finally:
            background.stop()
            workspace.close()
    per_watch = watch_cpu * scale / models
    per_screen = screen_cpu * scale / models
    print(f"{models} model(s), {SECONDS:.0f}s at a 1 s cadence (CPU s per model per minute)")
    print(f"  mrc watch        : {per_watch:6.2f}")
    print(f"  Drift screen     : {per_screen:6.2f}")
    print(f"  ratio            : {per_watch / max(per_screen, 1e-3):6.2f}x (goal <= {GOAL:g}x)")
    record("mrc watch CPU per model", "Drift screen", per_watch, max(per_screen, 1e-3), GOAL)


if __name__ == "__main__":
    main()
