"""Running a scripting command: open the workspace, run the command, map errors to exit codes.

The exit codes and output are documented in :mod:`tui.cli.output`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.cancel import CancelToken
from core.errors import MrcError
from tui import gc_pause
from tui.cli.output import Streams, exit_code_for
from tui.cli.preflight import require_configuration
from tui.cli.prompts import sigint_cancels

if TYPE_CHECKING:
    from core.services.workspace import Workspace

#: A command with its arguments bound: ``body(ws, streams, cancel)`` returns the exit code.
Body = Callable[["Workspace", Streams, CancelToken], int]


def _open_workspace(args: argparse.Namespace) -> Workspace:
    """Return the workspace of ``--config`` / ``--read-only``.

    Raises ConfigError when the file is invalid, MissingConfiguration when
    there is none.
    """
    from core.services.workspace import Workspace

    ws = Workspace.open(args.config, read_only=args.read_only)
    try:
        require_configuration(ws)
    except MrcError:
        ws.close()
        raise
    return ws


def run_command(
    body: Body,
    args: argparse.Namespace,
    *,
    streams: Streams | None = None,
    workspace: Workspace | None = None,
    as_json: bool = False,
) -> int:
    """Run ``body(ws, streams, cancel)`` with Ctrl-C cancelling; return its exit code.

    ``ws`` is ``workspace``, else the one ``args`` names (opened here and
    closed afterwards). An MrcError or a second Ctrl-C is printed on stderr as
    ``mrc: <message>`` and mapped to its exit code; with ``as_json``, unless
    the command already wrote its document, stdout gets ``{"error": <message>}``.
    Nothing else is caught.
    """
    streams = streams or Streams.std()
    cancel = CancelToken()
    ws = workspace
    try:
        if ws is None:
            ws = _open_workspace(args)
        gc_pause.release()
        with sigint_cancels(cancel, streams.err):
            return body(ws, streams, cancel)
    except (MrcError, KeyboardInterrupt) as exc:
        text = "cancelled" if isinstance(exc, KeyboardInterrupt) else str(exc)
        streams.say(f"mrc: {text}")
        if as_json and not streams.wrote_json:
            streams.json({"error": text})
        return exit_code_for(exc)
    finally:
        if ws is not None and workspace is None:
            ws.close()


def _status(a: argparse.Namespace) -> Body:
    from tui.cli.status import cmd_status

    return lambda ws, s, c: cmd_status(ws, s, as_json=a.json)


def _history(a: argparse.Namespace) -> Body:
    from tui.cli.history import cmd_history

    return lambda ws, s, c: cmd_history(ws, s, a.model, target=a.target, as_json=a.json)


def _test(a: argparse.Namespace) -> Body:
    from tui.cli.test import cmd_test

    return lambda ws, s, c: cmd_test(ws, s, a.model, a.commit, as_json=a.json, cancel=c)


def _release(a: argparse.Namespace) -> Body:
    from tui.cli.release import cmd_release

    return lambda ws, s, c: cmd_release(
        ws, s, a.model, a.commit, target=a.target, reason=a.reason, yes=a.yes,
        confirm_name=a.confirm_name, as_json=a.json, cancel=c,
    )  # fmt: skip


def _rollback(a: argparse.Namespace) -> Body:
    from tui.cli.rollback import cmd_rollback

    return lambda ws, s, c: cmd_rollback(
        ws, s, a.model, target=a.target, to_revision=a.to_revision, reason=a.reason,
        yes=a.yes, confirm_name=a.confirm_name, as_json=a.json, cancel=c, wait=a.wait,
    )  # fmt: skip


def _retrain(a: argparse.Namespace) -> Body:
    from tui.cli.retrain import cmd_retrain

    return lambda ws, s, c: cmd_retrain(
        ws, s, a.model, commit=a.commit, window=a.window, reason=a.reason, yes=a.yes,
        as_json=a.json, cancel=c,
    )  # fmt: skip


def _doctor(a: argparse.Namespace) -> Body:
    from tui.cli.doctor import cmd_doctor

    return lambda ws, s, c: cmd_doctor(ws, s, as_json=a.json)


def _alerts(a: argparse.Namespace) -> Body:
    from tui.cli.alerts import cmd_alerts

    return lambda ws, s, c: cmd_alerts(ws, s, model=a.model, as_json=a.json)


def _watch(a: argparse.Namespace) -> Body:
    from tui.cli.watch import cmd_watch

    host, port = a.listen
    return lambda ws, s, c: cmd_watch(ws, s, host=host, port=port, interval=a.interval, cancel=c)


def _rules(a: argparse.Namespace) -> Body:
    from tui.cli.rules import cmd_rules

    return lambda ws, s, c: cmd_rules(ws, s, out=a.out, for_=a.for_)


#: Each command of :data:`tui.cli.parser.SCRIPT_COMMANDS` and ``EXPORTER_COMMANDS`` and how its
#: parsed arguments become a :data:`Body` (each imports only its own command module).
COMMANDS: dict[str, Callable[[argparse.Namespace], Body]] = {
    "status": _status,
    "history": _history,
    "test": _test,
    "release": _release,
    "rollback": _rollback,
    "retrain": _retrain,
    "doctor": _doctor,
    "watch": _watch,
    "rules": _rules,
    "alerts": _alerts,
}


def run_script(args: argparse.Namespace) -> int:
    """Run the scripting command ``args.command`` on the process' streams; return its exit code."""
    return run_command(COMMANDS[args.command](args), args, as_json=args.json)
