"""``mrc`` and ``mrc demo``: open the console, on the configured workspace or the demo sandbox."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.services.workspace import Workspace
    from tui.app import MrcApp, Starting


def _install_hangup_handler(app: MrcApp) -> None:
    """Quit cleanly (stopping local model servers) when the terminal or SSH session closes."""

    def hangup(signum: int, frame: FrameType | None) -> None:
        # The terminal is gone: Textual's shutdown would write to it and can block for
        # good (its input thread is not a daemon, so raising SystemExit hangs at exit
        # too). Stop the processes this console started, then die of the signal.
        from core import procs

        app.stop_operations()  # cancel running changes; their journal rows close (bounded)
        procs.run_cleanups()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def terminate(signum: int, frame: FrameType | None) -> None:
        import asyncio  # already loaded by Textual when the console runs

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the console is not running (yet or any more)
            raise SystemExit(128 + signum) from None
        # The terminal is still there: let the app shut down (and restore it) from its loop.
        loop.call_soon_threadsafe(partial(app.exit, None, 128 + signum))

    signal.signal(signal.SIGHUP, hangup)
    signal.signal(signal.SIGTERM, terminate)


def run_console(
    workspace: Workspace,
    data_shift: Callable[[bool], None] | None = None,
    starting: Starting | None = None,
) -> int:
    """Open the console on ``workspace``; return the exit code when it closes.

    ``data_shift`` switches the demo traffic's input shift and ``starting`` is
    the demo's release still starting (both None outside the demo). The
    workspace is closed afterwards.
    """
    from tui.app import MrcApp

    app = MrcApp(workspace, data_shift=data_shift, starting=starting)
    _install_hangup_handler(app)
    try:
        app.run()
    finally:
        workspace.close()
    return app.return_code or 0


def open_console(args: argparse.Namespace) -> int:
    """Load the configuration and open the console; return 2 on an invalid configuration."""
    from core.errors import ConfigError
    from core.services.workspace import Workspace

    try:
        workspace = Workspace.open(args.config, read_only=args.read_only)
    except ConfigError as error:
        from tui.cli.output import EXIT_USAGE, Streams

        Streams.std().say(f"mrc: {error}")
        return EXIT_USAGE
    return run_console(workspace)


def run_demo(args: argparse.Namespace) -> int:
    """Build the demo sandbox, start its server and traffic, open the console on it.

    The server and traffic start in the background while the console opens;
    the console says so if they fail. Returns the console's exit code (0
    with ``--no-console``, after printing the sandbox's config path, once
    the server and traffic run). Raises MrcError when the sandbox cannot be
    built (and, with ``--no-console``, when its release cannot start).
    """
    from core.config import load_file
    from core.demo import build_sandbox
    from core.services.workspace import Workspace

    print("mrc: building the demo sandbox…", file=sys.stderr)
    sandbox = build_sandbox(args.dir)
    os.environ["MRC_STATE_DIR"] = str(sandbox.state_dir)
    config = load_file(sandbox.config)
    if args.read_only:
        config = config.with_read_only(True)
    workspace = Workspace(config, state_dir=sandbox.state_dir)
    # The release and the traffic start while the console draws its first screens.
    background = sandbox.start_background(workspace, wait=False)
    try:
        if args.no_console:
            background.wait()
            print(sandbox.config)
            return 0
        return run_console(workspace, data_shift=sandbox.set_data_shift, starting=background)
    finally:
        background.stop()
