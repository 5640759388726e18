"""Command-line front end ``mrc``.

``mrc`` opens the console; ``mrc demo`` builds the sandbox and opens the
console on it (:mod:`tui.cli.console`); the scripting commands status,
history, test, release, rollback, retrain and doctor have one module each, run by
:mod:`tui.cli.runner`. Their output and exit codes are documented in
:mod:`tui.cli.output`. The arguments are declared in :mod:`tui.cli.parser`.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run ``mrc`` with ``argv`` (default: the process' arguments); return the exit code.

    Only the front end the command needs is imported: opening the console
    loads no scripting command, a scripting command no console.
    """
    from tui import gc_pause

    gc_pause.hold()  # until the command starts its work (see tui.gc_pause)
    try:
        return _run(argv)
    finally:
        gc_pause.release()


def _run(argv: list[str] | None) -> int:
    """Parse ``argv`` and run the command it names; return the exit code."""
    from tui import gc_pause
    from tui.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    if args.command is None:
        from tui.cli.console import open_console

        return open_console(args)
    if args.command == "demo":
        from core.errors import MrcError
        from tui.cli.console import run_demo

        try:
            return run_demo(args)
        except MrcError as error:
            from tui.cli.output import EXIT_USAGE, Streams

            Streams.std().say(f"mrc: {error}")
            return EXIT_USAGE
    if args.command == "serve":
        from tui.serve import run_serve

        gc_pause.release()
        return run_serve(args)
    from tui.cli.runner import run_script

    return run_script(args)
