"""Benchmark: the Drift screen live, with its 1-second refresh and demo traffic flowing.

``mrc demo`` runs in a pty at 120x40 on the Drift screen (the demo's model
server and traffic generator feed it) for one minute. Two baselines run in
the same pty size for the same minute:

* a bare Textual app updating one label every second (the cost of "live"
  alone; goal: the Drift screen <= 3x its CPU seconds and its bytes);
* a bare Textual app idling with one label (the old baseline, still printed).

Prints CPU seconds per minute of each process and bytes written to the
terminal per minute, and the ratios; records the live-label ratios in the
summary table. Set MRC_BENCH_SECONDS to measure a shorter window.

The charts' window jumps on every few minutes (300 s on the default range)
and a jump rewrites the charts' points, markers and clock times, so one minute
may hold a jump and the next not. Set MRC_BENCH_WORST_SECONDS (e.g. 480) to go
on watching the Drift screen that long (from the start of the measured window)
and also print and record its worst minute: the most bytes written in any 60
seconds, jumps included.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.bench_startup import BARE_APP, LIVE_LABEL_APP
from tests.benchmarks.summary import record
from tests.benchmarks.terminal import PtySession

SECONDS = float(os.environ.get("MRC_BENCH_SECONDS", "60"))
WORST_SECONDS = float(os.environ.get("MRC_BENCH_WORST_SECONDS", "0"))
GOAL = 3.0


def _measure(session: PtySession, seconds: float) -> tuple[float, int]:
    cpu_before = session.cpu_seconds()
    written = session.read_for(seconds)
    return session.cpu_seconds() - cpu_before, written


def _per_second(session: PtySession, seconds: float) -> list[int]:
    """Watch ``session`` for ``seconds``; return the bytes it wrote in each second."""
    return [session.read_for(1.0) for _ in range(math.ceil(seconds))]


def _worst_minute(per_second: list[int]) -> int:
    """Return the most bytes written in any 60 consecutive seconds of ``per_second``."""
    return max(sum(per_second[i : i + 60]) for i in range(max(1, len(per_second) - 59)))


def _baseline(script: Path, source: str, marker: bytes, settle: float) -> tuple[float, int]:
    """Run a bare app for the window after ``settle`` seconds; return its CPU seconds and
    bytes written in the window."""
    script.write_text(source)
    session = PtySession([sys.executable, str(script)])
    try:
        session.wait_for(marker)
        session.read_for(settle)
        return _measure(session, SECONDS)
    finally:
        session.close()


def main() -> None:
    """Run the three programs for the window, print per-minute figures and record ratios."""
    scale = 60.0 / SECONDS
    with tempfile.TemporaryDirectory() as tmp:
        # The idle app is measured as before (the rest of its first frame counts); the
        # live label, like the Drift screen, from one second after its first frame.
        bare_cpu, bare_bytes = _baseline(Path(tmp) / "bare.py", BARE_APP, b"bare-app-ready", 0)
        live_cpu, live_bytes = _baseline(
            Path(tmp) / "live.py", LIVE_LABEL_APP, b"live-app-ready", 1
        )

        demo = PtySession([sys.executable, "-m", "tui.cli", "demo", "--dir", f"{tmp}/demo"])
        try:
            demo.wait_for(b"Commits", timeout=120)
            demo.type("5")
            demo.wait_for(b"drift now", timeout=60)
            demo.read_for(5)  # let the first charts settle
            cpu_before = demo.cpu_seconds()
            seconds = _per_second(demo, SECONDS)
            mrc_cpu, mrc_bytes = demo.cpu_seconds() - cpu_before, sum(seconds)
            if WORST_SECONDS > SECONDS:
                seconds += _per_second(demo, WORST_SECONDS - SECONDS)
        finally:
            demo.close()
    print(f"live for {SECONDS:.0f}s at 120x40 (figures per minute)")
    for name, cpu, written in (
        ("bare Textual app (idle)", bare_cpu, bare_bytes),
        ("bare app, label every 1s", live_cpu, live_bytes),
        ("mrc Drift screen", mrc_cpu, mrc_bytes),
    ):
        print(f"  {name:25}: {cpu * scale:6.2f} CPU s  {written * scale / 1024:9.1f} KiB")
    print(
        f"  ratio to the live label  : {mrc_cpu / max(live_cpu, 1e-3):6.1f}x CPU  "
        f"{mrc_bytes / max(live_bytes, 1):9.1f}x bytes (goal <= {GOAL:g}x)"
    )
    print(
        f"  ratio to the idle app    : {mrc_cpu / max(bare_cpu, 1e-3):6.1f}x CPU  "
        f"{mrc_bytes / max(bare_bytes, 1):9.1f}x bytes"
    )
    record("Drift screen live CPU", "label every 1s", mrc_cpu, max(live_cpu, 1e-3), GOAL)
    record("Drift screen live bytes", "label every 1s", mrc_bytes, max(live_bytes, 1), GOAL)
    if WORST_SECONDS > SECONDS:
        worst, live_minute = _worst_minute(seconds), live_bytes * scale
        print(
            f"  worst minute of {len(seconds)}s: {worst / 1024:.1f} KiB, "
            f"{worst / max(live_minute, 1):.1f}x the live label's minute (goal <= {GOAL:g}x)"
        )
        record(
            "Drift screen worst minute bytes", "label every 1s", worst, max(live_minute, 1), GOAL
        )


if __name__ == "__main__":
    main()
