"""Every documented key, pressed on its screen: it acts, or it says why it cannot.

The keys come from the bindings of the app and of each screen class (what
``?`` lists) and from the README's key table; each is pressed in Pilot on the
screen where it is documented, and the test asserts what the operator sees
change: another screen, a panel or dialog, a notification, new text.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from textual.binding import Binding
from textual.widgets import Input, Static

from core.config import parse
from core.domain import RunStatus, TestRun
from core.journal import Journal
from core.services.workspace import Workspace
from tests.support.repos import git_env
from tests.support.targets import FIXED_NOW
from tests.tui.test_shell import screen_text
from tests.tui.test_shell import wait_for as _wait_for
from tui.app import SCREENS_ORDER, MrcApp, screen_class
from tui.screens.base import MrcScreen
from tui.screens.commits import PAGE_SIZE, CommitsScreen
from tui.screens.confirm import KEYS_HINT, REASON_KEYS_HINT, RollbackConfirm
from tui.screens.drift import DriftScreen
from tui.screens.help import HelpScreen
from tui.screens.progress import OperationScreen
from tui.screens.tests import ResultsScreen, TestsScreen
from tui.widgets.vtable import VirtualTable

README = Path(__file__).resolve().parents[2] / "README.md"


async def wait_for(pilot, predicate, tries: int = 400) -> None:  # type: ignore[no-untyped-def]
    """Wait (up to 20 s on a busy machine) until ``predicate()`` holds."""
    await _wait_for(pilot, predicate, tries)


# -- what is documented --------------------------------------------------------


def documented_bindings() -> list[tuple[str, str, str]]:
    """(screen name or "app", key, action) for every binding ``?`` lists."""
    found = []
    for binding in MrcApp.BINDINGS:
        assert isinstance(binding, Binding)
        found.append(("app", binding.key, binding.action))
    for name in SCREENS_ORDER:
        for binding in screen_class(name).BINDINGS:
            assert isinstance(binding, Binding)
            for key in binding.key.split(","):
                found.append((name, key.strip(), binding.action))
    return found


_README_KEY = {"?": "question_mark", ":": "colon", "/": "slash", "[": "left_square_bracket",
               "]": "right_square_bracket"}  # fmt: skip


def readme_keys() -> list[tuple[str, str]]:
    """(screen name or "app", key) for every key of the README's key table."""
    text = README.read_text()
    table = text[text.index("## Keys") :].split("\n\n")[1]
    where = "app"
    keys = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0]:
            where = "app" if cells[0] == "everywhere" else cells[0].lower()
        for key in re.findall(r"`([^`]+)`", cells[1]):
            if key == "1`…`5":
                continue
            keys.append((where, _README_KEY.get(key, key)))
        if "`1`…`5`" in cells[1]:
            keys.extend(("app", str(n)) for n in range(1, 6))
        for key in re.findall(r"`([^`]+)`", cells[2]):
            if key in ("ctrl+p", "q"):  # "?: every key binding; ctrl+p palette; q quit"
                keys.append((where, key))
    return keys


def test_every_readme_key_is_bound_on_its_screen() -> None:
    bound = {(where, key) for where, key, _ in documented_bindings()}
    bound.add(("app", "ctrl+p"))  # Textual's command palette
    missing = [k for k in readme_keys() if k not in bound]
    assert readme_keys() and not missing, f"README documents unbound keys: {missing}"


# -- a console with something behind every key -----------------------------------


def _record_run(workspace: Workspace, sha: str) -> None:
    start = FIXED_NOW - timedelta(hours=1)
    workspace.journal.record_test_run(
        TestRun(
            id=None,
            model="churn",
            commit=sha,
            status=RunStatus.PASSED,
            started_at=start,
            finished_at=start + timedelta(seconds=30),
            passed=3,
            metrics={"accuracy": 0.9},
        )
    )


async def settle(pilot, app: MrcApp) -> str:  # type: ignore[no-untyped-def]
    """Wait until the screen's data is in and its text holds still; return that text."""
    screen = app.screen
    if isinstance(screen, CommitsScreen):
        await wait_for(pilot, lambda: bool(screen.query_one(VirtualTable).rows))
    if isinstance(screen, MrcScreen):
        for selector in ("#tests-table", "#rollouts-table", "#rollbacks-history"):
            found = screen.query(selector)
            if found:
                await wait_for(pilot, lambda f=found: f.first().row_count > 0)  # type: ignore[misc]
    if "churn" in app.model_names():  # `u` opens at once once its preview is warm
        await wait_for(pilot, lambda: ("churn", "prod-eu") in app._previews)
    previous = None
    for _ in range(100):
        text = screen_text(app)
        if text == previous:
            return text
        previous = text
        await pilot.pause(0.1)
    return screen_text(app)


#: Keys that need something done first to have anything to act on.
SETUP: dict[tuple[str, str], tuple[str, ...]] = {
    ("app", "1"): ("2",),  # from another screen
    ("commits", "escape"): ("slash", *"change 1", "enter"),  # a search to clear
    ("rollbacks", "enter"): ("down",),  # a revision below the live one
}


@pytest.mark.parametrize(
    ("where", "key", "action"),
    documented_bindings(),
    ids=[f"{w}-{k}" for w, k, _ in documented_bindings()],
)
async def test_documented_key_acts_or_says_why(console, where: str, key: str, action: str) -> None:
    c = console()
    _record_run(c.workspace, c.repo_shas[-1])
    app = c.make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        if where != "app":
            await pilot.press(str(SCREENS_ORDER.index(where) + 1))
            await pilot.pause()
            assert isinstance(app.screen, screen_class(where))
        await settle(pilot, app)
        for setup_key in SETUP.get((where, key), ()):
            await pilot.press(setup_key)
        await pilot.pause()
        before_screen = app.screen
        app.set_paused(before_screen, True)  # live updates must not pass for the key's effect
        await app.workers.wait_for_complete()
        before = await settle(pilot, app)

        await pilot.press(key)

        def acted() -> bool:
            return (
                app.return_code is not None  # q
                or app.screen is not before_screen
                or screen_text(app) != before
            )

        try:
            await wait_for(pilot, acted)
        except AssertionError:
            raise AssertionError(
                f"{key!r} ({action}) on {where}: nothing visible happened\n{before}"
            ) from None


# -- screen keys from every panel; focus where the next key goes ---------------


PANELS: dict[str, tuple[str, ...]] = {
    "help": ("question_mark",),
    "commit diff": ("enter",),
    "test results": ("2", "enter"),
    "rollout detail": ("3", "enter"),
    "what was live when": ("4", "w"),
    "release progress": ("d", "y"),  # a release is confirmed with y
}


@pytest.mark.parametrize("panel", list(PANELS))
async def test_screen_keys_work_from_every_panel(console, panel: str) -> None:
    c = console()
    _record_run(c.workspace, c.repo_shas[-1])
    app = c.make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(pilot, app)
        for key in PANELS[panel]:
            await pilot.press(key)
            await settle(pilot, app)
        assert not isinstance(app.screen, MrcScreen), f"{panel} did not open"
        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(app.screen, DriftScreen))
        await pilot.press("1")  # the panel was closed, not left on top of Commits
        await wait_for(pilot, lambda: isinstance(app.screen, CommitsScreen))
        await pilot.pause()
        assert isinstance(app.screen, CommitsScreen)


async def test_progress_panel_takes_the_global_keys(console) -> None:
    """On the release panel `?` opens help and `u` the rollback dialog, as everywhere."""
    app = console().make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(pilot, app)
        await pilot.press("d", "y")  # a release is confirmed with y
        await wait_for(pilot, lambda: isinstance(app.screen, OperationScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, OperationScreen))
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, RollbackConfirm))


async def test_enter_after_t_opens_the_results(console) -> None:
    """`t` on a commit shows the Tests screen with its table focused: `enter` needs no `tab`."""
    c = console()
    app = c.make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(pilot, app)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TestsScreen))
        table = app.screen.query_one("#tests-table")
        await wait_for(pilot, lambda: table.row_count > 0)
        await wait_for(pilot, lambda: not app.ops.running())
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen))


# -- `u` without a target says why ----------------------------------------------


NO_TARGET = """
[[model]]
name = "lonely"
repo = "{repo}"
"""


async def test_u_without_a_target_says_why(console, tmp_path: Path) -> None:
    repo = console().workspace.config.models[0].repo
    config = parse(NO_TARGET.format(repo=repo), source=tmp_path / "mrc.toml")
    workspace = Workspace(config, journal=Journal(tmp_path / "j.sqlite3"), state_dir=tmp_path)
    app = MrcApp(workspace, clock=lambda: FIXED_NOW, animate=False)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        why = "lonely has no target in its configuration"
        line = app.screen.query_one("#key-reasons", Static)
        await wait_for(pilot, lambda: f"u: {why}" in str(line.render()))  # above the footer
        await pilot.press("u")
        await wait_for(pilot, lambda: "u: lonely has no target" in screen_text(app))  # a toast
        assert not isinstance(app.screen, RollbackConfirm)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        flat = " ".join(screen_text(app).split())
        assert "(disabled: lonely has no target" in flat, flat


# -- the rollback dialog: one meaning per key, said on screen ----------------


async def test_rollback_dialog_keys_are_unambiguous(console) -> None:
    """Outside the reason field `y` confirms; inside, `y` and `n` are text, `esc` leaves
    the field, and the hint line says which keys apply in each state."""
    c = console()
    target = c.targets[("churn", "prod-eu")]
    app = c.make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot, app)
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, RollbackConfirm))
        assert KEYS_HINT in screen_text(app)
        await pilot.press("r", *"yes, no drift")
        await pilot.pause()
        assert isinstance(app.screen, RollbackConfirm)
        assert app.screen.query_one("#reason", Input).value == "yes, no drift"
        assert REASON_KEYS_HINT in screen_text(app)
        await pilot.press("escape")  # leaves the field, keeps the dialog
        await pilot.pause()
        assert isinstance(app.screen, RollbackConfirm)
        assert KEYS_HINT in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: target.calls == [("rollback", 2)])
        await app.workers.wait_for_complete()
    [entry] = c.workspace.journal.entries(model="churn")
    assert entry.reason == "yes, no drift"


async def test_help_explains_the_rollback_dialog(console) -> None:
    app = console().make_app()
    async with app.run_test(size=(120, 80), notifications=True) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = screen_text(app)
        assert "Roll back dialog" in text
        assert "In the reason field: roll back with it" in text
        assert "esc in the reason field: leave the field" in text


# -- the Commits screen: end lands on the oldest commit ---------------------


def _long_repo(path: Path, commits: int) -> list[str]:
    """A linear history of ``commits`` empty commits made with fast-import; newest first."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    stream = []
    for i in range(commits):
        message = f"commit number {i}\n".encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(f"committer Ada <ada@example.com> {1_700_000_000 + i * 60} +0000\n".encode())
        stream.append(b"data %d\n%s\n" % (len(message), message))
    env = git_env()
    subprocess.run(
        ["git", "-C", str(path), "fast-import", "--quiet"], input=b"".join(stream), check=True,
        env=env,
    )  # fmt: skip
    out = subprocess.run(
        ["git", "-C", str(path), "rev-list", "main"], capture_output=True, check=True, env=env
    )
    return out.stdout.decode().split()


def _commits_app(tmp_path: Path, commits: int) -> tuple[MrcApp, list[str]]:
    shas = _long_repo(tmp_path / "long", commits)
    config = parse(f'[[model]]\nname = "long"\nrepo = "{tmp_path / "long"}"\n',
                   source=tmp_path / "mrc.toml")  # fmt: skip
    workspace = Workspace(config, journal=Journal(tmp_path / "j.sqlite3"), state_dir=tmp_path)
    return MrcApp(workspace, clock=lambda: FIXED_NOW, animate=False), shas


async def test_end_and_home_jump_to_the_oldest_and_newest_commit(tmp_path: Path) -> None:
    total = PAGE_SIZE * 3 + 7
    app, shas = _commits_app(tmp_path, total)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        table = app.screen.query_one(VirtualTable)
        await wait_for(pilot, lambda: len(table.rows) == PAGE_SIZE)
        await pilot.press("end")
        await wait_for(pilot, lambda: table.current is not None and table.cursor == total - 1)
        assert table.current.sha == shas[-1]
        assert "commit number 0" in screen_text(app)
        await pilot.press("home")
        await pilot.pause()
        assert table.cursor == 0 and table.current.sha == shas[0]
        await pilot.press("G")
        await wait_for(pilot, lambda: table.cursor == total - 1)
        await pilot.press("g")
        await wait_for(pilot, lambda: table.cursor == 0)
        await pilot.press("G", *["pageup"] * 12)  # up into rows not read yet: they load
        await wait_for(pilot, lambda: table.current is not None and table.cursor < total - 150)
        index = table.cursor
        assert table.current.sha == shas[index]
        assert all(row is None or row.sha == shas[i] for i, row in enumerate(table.rows))


async def test_page_presses_while_a_page_loads_are_kept(tmp_path: Path) -> None:
    total = PAGE_SIZE * 3
    app, shas = _commits_app(tmp_path, total)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        table = app.screen.query_one(VirtualTable)
        await wait_for(pilot, lambda: len(table.rows) == PAGE_SIZE)
        await settle(pilot, app)  # laid out: the page height is final
        page = table.size.height - 1
        presses = PAGE_SIZE // page + 6  # well past the first page
        await pilot.press(*["pagedown"] * presses)
        try:
            await wait_for(pilot, lambda: table.cursor == presses * page)
        except AssertionError:
            raise AssertionError(
                f"cursor {table.cursor}, wanted {presses} x {page}; {len(table.rows)} rows"
            ) from None
        assert table.current.sha == shas[presses * page]


# -- quitting never waits on a backend ------------------------------------------


class SilentServer:
    """A loopback HTTP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.asked = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read_request, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:  # read the request, then never answer
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        self.connections.append(conn)
        self.asked.set()

    def open_requests(self, connections: list[socket.socket]) -> int:
        """How many of ``connections`` the client still holds open (waiting for us)."""
        count = 0
        for conn in connections:
            conn.setblocking(False)
            try:
                data = conn.recv(65536, socket.MSG_PEEK)
            except BlockingIOError:
                count += 1  # open, and the client sent nothing more: still waiting
            except OSError:
                continue
            else:
                count += bool(data)  # b"": the client gave up and closed it
        return count

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
        self.sock.close()


HANGING_METRICS = """
[[model]]
name = "slow"
repo = "{repo}"

  [model.metrics]
  source = "prometheus"
  url = "http://127.0.0.1:{port}"
  timeout = "30s"
  prediction_histogram = "model_prediction_score"
"""


def test_quit_does_not_wait_for_a_hanging_metrics_request(console, tmp_path: Path) -> None:
    """`q` on the Drift screen while its Prometheus query hangs: the console's run (the
    event loop, as `mrc` runs it) ends while the request is still open, not after the
    query's timeout."""
    server = SilentServer()
    try:
        repo = console().workspace.config.models[0].repo
        config = parse(HANGING_METRICS.format(repo=repo, port=server.port),
                       source=tmp_path / "mrc.toml")  # fmt: skip
        workspace = Workspace(config, journal=Journal(tmp_path / "j.sqlite3"), state_dir=tmp_path)
        app = MrcApp(workspace, clock=lambda: FIXED_NOW, animate=False)

        async def session() -> None:
            async with app.run_test(size=(80, 24), notifications=True) as pilot:
                await pilot.press("5")
                await wait_for(pilot, lambda: server.asked.is_set())
                hanging.extend(server.connections)
                await pilot.press("q")
                await wait_for(pilot, lambda: app.return_code is not None)

        ran: list[BaseException | None] = []
        hanging: list[socket.socket] = []  # the requests in flight when `q` was pressed

        def run() -> None:  # asyncio.run, like App.run: the loop's executor is shut down
            try:
                asyncio.run(session())
                ran.append(None)
            except BaseException as error:  # pragma: no cover - reported below
                ran.append(error)

        runner = threading.Thread(target=run, daemon=True)
        runner.start()
        wait_until(lambda: bool(ran) or not runner.is_alive(), what="the console to end")
        assert ran == [None], ran
        assert app.return_code == 0
        assert hanging
        assert server.open_requests(hanging) == len(hanging), "quitting waited for a request"
    finally:
        server.close()


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Block until ``predicate()`` holds (polling an event, not sleeping blindly)."""
    done = threading.Event()
    for _ in range(int(timeout * 20)):
        if predicate():
            return
        done.wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_pagedown_through_history_keeps_only_rows_near_the_screen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Visiting a long history page by page holds a bounded window of rows, and rows
    dropped on the way load again (right ones) when the cursor comes back."""
    from tui.widgets import vtable

    monkeypatch.setattr(vtable, "MARGIN", 256)
    total = PAGE_SIZE * 5 + 3
    app, shas = _commits_app(tmp_path, total)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        table = app.screen.query_one(VirtualTable)
        await wait_for(pilot, lambda: len(table.rows) == PAGE_SIZE)
        await settle(pilot, app)
        page = table.size.height - 1
        await pilot.press(*["pagedown"] * (total // page + 1))
        await wait_for(pilot, lambda: table.complete and table.cursor == total - 1)
        assert table.current.sha == shas[-1]
        held = [i for i, row in enumerate(table.rows) if row is not None]
        assert len(held) <= 2 * 256 + page + 2 * vtable.CHUNK
        assert table.rows[0] is None  # the newest commits were dropped on the way
        await pilot.press("home")
        await wait_for(pilot, lambda: table.current is not None and table.cursor == 0)
        assert table.current.sha == shas[0]
        assert f"commit number {total - 1}" in screen_text(app)
        assert all(row is None or row.sha == shas[i] for i, row in enumerate(table.rows))
