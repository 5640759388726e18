"""Benchmark: the Commits screen on a 200,000-commit repository.

Prints (never asserts):

* time from asking the screen for a model's history to the first page drawn
  on screen, against ``git log -n 200`` run as a subprocess in the same run,
  and their ratio (goal: at most 2x); of it, the time from the page reaching
  the table to its first row painted, and how many rounds waited for
  Textual's next frame to paint it (Textual paints at most 60 frames a second,
  and each round, like a key press, follows a frame);
* visiting the whole history page by page (``pagedown`` to the end, pages
  streamed in as the cursor nears them): wall time, rows still held as
  objects, and RSS growth (goal: at most +40 MiB);
* ``end`` from the top: time until the cursor is on the oldest commit, with
  the oldest page read ahead (as after the first page has been on screen a
  moment) and cold (pressed as soon as the first page is drawn) (goal: 1 s);
  cold again on a clone of the repository with a commit-graph file (what
  ``git gc`` and ``git maintenance`` write), and ``git rev-list --count`` on
  both, the walk that reaching the oldest commit cannot avoid.

The repository is the one bench_git_log generates and caches (written by
``git fast-import``, so without a commit-graph).
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from textual import events

from core.config import parse
from core.journal import Journal
from core.services.workspace import Workspace
from tests.benchmarks.bench_git_log import DEFAULT_CACHE, ensure_repo
from tests.benchmarks.summary import record
from tests.support.targets import FIXED_NOW
from tui.app import MrcApp
from tui.widgets.vtable import VirtualTable

ROUNDS = 7
#: A page painted this long (s) after it reached the table waited for Textual's next
#: frame: Textual paints at most 60 frames a second, and each round follows a frame.
FRAME_WAIT = 0.004


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
        placed: list[float] = []  # when the screen handed the page to the table
        set_rows = table.set_rows

        def timed_set_rows(rows, *, complete=False):  # type: ignore[no-untyped-def]
            placed.append(time.perf_counter())
            set_rows(rows, complete=complete)

        table.set_rows = timed_set_rows  # type: ignore[method-assign]
        firsts, waits = [], []
        for _ in range(ROUNDS):
            # Each round starts as the first load does: with nothing else reading
            # (the oldest page is read ahead only after the first page is drawn).
            while screen._tail_reading is not None:
                await asyncio.sleep(0.01)
            table.rows.clear()
            drawn.clear()
            placed.clear()
            start = time.perf_counter()
            screen.load_page("bench", 0, "")
            while not drawn:
                await asyncio.sleep(0.001)
            firsts.append(drawn[0] - start)
            waits.append(drawn[0] - placed[0])
        table.render_line = render_line  # type: ignore[method-assign]
        table.set_rows = set_rows  # type: ignore[method-assign]
        out["first_page"] = statistics.median(firsts)
        out["paint_wait"] = statistics.median(waits)
        out["frame_waits"] = sum(wait > FRAME_WAIT for wait in waits)

        table.focus()
        await pilot.pause()
        # `end` with the oldest page read ahead (it is read once the first page is drawn).
        while screen._tail_reading is not None or not screen._tail:
            await asyncio.sleep(0.01)
        out["end_warm"] = await _time_end(pilot, table)
        await pilot.press("home")

        # `end` pressed as soon as the first page is drawn (nothing read ahead).
        out["end_cold"] = await _time_end_cold(pilot, screen, table)
        while screen._tail_reading is not None:
            await asyncio.sleep(0.01)

        # Visit the whole history page by page, from a fresh list.
        screen._tail.clear()
        table.rows.clear()
        screen.load_page("bench", 0, "")
        while not table.rows:
            await asyncio.sleep(0.001)
        await pilot.pause()
        gc.collect()
        rss_before = _rss_kib()
        start = time.perf_counter()
        page = table.size.height - 1
        driver = app._driver
        assert driver is not None
        while not (table.complete and table.cursor == len(table.rows) - 1):
            wanted = table.cursor + 20 * page
            for _ in range(20):  # typed faster than pages load: every press must count
                driver.send_message(events.Key("pagedown", None))
            while table.cursor < wanted and not (
                table.complete and table.cursor == len(table.rows) - 1
            ):
                await asyncio.sleep(0.001)
        out["visit_all"] = time.perf_counter() - start
        out["pages"] = len(table.rows) / page
        out["rows"] = len(table.rows)
        out["held"] = table.rows.held()
        gc.collect()
        out["rss_growth_mib"] = (_rss_kib() - rss_before) / 1024
    return out


async def _end_cold(workspace: Workspace) -> float:
    """Return the median time of ``end`` pressed as soon as the first page is drawn."""
    from tui.screens.commits import CommitsScreen

    app = MrcApp(workspace, clock=lambda: FIXED_NOW, animate=False)
    times = []
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, CommitsScreen)
        table = screen.query_one(VirtualTable)
        table.focus()
        for _ in range(3):
            while screen._tail_reading is not None:
                await asyncio.sleep(0.01)
            times.append(await _time_end_cold(pilot, screen, table))
    return statistics.median(times)


async def _time_end_cold(pilot, screen, table: VirtualTable) -> float:  # type: ignore[no-untyped-def]
    """Load the first page again, press ``end`` once it is drawn (nothing read ahead),
    then ``home``; return the seconds until the oldest commit was on screen."""
    screen._tail.clear()
    table.rows.clear()
    screen.load_page("bench", 0, "")
    while not table.rows:
        await asyncio.sleep(0.001)
    screen._tail.clear()
    elapsed = await _time_end(pilot, table)
    await pilot.press("home")
    return elapsed


def _rev_list_count(repo: Path) -> float:
    """Return the best of three ``git rev-list --count HEAD`` wall times in ``repo``."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "HEAD"], check=True,
                       capture_output=True)  # fmt: skip
        times.append(time.perf_counter() - start)
    return min(times)


def _with_commit_graph(repo: Path, dest: Path) -> Path:
    """Return a local bare clone of ``repo`` at ``dest`` with a commit-graph file written."""
    subprocess.run(["git", "clone", "-q", "--bare", "--local", str(repo), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "commit-graph", "write", "--reachable"], check=True,
                   capture_output=True)  # fmt: skip
    return dest


async def _time_end(pilot, table: VirtualTable) -> float:  # type: ignore[no-untyped-def]
    """Press ``end``; return the seconds until the cursor is on the oldest commit, drawn."""
    start = time.perf_counter()
    await pilot.press("end")
    while not (table.complete and table.cursor == len(table.rows) - 1 and table.current):
        await asyncio.sleep(0.001)
    return time.perf_counter() - start


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
        workspace = Workspace(config, journal=Journal(Path(tmp) / "j.sqlite3"), state_dir=Path(tmp))
        numbers = asyncio.run(_measure(workspace))
        graph = _with_commit_graph(repo, Path(tmp) / "graph.git")
        config = parse(f'[[model]]\nname = "bench"\nrepo = "{graph}"\n', source=Path(tmp) / "c")
        workspace = Workspace(config, journal=Journal(Path(tmp) / "g.sqlite3"), state_dir=Path(tmp))
        numbers["end_cold_graph"] = asyncio.run(_end_cold(workspace))
        numbers["count"] = _rev_list_count(repo)
        numbers["count_graph"] = _rev_list_count(graph)
    git_median = statistics.median(git_times)
    print(f"commits screen on a {int(numbers['rows']):,}-commit repository (120x40, headless)")
    print(f"  git log -n 200 (baseline)      : {git_median * 1000:8.1f} ms (median of {ROUNDS})")
    print(f"  first page on screen           : {numbers['first_page'] * 1000:8.1f} ms (median)")
    print(
        f"  ratio screen / git log         : {numbers['first_page'] / git_median:.2f}x (goal <= 2x)"
    )
    print(
        f"  of which rows set -> painted   : {numbers['paint_wait'] * 1000:8.1f} ms (median); "
        f"{int(numbers['frame_waits'])} of {ROUNDS} rounds waited for Textual's next frame"
    )
    print(f"  end, oldest page read ahead    : {numbers['end_warm'] * 1000:8.1f} ms (goal <= 1 s)")
    print(
        f"  end, pressed at once (cold)    : {numbers['end_cold'] * 1000:8.1f} ms; "
        f"git rev-list --count alone {numbers['count'] * 1000:.0f} ms"
    )
    print(
        f"  the same with a commit-graph   : {numbers['end_cold_graph'] * 1000:8.1f} ms "
        f"(median of 3); git rev-list --count alone {numbers['count_graph'] * 1000:.0f} ms"
    )
    print(
        f"  pagedown through all           : {numbers['visit_all']:8.1f} s "
        f"({numbers['pages']:.0f} screens); {int(numbers['held']):,} rows still held"
    )
    print(f"  RSS growth after the visit     : {numbers['rss_growth_mib']:+.1f} MiB (goal <= 40)")
    record("commits: first page on screen", "git log -n 200", numbers["first_page"], git_median, 2)
    record("commits: end (read ahead)", "1 s", numbers["end_warm"], 1.0, 1)
    record("commits: end (cold)", "1 s", numbers["end_cold"], 1.0, 1)
    record("commits: end (cold, commit-graph)", "1 s", numbers["end_cold_graph"], 1.0, 1)
    record("commits: RSS after pagedown to the end", "40 MiB", numbers["rss_growth_mib"], 40.0, 1)


if __name__ == "__main__":
    main()
