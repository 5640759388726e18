"""Questions the scripting commands ask on the terminal, and Ctrl-C while they run."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

from core.cancel import CancelToken
from tui.cli.output import Streams, UsageError


def confirm(
    streams: Streams,
    question: str,
    *,
    yes: bool,
    typed: str = "",
    interactive: bool | None = None,
) -> None:
    """Ask ``question`` on stderr and read the answer; return when confirmed.

    With ``yes`` nothing is asked. ``typed`` (production targets) must be
    typed exactly instead of "y". ``interactive`` says whether stdin is a
    terminal (None: ask ``streams.inp``). Raises UsageError when stdin is not
    a terminal (scripts must pass ``--yes``) or the answer is not a yes.
    """
    if yes:
        return
    if interactive is None:
        interactive = streams.inp.isatty()
    if not interactive:
        raise UsageError("confirmation needed but stdin is not a terminal: pass --yes")
    if typed:
        streams.err.write(f"{question}\nType the model name ({typed}) to confirm: ")
    else:
        streams.err.write(f"{question} [y/N] ")
    streams.err.flush()
    answer = streams.inp.readline().strip()
    if (typed and answer != typed) or (not typed and answer.lower() not in ("y", "yes")):
        raise UsageError("not confirmed: nothing was changed")


@contextmanager
def sigint_cancels(cancel: CancelToken, err: TextIO | None = None) -> Iterator[None]:
    """While active, the first Ctrl-C sets ``cancel``; the second raises KeyboardInterrupt.

    The first one also says so on ``err`` (default: stderr). Only in the main
    thread (signal handlers cannot be installed elsewhere); yields nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        print("cancelling… (Ctrl-C again to abort)", file=err or sys.stderr, flush=True)
        cancel.cancel()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
