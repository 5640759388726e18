"""Benchmark: the Commits screen on a 200,000-commit repository.

Prints (never asserts):

* time from asking the screen for a model's history to the first page drawn
  on screen, against ``git log -n 200`` run as a subprocess in the same run,
  and their ratio (goal: at most 2x);
* scrolling to the very end (``end`` repeatedly, pages streamed in as the
  cursor nears the bottom): wall time, and memory growth (tracemalloc, RSS).

The repository is the one bench_git_log generates and caches.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

from core.config import parse
from core.journal import Journal
from core.services.workspace import Workspace
from tests.benchmarks.bench_git_log import DEFAULT_CACHE, ensure_repo
from tests.support.targets import FIXED_NOW
from tui.app import MrcApp
from tui.widgets.vtable import VirtualTable

ROUNDS = 7


def _rss_kib() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def _measure(workspace: Workspace) -> dict[str, float]:
    from tui.screens.commits import CommitsScreen

    app = MrcApp(workspace, clock=lambda: FIXED_NOW, animate=False)
    out: dict[str, float] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, CommitsScreen)
        table = screen.query_one(VirtualTable)
        while not table.rows:
            await asyncio.sleep(0.005)
        drawn: list[float] = []
        render_line = table.render_line

        def timed_render_line(y: int):  # type: ignore[no-untyped-def]
            strip = render_line(y)
            if y == 1 and table.rows and not drawn:
                drawn.append(time.perf_counter())  # the first commit row was painted
            return strip

        table.render_line = timed_render_line  # type: ignore[method-assign]
        firsts = []
        for _ in range(ROUNDS):
            table.rows.clear()
            drawn.clear()
            start = time.perf_counter()
            screen.load_page("bench", 0, "")
            while not drawn:
                await asyncio.sleep(0.001)
            firsts.append(drawn[0] - start)
        table.render_line = render_line  # type: ignore[method-assign]
        out["first_page"] = statistics.median(firsts)

        gc.collect()
        tracemalloc.start()
        rss_before = _rss_kib()
        start = time.perf_counter()
        table.focus()
        while not table.complete:
            await pilot.press("end")
            await pilot.pause(0.01)
        await pilot.pause()
        out["scroll_all"] = time.perf_counter() - start
        out["rows"] = len(table.rows)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["traced_mib"] = current / 2**20
        out["traced_peak_mib"] = peak / 2**20
        out["rss_growth_mib"] = (_rss_kib() - rss_before) / 1024
    return out


def main() -> None:
    """Run the benchmark and print its numbers."""
    repo = ensure_repo(Path(os.environ.get("MRC_BENCH_REPO", DEFAULT_CACHE)))
    git_times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        subprocess.run(
            ["git", "-C", str(repo), "log", "-n", "200"], capture_output=True, check=True
        )
        git_times.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        config = parse(f'[[model]]\nname = "bench"\nrepo = "{repo}"\n', source=Path(tmp) / "c")
        workspace = Workspace(config, journal=Journal(Path(tmp) / "j.sqlite3"), state_dir=tmp)
        numbers = asyncio.run(_measure(workspace))
    git_median = statistics.median(git_times)
    print(f"commits screen on a {int(numbers['rows']):,}-commit repository (120x40, headless)")
    print(f"  git log -n 200 (baseline)      : {git_median * 1000:8.1f} ms (median of {ROUNDS})")
    print(f"  first page on screen           : {numbers['first_page'] * 1000:8.1f} ms (median)")
    print(
        f"  ratio screen / git log         : {numbers['first_page'] / git_median:.2f}x (goal <= 2x)"
    )
    print(f"  scroll to the end              : {numbers['scroll_all']:8.1f} s")
    print(
        f"  memory after scrolling         : {numbers['traced_mib']:.1f} MiB traced "
        f"(peak {numbers['traced_peak_mib']:.1f}), RSS +{numbers['rss_growth_mib']:.1f} MiB"
    )


if __name__ == "__main__":
    main()
