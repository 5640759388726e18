"""Benchmark: the Drift screen idling with its 1-second live refresh.

``mrc demo`` runs in a pty at 120x40 on the Drift screen (the demo's model
server and traffic generator feed it) for one minute; a bare Textual app
showing one label idles in the same pty size for the same minute. Prints CPU
seconds per minute of each process and bytes written to the terminal per
minute, and the ratios. Set MRC_BENCH_SECONDS to measure a shorter window.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.bench_startup import BARE_APP
from tests.benchmarks.terminal import PtySession

SECONDS = float(os.environ.get("MRC_BENCH_SECONDS", "60"))


def _measure(session: PtySession, seconds: float) -> tuple[float, int]:
    cpu_before = session.cpu_seconds()
    written = session.read_for(seconds)
    return session.cpu_seconds() - cpu_before, written


def main() -> None:
    """Run both programs for the window and print per-minute figures."""
    scale = 60.0 / SECONDS
    with tempfile.TemporaryDirectory() as tmp:
        bare_script = Path(tmp) / "bare.py"
        bare_script.write_text(BARE_APP)
        bare = PtySession([sys.executable, str(bare_script)])
        try:
            bare.wait_for(b"bare-app-ready")
            bare_cpu, bare_bytes = _measure(bare, SECONDS)
        finally:
            bare.close()

        demo = PtySession([sys.executable, "-m", "tui.cli", "demo", "--dir", f"{tmp}/demo"])
        try:
            demo.wait_for(b"Commits", timeout=120)
            demo.type("5")
            demo.wait_for(b"drift now", timeout=60)
            demo.read_for(5)  # let the first charts settle
            mrc_cpu, mrc_bytes = _measure(demo, SECONDS)
        finally:
            demo.close()
    print(f"idle for {SECONDS:.0f}s at 120x40 (figures per minute)")
    print(
        f"  bare Textual app : {bare_cpu * scale:6.2f} CPU s  {bare_bytes * scale / 1024:9.1f} KiB"
    )
    print(f"  mrc Drift screen : {mrc_cpu * scale:6.2f} CPU s  {mrc_bytes * scale / 1024:9.1f} KiB")
    print(
        f"  ratio            : {mrc_cpu / max(bare_cpu, 1e-3):6.1f}x CPU  "
        f"{mrc_bytes / max(bare_bytes, 1):9.1f}x bytes"
    )


if __name__ == "__main__":
    main()
