"""Benchmark: process start to first rendered frame, ``mrc`` versus a bare Textual app.

Both run in a real pseudo-terminal at 120x40; the clock stops when the frame's
text reaches the terminal. Rounds alternate between the two programs and the
medians are compared (goal: mrc <= 1.3x the bare app). Also prints which heavy
backend libraries the console imported before its first frame (should be none).

Both start as an installed program starts the second time: with the bytecode of
their modules cached (in a temporary ``PYTHONPYCACHEPREFIX``, also when the
caller's environment sets ``PYTHONDONTWRITEBYTECODE``), after one unmeasured run.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.summary import record
from tests.benchmarks.terminal import cached_bytecode_env, time_to_text
from tests.support.repos import make_history_repo

#: Rounds per program: start-up times on a shared 2-core machine spread by +-30%.
ROUNDS = 15
HEAVY = ("kubernetes", "docker", "plotext", "prometheus_api_client", "git")

BARE_APP = """
from textual.app import App
from textual.widgets import Label

class Bare(App):
    def compose(self):
        yield Label("bare-app-ready")

Bare().run()
"""

#: The bare app with one label updated every second: the cost of "live" alone.
LIVE_LABEL_APP = """
from textual.app import App
from textual.widgets import Label

class Live(App):
    ticks = 0

    def compose(self):
        yield Label("live-app-ready 0", id="live")

    def on_mount(self):
        self.set_interval(1.0, self.tick)

    def tick(self):
        self.ticks += 1
        self.query_one("#live", Label).update(f"live-app-ready {self.ticks}")

Live().run()
"""


def main() -> None:
    """Run the benchmark and print the medians and their ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = make_history_repo(root / "repo", commits=50)
        config = root / "mrc.toml"
        config.write_text(f'[[model]]\nname = "bench"\nrepo = "{repo.path}"\n')
        bare = root / "bare.py"
        bare.write_text(BARE_APP)
        env = cached_bytecode_env(root / "pycache", MRC_STATE_DIR=str(root / "state"))
        mrc = [sys.executable, "-m", "tui.cli", "--config", str(config)]
        bare_argv = [sys.executable, str(bare)]
        time_to_text(bare_argv, b"bare-app-ready", env=env)  # caches bytecode
        time_to_text(mrc, b"Release", env=env)
        bare_times, mrc_times = [], []
        for _ in range(ROUNDS):
            bare_times.append(time_to_text(bare_argv, b"bare-app-ready", env=env)[0])
            mrc_times.append(time_to_text(mrc, b"Release", env=env)[0])
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, tui.cli, tui.app; "
                f"print(','.join(m for m in {HEAVY!r} if m in sys.modules) or 'none')",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    bare_median = statistics.median(bare_times)
    mrc_median = statistics.median(mrc_times)
    print("startup: process start -> first frame in a pty at 120x40")
    print(
        f"  bare Textual app : median {bare_median * 1000:7.1f} ms over {ROUNDS} runs"
        f" (best {min(bare_times) * 1000:.1f} ms)"
    )
    print(
        f"  mrc              : median {mrc_median * 1000:7.1f} ms over {ROUNDS} runs"
        f" (best {min(mrc_times) * 1000:.1f} ms)"
    )
    print(f"  ratio mrc / bare : {mrc_median / bare_median:.2f}x (goal <= 1.3x)")
    print(f"  heavy backends imported before the first frame: {probe}")
    record("startup: spawn -> first frame", "bare Textual app", mrc_median, bare_median, 1.3)


if __name__ == "__main__":
    main()
