"""Questions the scripting commands ask on the terminal, and Ctrl-C while they run.

What is asked comes from :mod:`core.services.action_table` (the same rule
the console's dialogs follow); how it is answered in a script is this
module's: ``--yes`` for ``y``, ``--confirm MODEL`` always, and ``--yes``
alone never on a production target.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from core.cancel import CancelToken
from core.services.action_table import Confirmation
from tui.cli.output import Streams, UsageError

if TYPE_CHECKING:
    from core.services.action_table import Decision


def confirmed_by_flags(
    decision: Decision, *, yes: bool = False, confirm_name: str | None = None
) -> bool:
    """Return True when the action ``decision`` describes needs no further question.

    That is when the table asks no confirmation for it, or ``--yes`` /
    ``--confirm NAME`` confirm it. Commands call it before reading the
    target, so a refusal comes first. Raises UsageError when
    ``confirm_name`` is not the model's name, and when ``yes`` alone is
    given for a production target (scripts confirm those with the name).
    """
    model = decision.model
    if confirm_name is not None and confirm_name != model:
        raise UsageError(
            f"--confirm {confirm_name!r} is not the model's name {model!r}: nothing was changed"
        )
    if decision.confirmation is Confirmation.NONE or confirm_name is not None:
        return True
    if yes and decision.production:
        raise UsageError(
            f"--yes is not enough on a production target: pass --confirm {model} "
            "(the model's name) to confirm; nothing was changed"
        )
    return yes


def confirm(
    streams: Streams,
    question: str,
    decision: Decision,
    *,
    yes: bool = False,
    confirm_name: str | None = None,
    interactive: bool | None = None,
) -> None:
    """Return when the change ``question`` describes is confirmed; ask on a terminal if needed.

    ``decision`` (:func:`core.services.action_table.check`) says how: no
    question, ``y``, or the model's name typed. ``confirm_name``
    (``--confirm NAME``) confirms on any target when it is the model's
    name; ``yes`` (``--yes``) on a non-production target only (see
    :func:`confirmed_by_flags`). Otherwise the question is asked on stderr.
    ``interactive`` says whether stdin is a terminal (None: ask
    ``streams.inp``). Raises UsageError, before anything changes, when a
    flag is wrong (see :func:`confirmed_by_flags`), when stdin is not a
    terminal and no flag confirms, or when the answer is not a yes.
    """
    if confirmed_by_flags(decision, yes=yes, confirm_name=confirm_name):
        return
    model = decision.model
    if interactive is None:
        interactive = streams.inp.isatty()
    if not interactive:
        flag = f"--confirm {model}" if decision.production else "--yes"
        raise UsageError(f"confirmation needed but stdin is not a terminal: pass {flag}")
    type_name = decision.confirmation is Confirmation.NAME
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
