"""``mrc serve`` on the demo sandbox, opened in a real (headless) chromium.

The page runs the console in xterm.js, drawn with WebGL (no text in the DOM):
the test reads what the operator sees from xterm's screen buffer, which it
reaches by exposing the page's terminal object as ``window.mrcTerminal`` when
the page's script is loaded. It presses keys as the operator does and takes a
screenshot of the page: into the test's temporary directory, or into
``$MRC_SCREENSHOT_DIR`` when set (``make screenshots`` sets it to screenshots/).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

MRC = str(Path(sys.executable).with_name("mrc"))
SCREENSHOT_NAME = "serve.png"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(process: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    """Wait until ``port`` accepts connections; fail with the log if the server died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mrc serve exited {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            process_wait = 0.2
            try:
                process.wait(process_wait)  # returns early only if the server died
            except subprocess.TimeoutExpired:
                pass
    pytest.fail(f"mrc serve did not listen on {port} within {timeout}s:\n{log.read_text()}")


@contextlib.contextmanager
def serve_demo(
    tmp_path: Path, *flags: str
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path, Path]]:
    """Run ``mrc serve --demo [flags]`` on a free loopback port in a subprocess.

    Yields (URL, process, demo directory, log file) once it listens; stops it
    (SIGINT, then SIGKILL after 30 s) afterwards and prints its log (shown
    when the test failed). Fails the test if it never listens.
    """
    port = free_port()
    log = tmp_path / "serve.log"
    root = tmp_path / "demo"
    env = {**os.environ, "MRC_STATE_DIR": str(tmp_path / "state")}
    env.pop("MRC_CONFIG", None)
    env.pop("MRC_VIA", None)
    argv = [MRC, "serve", "--demo", *flags, "--dir", str(root), "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
    try:
        wait_listening(process, port, log, timeout=120)
        yield f"http://127.0.0.1:{port}", process, root, log
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        print(f"mrc serve log:\n{log.read_text(errors='replace')}")


@pytest.fixture
def served_demo(tmp_path: Path) -> Iterator[str]:
    """``mrc serve --demo`` (read-only by default); yields its URL."""
    with serve_demo(tmp_path) as (url, *_):
        yield url


#: Where textual-serve's script creates its terminal (textual-serve 1.1.3).
TERMINAL_CREATED = "this.terminal.loadAddon(this.fitAddon)"
#: Reads the terminal's screen buffer, one line per row ("" before the terminal exists).
READ_SCREEN = """() => {
  const t = window.mrcTerminal;
  if (!t) return "";
  const b = t.buffer.active, rows = [];
  for (let i = 0; i < t.rows; i++) {
    const line = b.getLine(b.viewportY + i);
    rows.push(line ? line.translateToString(true) : "");
  }
  return rows.join("\\n");
}"""


def expose_terminal(page: Any) -> None:
    """Serve textual-serve's script with its terminal object exposed as ``window.mrcTerminal``."""

    def rewrite(route: Any) -> None:
        response = route.fetch()
        script = response.text()
        assert TERMINAL_CREATED in script, "textual-serve's script changed: update the hook"
        script = script.replace(
            TERMINAL_CREATED, f"(window.mrcTerminal=this.terminal),{TERMINAL_CREATED}", 1
        )
        route.fulfill(response=response, body=script)

    page.route("**/static/js/textual.js", rewrite)


def screen_text(page: Any) -> str:
    """Return the text the terminal shows, one line per row."""
    return str(page.evaluate(READ_SCREEN))


def wait_text(page: Any, text: str, what: str, timeout: float = 60) -> str:
    """Wait until the terminal shows ``text``; return the screen; fail showing the last one."""
    try:
        page.wait_for_function(
            f"t => ({READ_SCREEN})().includes(t)", arg=text, timeout=timeout * 1000
        )
    except Exception:
        shown = screen_text(page) or "(no terminal)"
        pytest.fail(f"{what}: {text!r} never appeared; the page showed:\n{shown}")
    return screen_text(page)


def test_serve_demo_in_chromium(browser: Any, served_demo: str, tmp_path: Path) -> None:
    """Commits first, `5` opens Drift with its score, `u` is refused read-only; screenshot."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        expose_terminal(page)
        page.goto(served_demo)
        wait_text(page, "mrc 1 Commits", "the Commits screen", timeout=90)
        wait_text(page, "v1.3.0", "the commit history")
        page.click(".xterm")
        page.keyboard.press("5")
        wait_text(page, "mrc 5 Drift", "the Drift screen")
        drift = wait_text(page, "drift now: ", "the drift score")
        assert "Drift" in drift
        page.keyboard.press("u")
        refused = wait_text(page, "read-only mode", "the read-only refusal of u")
        assert "refused" in refused
        directory = Path(os.environ.get("MRC_SCREENSHOT_DIR") or tmp_path)
        directory.mkdir(parents=True, exist_ok=True)
        shot = directory / SCREENSHOT_NAME
        page.screenshot(path=str(shot))
        assert shot.read_bytes().startswith(b"\x89PNG")
    finally:
        page.close()
