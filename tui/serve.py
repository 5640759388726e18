"""``mrc serve``: the console in a browser, served by textual-serve.

textual-serve starts one console process per browser connection, with the
command line built here: the same configuration file and journal as the
terminal console, read-only unless the operator allowed changes. Each
browser is a separate operator: its changes are journalled with the serving
user "via browser" (``MRC_VIA=browser``, read by :func:`core.audit.whoami`),
and a change made meanwhile by another browser or terminal is a conflict.

Safety rules, checked before anything is served:

* loopback only unless ``--host`` names another address;
* read-only unless ``--allow-changes``;
* bound to a non-loopback address, it refuses to start unless the operator
  said ``--read-only`` or ``--allow-changes`` explicitly.

textual-serve (and its web server) is imported only here, when serving.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import os
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from core.audit import VIA_VARIABLE

#: The value of ``MRC_VIA`` for consoles started by ``mrc serve``.
VIA_BROWSER = "browser"


class ServeRefused(Exception):
    """``mrc serve`` will not start: the message says why and what to pass instead."""


class AddressInUse(Exception):
    """The host and port cannot be bound (another program listens there)."""


@dataclass(frozen=True, slots=True)
class ServePlan:
    """What ``mrc serve`` serves: where, and the command each connection runs."""

    host: str
    port: int
    read_only: bool
    command: str
    """The shell command textual-serve runs per connection (one console)."""

    @property
    def url(self) -> str:
        """Return the address to open in a browser."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """Return True when ``host`` is ``localhost`` or a loopback IP address."""
    if host.strip().lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def decide_read_only(host: str, *, read_only: bool, allow_changes: bool) -> bool:
    """Return whether the served consoles are read-only.

    Read-only unless ``allow_changes``. Raises ServeRefused when both flags
    are given, or when ``host`` is not a loopback address and neither flag
    was given explicitly.
    """
    if read_only and allow_changes:
        raise ServeRefused("--read-only and --allow-changes contradict each other: pass one")
    if not is_loopback(host) and not (read_only or allow_changes):
        raise ServeRefused(
            f"refusing to serve on {host}, which is not a loopback address, without an "
            "explicit choice: anyone who can reach it could change targets. Pass "
            "--read-only to let them watch, or --allow-changes to let them act."
        )
    return not allow_changes


def console_command(config: str | None, *, read_only: bool, python: str = sys.executable) -> str:
    """Return the shell command that opens one console, as textual-serve runs it."""
    argv: list[str] = [python, "-m", "tui.cli"]
    if config is not None:
        argv += ["--config", str(Path(config).resolve())]
    if read_only:
        argv.append("--read-only")
    return shlex.join(argv)


def check_address(host: str, port: int) -> None:
    """Bind ``host``:``port`` once and release it. Raises AddressInUse when that fails."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise AddressInUse(f"cannot resolve {host}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise AddressInUse(
                    f"port {port} on {host} is already in use: pass --port with a free port"
                ) from None
            raise AddressInUse(f"cannot listen on {host}:{port}: {error.strerror}") from None


def serve(plan: ServePlan, *, title: str = "mrc") -> None:
    """Serve ``plan`` until interrupted (Ctrl-C or SIGTERM).

    Sets ``MRC_VIA=browser`` for every console started. Raises AddressInUse
    when the address cannot be bound.
    """
    from textual_serve.server import Server

    os.environ[VIA_VARIABLE] = VIA_BROWSER
    # textual-serve logs at INFO; the demo's metrics requests would flood the terminal.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    server = Server(plan.command, host=plan.host, port=plan.port, title=title)
    try:
        server.serve()
    except OSError as error:
        raise AddressInUse(f"cannot listen on {plan.host}:{plan.port}: {error}") from None


def refuse(message: str) -> None:
    """Print ``message`` (sanitised) in red on stderr, prefixed ``mrc:``."""
    from rich.console import Console
    from rich.text import Text

    from tui.cli.output import inert

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        Text(f"mrc: {inert(message)}", style="bold red")
    )


def run_serve(args: argparse.Namespace) -> int:
    """Run ``mrc serve``; return the exit code (documented in :mod:`tui.cli.output`).

    2: refused by the safety rules or an invalid configuration (the same
    message as the terminal console); 3: the address cannot be bound.
    With ``--demo`` the sandbox is built and started first, then served.
    """
    from core.errors import ConfigError, MrcError
    from tui.cli.output import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE

    try:
        read_only = decide_read_only(
            args.host, read_only=args.read_only, allow_changes=args.allow_changes
        )
        check_address(args.host, args.port)
    except ServeRefused as error:
        refuse(str(error))
        return EXIT_USAGE
    except AddressInUse as error:
        refuse(str(error))
        return EXIT_UNAVAILABLE

    try:
        if args.demo:
            return _serve_demo(args, read_only)
        from core.services.workspace import Workspace

        # The same checks, and the same messages, as the terminal console, before serving.
        Workspace.open(args.config, read_only=read_only).close()
        _serve_announced(
            ServePlan(
                args.host, args.port, read_only, console_command(args.config, read_only=read_only)
            )
        )
    except ConfigError as error:
        from tui.cli.output import Streams

        Streams.std().say(f"mrc: {error}")
        return EXIT_USAGE
    except MrcError as error:
        refuse(str(error))
        return EXIT_USAGE
    except AddressInUse as error:
        refuse(str(error))
        return EXIT_UNAVAILABLE
    return EXIT_OK


def _serve_demo(args: argparse.Namespace, read_only: bool) -> int:
    """Build and start the demo sandbox, then serve consoles on its configuration."""
    from core.config import load_file
    from core.demo import build_sandbox
    from core.services.workspace import Workspace

    print("mrc: building the demo sandbox…", file=sys.stderr, flush=True)
    sandbox = build_sandbox(args.dir)
    os.environ["MRC_STATE_DIR"] = str(sandbox.state_dir)
    config = load_file(sandbox.config)
    workspace = Workspace(config, state_dir=sandbox.state_dir)
    background = sandbox.start_background(workspace)
    try:
        _serve_announced(
            ServePlan(
                args.host,
                args.port,
                read_only,
                console_command(str(sandbox.config), read_only=read_only),
            )
        )
    finally:
        background.stop()
        workspace.close()
    return 0


def _serve_announced(plan: ServePlan) -> None:
    """Say where the console is served and in which mode, then serve it."""
    mode = "read-only" if plan.read_only else "changes allowed"
    print(f"mrc: serving the console on {plan.url} ({mode})", file=sys.stderr, flush=True)
    serve(plan)
