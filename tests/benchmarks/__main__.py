"""``make bench``: run every ``tests/benchmarks/bench_*.py`` (or those named) in turn.

Each benchmark prints its own measurements and ratios against a baseline
measured in the same run, and may ``record`` them (tests/benchmarks/summary.py);
one table of every recorded measure is printed at the end. None asserts a
time. A benchmark whose service is not available prints why and the others
go on.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback

import tests.benchmarks as package
from tests.benchmarks.summary import print_table


def main(names: list[str]) -> int:
    """Run the selected benchmarks; return 1 if any raised, else 0."""
    available = sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_")
    )
    selected = [n for n in available if not names or any(x in n for x in names)]
    failed = []
    for name in selected:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        try:
            importlib.import_module(f"tests.benchmarks.{name}").main()
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"--- {name}: {time.perf_counter() - start:.1f}s", flush=True)
    print_table()
    if failed:
        print(f"\nbenchmarks that raised: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
