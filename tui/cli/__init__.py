"""Command-line entry point ``mrc``.

``mrc`` opens the console; ``mrc demo`` builds the sandbox and opens the
console on it; the scripting commands (status, history, test, release,
rollback, doctor) are defined in :mod:`tui.cli.commands`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

from core import __version__

#: Subcommands defined in tui.cli.commands (imported only when one is used).
SCRIPT_COMMANDS = frozenset({"status", "history", "test", "release", "rollback", "doctor"})


def build_parser(*, scripting: bool = True) -> argparse.ArgumentParser:
    """Return the argument parser of ``mrc`` and its subcommands.

    With ``scripting`` False the scripting subcommands are left out, which
    keeps their imports off the path to the console's first frame.
    """
    parser = argparse.ArgumentParser(
        prog="mrc",
        description="Model Release Console: commits, tests, images, rollouts, rollback, drift.",
    )
    parser.add_argument("--version", action="version", version=f"mrc {__version__}")
    parser.add_argument("--config", metavar="PATH", help="configuration file (TOML)")
    parser.add_argument(
        "--read-only", action="store_true", help="disable every action that changes a target"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = subparsers.add_parser(
        "demo", help="build the demo sandbox (model repo, server, traffic) and open the console"
    )
    demo.add_argument("--dir", type=Path, default=None, help="sandbox directory (default: temp)")
    demo.add_argument(
        "--no-console", action="store_true", help="build and start the sandbox, print its config"
    )
    if scripting:
        from tui.cli.commands import add_script_commands

        add_script_commands(subparsers)
    return parser


def _install_hangup_handler(app: Any) -> None:
    """Quit cleanly (stopping local model servers) when the terminal or SSH session closes."""

    def hangup(signum: int, frame: object) -> None:
        # The terminal is gone: Textual's shutdown would write to it and can block for
        # good (its input thread is not a daemon, so raising SystemExit hangs at exit
        # too). Stop the processes this console started, then die of the signal.
        from core import procs

        procs.run_cleanups()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def terminate(signum: int, frame: object) -> None:
        import asyncio  # already loaded by Textual when the console runs

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the console is not running (yet or any more)
            raise SystemExit(128 + signum) from None
        # The terminal is still there: let the app shut down (and restore it) from its loop.
        loop.call_soon_threadsafe(partial(app.exit, None, 128 + signum))

    signal.signal(signal.SIGHUP, hangup)
    signal.signal(signal.SIGTERM, terminate)


def run_console(workspace: Any, data_shift: Any = None) -> int:
    """Open the console on ``workspace``; return the exit code when it closes."""
    from tui.app import MrcApp

    app = MrcApp(workspace, data_shift=data_shift)
    _install_hangup_handler(app)
    try:
        app.run()
    finally:
        workspace.close()
    return app.return_code or 0


def open_console(args: argparse.Namespace) -> int:
    """Load the configuration and open the console; 2 on an invalid configuration."""
    from core.errors import ConfigError
    from core.services.workspace import Workspace

    try:
        workspace = Workspace.open(args.config, read_only=args.read_only)
    except ConfigError as error:
        print(f"mrc: {error}", file=sys.stderr)
        return 2
    return run_console(workspace)


def run_demo(args: argparse.Namespace) -> int:
    """Build the demo sandbox, start its server and traffic, open the console on it."""
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
    background = sandbox.start_background(workspace)
    try:
        if args.no_console:
            print(sandbox.config)
            return 0
        return run_console(workspace, data_shift=sandbox.set_data_shift)
    finally:
        background.stop()


def main(argv: list[str] | None = None) -> int:
    """Run ``mrc``; return the process exit code."""
    words = sys.argv[1:] if argv is None else argv
    scripting = any(word in SCRIPT_COMMANDS or word in ("-h", "--help") for word in words)
    args = build_parser(scripting=scripting).parse_args(argv)
    if args.command is None:
        return open_console(args)
    if args.command == "demo":
        from core.errors import MrcError

        try:
            return run_demo(args)
        except MrcError as error:
            print(f"mrc: {error}", file=sys.stderr)
            return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
