"""Benchmark: commit log paging on a 200,000-commit repository.

Prints (never asserts):

* time to the first page (``Repository.page(limit=200)``) against
  ``git log -n 200`` run as a subprocess in the same process, and their ratio
  (goal: at most 2x);
* scrolling the whole history page by page with ``Repository.cursor`` while
  keeping a window of pages (as a virtualized list does): time, and memory
  growth (tracemalloc and RSS);
* the memory that keeping every commit object would cost, for comparison.

The repository is generated once with ``git fast-import`` and cached under
``~/.cache/mrc/bench-repo-200k`` (override with ``MRC_BENCH_REPO``).
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from core.git import Repository

COMMITS = 200_000
PAGE = 200
BASE_TIME = 1_700_000_000
DEFAULT_CACHE = Path.home() / ".cache" / "mrc" / "bench-repo-200k"


def _stream(commits: int) -> Iterator[bytes]:
    """Yield a fast-import stream: ``commits`` commits on main, a tag every 10,000."""
    authors = (b"Ada Lovelace <ada@example.com>", b"Grace Hopper <grace@example.com>")
    for i in range(1, commits + 1):
        when = BASE_TIME + i * 60
        author = authors[i % 2]
        message = f"change {i}: tune feature {i % 97}\n".encode()
        content = f"value {i}\n".encode()
        yield b"commit refs/heads/main\nmark :%d\n" % i
        yield b"author %s %d +0000\ncommitter %s %d +0000\n" % (author, when, author, when)
        yield b"data %d\n%s" % (len(message), message)
        if i > 1:
            yield b"from :%d\n" % (i - 1)
        yield b"M 644 inline data/file%d.txt\ndata %d\n%s\n" % (i % 50, len(content), content)
        if i % 10_000 == 0:
            yield b"reset refs/tags/v%d\nfrom :%d\n\n" % (i // 10_000, i)


def ensure_repo(path: Path, commits: int = COMMITS) -> Path:
    """Return ``path``, generating the bare benchmark repository there if it is missing."""
    done = path / "mrc-bench-complete"
    if done.exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["git", "-C", str(path), "fast-import", "--quiet"], stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    buffer: list[bytes] = []
    for chunk in _stream(commits):
        buffer.append(chunk)
        if len(buffer) >= 4096:
            proc.stdin.write(b"".join(buffer))
            buffer.clear()
    proc.stdin.write(b"".join(buffer))
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    done.write_text(f"{commits}\n")
    print(f"generated {commits} commits in {time.perf_counter() - started:.1f} s at {path}")
    return path


def _timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def _interleaved(funcs: list[Callable[[], object]], runs: int) -> list[list[float]]:
    """Time each function ``runs`` times, alternating them so machine noise hits all alike."""
    times: list[list[float]] = [[] for _ in funcs]
    for _ in range(runs):
        for i, func in enumerate(funcs):
            times[i].append(_timed(func))
    return times


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    """Generate (or reuse) the repository and print the measurements."""
    path = ensure_repo(Path(os.environ.get("MRC_BENCH_REPO", DEFAULT_CACHE)))
    runs = 21

    def baseline() -> None:
        subprocess.run(
            ["git", "-C", str(path), "log", "-n", str(PAGE)], check=True, stdout=subprocess.PIPE
        )

    repo = Repository(path)
    first = repo.page(limit=PAGE)
    assert len(first) == PAGE, "benchmark repository is incomplete"
    baseline()  # warm the page cache for both sides alike
    git_times, page_times, open_times = _interleaved(
        [baseline, lambda: repo.page(limit=PAGE), lambda: Repository(path).page(limit=PAGE)], runs
    )
    git_time, page_time, open_time = (
        statistics.median(t) for t in (git_times, page_times, open_times)
    )
    print(f"bench_git_log: {COMMITS} commits, page size {PAGE}, {runs} interleaved runs")
    print("                                     median      best")
    for label, times in (
        (f"git log -n {PAGE} (subprocess)", git_times),
        (f"Repository.page(limit={PAGE})", page_times),
        ("open repository + first page", open_times),
    ):
        print(
            f"  {label:<32} {statistics.median(times) * 1000:7.1f} ms {min(times) * 1000:6.1f} ms"
        )
    print(f"  ratio first page / git log       {page_time / git_time:7.2f}x  (goal <= 2x)")
    print(f"  ratio open+page / git log        {open_time / git_time:7.2f}x")
    print(f"  ratio of best times (page / git) {min(page_times) / min(git_times):7.2f}x")

    deep_time = _timed(lambda: repo.page(limit=PAGE, skip=COMMITS - PAGE))
    print(f"  page(skip={COMMITS - PAGE}) (last page)  {deep_time * 1000:7.1f} ms")

    started = time.perf_counter()
    with repo.cursor() as cursor:
        while cursor.next_page(PAGE):
            pass
    print(f"  cursor: scroll whole history     {time.perf_counter() - started:7.2f} s")

    # Scroll to the end as a virtualized list does: keep a window of pages.
    gc.collect()
    rss_before = _rss_kib()
    tracemalloc.start()
    base_current, _ = tracemalloc.get_traced_memory()
    window: deque[list[object]] = deque(maxlen=5)
    seen = 0
    started = time.perf_counter()
    with repo.cursor() as cursor:
        while True:
            page = cursor.next_page(PAGE)
            if not page:
                break
            seen += len(page)
            window.append(page)  # type: ignore[arg-type]
    scroll_time = time.perf_counter() - started
    window.clear()
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = _rss_kib()
    print(f"  scrolled {seen} commits in {seen // PAGE} pages: {scroll_time:.2f} s (traced)")
    print(f"  memory growth after scrolling    {(current - base_current) / 1024:8.1f} KiB")
    print(f"  peak traced memory while scroll  {(peak - base_current) / 1024:8.1f} KiB")
    print(f"  RSS growth                       {rss_after - rss_before:8d} KiB")

    # For comparison: keeping every Commit object of the history.
    gc.collect()
    tracemalloc.start()
    base_current, _ = tracemalloc.get_traced_memory()
    kept = []
    with repo.cursor() as cursor:
        while page := cursor.next_page(PAGE):
            kept.extend(page)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_commit = (current - base_current) / max(len(kept), 1)
    print(
        f"  keeping all {len(kept)} commits would cost "
        f"{(current - base_current) / 2**20:.1f} MiB ({per_commit:.0f} B per commit)"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
