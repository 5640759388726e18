"""The argument parser of ``mrc``: global options, ``demo`` and the scripting commands.

Building it imports nothing but argparse, so the console's first frame does
not wait for the scripting commands; :mod:`tui.cli.runner` binds each
scripting command's arguments to its implementation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core import __version__

#: The scripting commands (run by :func:`tui.cli.runner.run_script`).
SCRIPT_COMMANDS = (
    "status", "history", "test", "release", "rollback", "retrain", "doctor", "alerts",
)  # fmt: skip
#: The exporter and its alerting rules (run by :func:`tui.cli.runner.run_script`, no ``--json``).
EXPORTER_COMMANDS = ("watch", "rules")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``mrc`` and all its subcommands.

    ``command`` is None (open the console), "demo", "serve" or one of SCRIPT_COMMANDS.
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
    _add_serve_command(subparsers)
    _add_script_commands(subparsers)
    _add_exporter_commands(subparsers)
    return parser


def _add_serve_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve``: the console in a browser (see :mod:`tui.serve`)."""
    serve = subparsers.add_parser(
        "serve", help="serve the console to browsers (read-only unless --allow-changes)"
    )
    serve.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; another address needs "
        "--read-only or --allow-changes)",
    )  # fmt: skip
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--read-only", action="store_true", default=argparse.SUPPRESS,
        help="browsers may only watch (the default; say it to serve beyond loopback)",
    )  # fmt: skip
    serve.add_argument(
        "--allow-changes", action="store_true",
        help="browsers may change targets (journalled as the serving user via browser)",
    )  # fmt: skip
    serve.add_argument(
        "--demo", action="store_true", help="build and start the demo sandbox and serve it"
    )
    serve.add_argument(
        "--dir", type=Path, default=None, help="with --demo: sandbox directory (default: temp)"
    )


def _listen_address(text: str) -> tuple[str, int]:
    """Return ``(host, port)`` of ``HOST:PORT`` (``[::1]:9464`` for IPv6; port 0: any free).

    Raises ArgumentTypeError for anything else.
    """
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _duration(text: str) -> float:
    """Return the seconds of a duration (:mod:`core.durations`); raises ArgumentTypeError."""
    from core.durations import DurationError, parse

    try:
        return parse(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _add_exporter_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``watch`` (the Prometheus exporter) and ``rules`` (alerting rules for it).

    Both run through :func:`tui.cli.runner.run_script` (without ``--json``).
    """
    watch = subparsers.add_parser(
        "watch", help="serve every model's drift, guard and live revision on /metrics"
    )
    watch.add_argument(
        "--listen", type=_listen_address, default=("127.0.0.1", 9464), metavar="HOST:PORT",
        help="address to serve /metrics on (default: 127.0.0.1:9464; port 0: any free port)",
    )  # fmt: skip
    watch.add_argument(
        "--interval", type=_duration, default=15.0, metavar="DURATION",
        help="time between two evaluations (default: 15s)",
    )  # fmt: skip
    rules = subparsers.add_parser(
        "rules", help="write Prometheus alerting rules for every model (checked by promtool)"
    )
    rules.add_argument(
        "--out", type=Path, default=None, metavar="FILE",
        help="rule file to write (default: stdout); written only when promtool accepts it",
    )  # fmt: skip
    rules.add_argument(
        "--for", type=_duration, default=300.0, dest="for_", metavar="DURATION",
        help="how long a condition must hold before its alert fires (default: 5m)",
    )  # fmt: skip
    for p in (watch, rules):
        p.set_defaults(json=False)


def _add_script_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the subcommands of SCRIPT_COMMANDS with their arguments."""

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, help=help)

    def target(p: argparse.ArgumentParser) -> None:
        p.add_argument("--target", "-t", default=None)

    def mutating(p: argparse.ArgumentParser) -> None:
        p.add_argument("--reason", default="", help="why (recorded in the journal)")
        p.add_argument(
            "--yes", "-y", action="store_true",
            help="do not ask for confirmation (not enough on a production target)",
        )  # fmt: skip
        p.add_argument(
            "--confirm", metavar="MODEL", default=None, dest="confirm_name",
            help="confirm by the model's name, without asking (needed on production targets)",
        )  # fmt: skip

    add("status", "live state of every model on every target")

    p = add("history", "revision history and audit trail of a model")
    p.add_argument("model")
    target(p)

    p = add("test", "run a model's tests at a commit")
    p.add_argument("model")
    p.add_argument("commit", nargs="?", default="HEAD")

    p = add("release", "test, build, push, roll out and verify a commit")
    p.add_argument("model")
    p.add_argument("commit")
    target(p)
    mutating(p)

    p = add("rollback", "roll a model back to a previous revision")
    p.add_argument("model")
    target(p)
    p.add_argument("--to", type=int, default=None, metavar="REVISION", dest="to_revision")
    p.add_argument(
        "--no-wait", action="store_false", dest="wait",
        help="exit once the API server accepted the rollback, without waiting for the "
        "rollout to complete (Kubernetes targets)",
    )  # fmt: skip
    mutating(p)

    p = add("retrain", "retrain a model on recent data: a commit on a retrain/ branch")
    p.add_argument("model")
    p.add_argument(
        "--window", type=_duration, default=None, metavar="DURATION",
        help="how much recent data to train on (default: [model.retrain] window)",
    )  # fmt: skip
    p.add_argument(
        "--commit", default=None, metavar="REF",
        help="start from this commit (default: the deployed one, else HEAD)",
    )  # fmt: skip
    p.add_argument("--reason", default="", help="why (recorded in the journal and the commit)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    add("doctor", "check that every configured backend answers")

    p = add("alerts", "the Alertmanager alerts of the configured models")
    p.add_argument("model", nargs="?", default=None, help="only this model's alerts")

    for name in SCRIPT_COMMANDS:
        subparsers.choices[name].add_argument(
            "--json", action="store_true", help="print one JSON document on stdout"
        )
