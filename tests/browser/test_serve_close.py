"""A browser closed while a release runs in ``mrc serve`` loses nothing.

As when a terminal closes: the console serving that page exits, the release
it was running is closed in the journal (cancelled, failed with a reason,
done or unknown; never left ``running``), the journal says it was made via
the browser, and the demo's target still serves. The release is closed while
its tests step runs (pytest in the served console, a few seconds).

Closing the page ends the app without :meth:`tui.app.MrcApp.exit` (the web
driver posts ExitApp), so only its unmount handler stands between the
process exiting and a release row left ``running``.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from core.domain import Release
from core.journal import Journal
from tests.browser.test_serve import expose_terminal, serve_demo, wait_text

pytestmark = pytest.mark.browser

T = TypeVar("T")

#: A release or step still under way, as journalled.
RUNNING = "running"

#: How often the conditions below are polled while waiting for them.
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class ServedDemo:
    """``mrc serve --demo --allow-changes`` running in a subprocess."""

    url: str
    process: subprocess.Popen[bytes]
    root: Path
    log: Path

    @property
    def journal_path(self) -> Path:
        """Return the journal the served consoles write."""
        return self.root / "state" / "journal.sqlite3"

    @property
    def target_health(self) -> str:
        """Return the demo's local target's health address."""
        port = json.loads((self.root / "sandbox.json").read_text())["port"]
        return f"http://127.0.0.1:{port}/healthz"

    def consoles(self) -> list[int]:
        """Return the pids of the consoles textual-serve runs for this demo's connections."""
        config = str((self.root / "mrc.toml").resolve())
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            words = [word.decode(errors="replace") for word in argv]
            if "tui.cli" in words and config in words:
                found.append(int(entry.name))
        return found


@pytest.fixture
def served_changes(tmp_path: Path) -> Iterator[ServedDemo]:
    """``mrc serve --demo --allow-changes`` on loopback; stopped afterwards."""
    with serve_demo(tmp_path, "--allow-changes") as (url, process, root, log):
        yield ServedDemo(url, process, root, log)


def wait_for(condition: Callable[[], T | None], timeout: float, failure: Callable[[], str]) -> T:
    """Poll ``condition`` until it returns a value other than None or False; return it.

    Fails the test with ``failure()`` when ``timeout`` seconds pass first.
    """
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(failure(), pytrace=False)
        pause.wait(POLL_SECONDS)


def releases(demo: ServedDemo) -> list[Release]:
    """Return the journal's releases with their steps, newest first ([] before it exists)."""
    if not demo.journal_path.exists():
        return []
    with Journal(demo.journal_path, close_orphans=False) as journal:
        return journal.releases()


def release_in_tests(demo: ServedDemo) -> Release | None:
    """Return the release whose tests step is running now, or None."""
    for release in releases(demo):
        if release.status == RUNNING and any(
            step.step == "tests" and step.status == RUNNING for step in release.steps
        ):
            return release
    return None


def health_answers(url: str) -> int | None:
    """Return the HTTP status a GET of ``url`` answers, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except OSError:
        return None


def test_browser_closed_mid_release_loses_nothing(browser: Any, served_changes: ServedDemo) -> None:
    """`d` `y`, the page closed while the release runs its tests: console gone, rows closed."""
    demo = served_changes
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    closed = False
    try:
        page = context.new_page()
        expose_terminal(page)
        page.goto(demo.url)
        wait_text(page, "mrc 1 Commits", "the Commits screen", timeout=90)
        wait_text(page, "v1.3.0", "the commit history")
        consoles = wait_for(demo.consoles, 30, lambda: "no console process runs for the page")
        page.click(".xterm")
        page.keyboard.press("d")
        wait_text(page, "Release ", "the release confirmation")
        page.keyboard.press("y")
        running = wait_for(
            lambda: release_in_tests(demo),
            60,
            lambda: f"no release ran its tests; the journal holds {releases(demo)}",
        )
        context.close()  # the operator closes the browser while the release runs
        closed = True
    finally:
        if not closed:
            context.close()

    wait_for(
        lambda: not any(pid in demo.consoles() for pid in consoles),
        60,
        lambda: f"the console {consoles} still runs after its page closed",
    )
    release = next(r for r in releases(demo) if r.id == running.id)
    assert release.status not in {RUNNING, ""}, release
    assert release.finished_at is not None, release
    assert all(step.status != RUNNING for step in release.steps), release.steps
    if release.status in {"failed", "cancelled", "unknown"}:
        assert release.message, release
    assert release.user.endswith(" via browser"), release.user
    assert demo.process.poll() is None, "mrc serve itself stopped"
    status = wait_for(
        lambda: health_answers(demo.target_health),
        30,
        lambda: f"the demo's target does not answer {demo.target_health}",
    )
    assert status == 200
