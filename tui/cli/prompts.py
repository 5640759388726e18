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


def confirmed_by_flags(
    *, model: str, production: bool, yes: bool = False, confirm_name: str | None = None
) -> bool:
    """Return True when ``--yes`` / ``--confirm NAME`` confirm a change of ``model``.

    Commands call it before reading the target, so a refusal comes first.
    Raises UsageError when ``confirm_name`` is not ``model`` or when ``yes``
    alone is given for a ``production`` target.
    """
    if confirm_name is not None:
        if confirm_name != model:
            raise UsageError(
                f"--confirm {confirm_name!r} is not the model's name {model!r}: nothing was changed"
            )
        return True
    if yes and production:
        raise UsageError(
            f"--yes is not enough on a production target: pass --confirm {model} "
            "(the model's name) to confirm; nothing was changed"
        )
    return yes


def confirm(
    streams: Streams,
    question: str,
    *,
    model: str,
    production: bool,
    yes: bool = False,
    confirm_name: str | None = None,
    type_name: bool = False,
    interactive: bool | None = None,
) -> None:
    """Return when the change ``question`` describes is confirmed; ask on a terminal if needed.

    ``confirm_name`` (``--confirm NAME``) confirms on any target when it is
    ``model``. ``yes`` (``--yes``) confirms on a non-production target only
    (see :func:`confirmed_by_flags`). Otherwise the question is asked on
    stderr: with ``type_name`` the model's name must be typed, else "y".
    ``interactive`` says whether stdin is a terminal (None: ask
    ``streams.inp``). Raises UsageError, before anything changes, when
    ``confirm_name`` is not the model's name, when ``yes`` is given for a
    ``production`` target, when stdin is not a terminal and neither flag
    confirms, or when the answer is not a yes.
    """
    if confirmed_by_flags(model=model, production=production, yes=yes, confirm_name=confirm_name):
        return
    if interactive is None:
        interactive = streams.inp.isatty()
    if not interactive:
        flag = f"--confirm {model}" if production else "--yes"
        raise UsageError(f"confirmation needed but stdin is not a terminal: pass {flag}")
    if type_name:
        streams.ask(f"{question}\nType the model name ({model}) to confirm: ")
    else:
        streams.ask(f"{question} [y/N] ")
    answer = streams.inp.readline().strip()
    if (type_name and answer != model) or (not type_name and answer.lower() not in ("y", "yes")):
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
