"""What the scripting CLI writes: inert text, ASCII JSON, one exit-code table."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import (
    BackendUnavailable,
    ConfigError,
    Conflict,
    NotFound,
    OperationFailed,
    PermissionDenied,
    ReadOnly,
)
from core.git import NotARepository
from core.services.action_table import ACTIONS, Confirmation, Decision
from tui.cli.output import (
    EXIT_CANCELLED,
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_PERMISSION,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    MissingConfiguration,
    Streams,
    UsageError,
    exit_code_for,
)
from tui.cli.prompts import confirm

#: Text biased towards what terminals interpret: escape introducers, controls, bidi.
hostile_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("\x1b\x07\x9b\x9d\x90\r\n\t\x00\x7f\u202e\u2066[]@;0123m"),
        st.characters(),
    ),
    max_size=300,
)

FORBIDDEN = {chr(c) for c in range(0x20) if c not in (0x0A,)} | {chr(c) for c in range(0x7F, 0xA0)}


def streams(answer: str = "") -> Streams:
    return Streams(io.StringIO(), io.StringIO(), io.StringIO(answer))


@given(hostile_text)
def test_no_text_line_carries_a_control_character(text: str) -> None:
    s = streams()
    s.result(text)
    s.say(f"mrc: {text}")
    s.ask(text)
    written = s.out.getvalue() + s.err.getvalue()
    assert not FORBIDDEN & set(written), repr(written)
    assert "\u202e" not in written and "\u2066" not in written


@given(hostile_text)
def test_json_keeps_the_value_and_writes_ascii(text: str) -> None:
    s = streams()
    s.json({"value": text})
    out = s.out.getvalue()
    out.encode("ascii")
    assert json.loads(out) == {"value": text}
    assert s.wrote_json


def test_an_escape_sequence_is_shown_as_a_mark_not_dropped_silently() -> None:
    s = streams()
    s.result("title \x1b]0;pwned\x07 bell \x07 red \x1b[31mx")
    assert s.out.getvalue() == "title \u241b bell \u2407 red \u241bx\n"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("x"), EXIT_USAGE),
        (MissingConfiguration("x"), EXIT_USAGE),
        (ConfigError("f", ["x"]), EXIT_USAGE),
        (NotARepository("x"), EXIT_USAGE),
        (BackendUnavailable("x"), EXIT_UNAVAILABLE),
        (Conflict("x"), EXIT_CONFLICT),
        (PermissionDenied("x"), EXIT_PERMISSION),
        (ReadOnly("x"), EXIT_PERMISSION),
        (NotFound("x"), EXIT_NOT_FOUND),
        (KeyboardInterrupt(), EXIT_CANCELLED),
        (OperationFailed("x"), EXIT_FAILED),
    ],
)
def test_one_exit_code_table(error: BaseException, code: int) -> None:
    assert exit_code_for(error) == code


def _release(production: bool) -> Decision:
    """The table's decision for a release of churn (production or not)."""
    return Decision(ACTIONS["release"], "churn", "t", True, "",
                    Confirmation.NAME if production else Confirmation.YES, production)  # fmt: skip


def test_yes_alone_never_confirms_a_production_change() -> None:
    for interactive in (True, False):
        with pytest.raises(UsageError, match="--confirm churn"):
            confirm(streams("churn\n"), "Release?", _release(True), yes=True,
                    interactive=interactive)  # fmt: skip
    with pytest.raises(UsageError, match="'other'"):
        confirm(streams(), "Release?", _release(True), confirm_name="other")
    confirm(streams(), "Release?", _release(True), confirm_name="churn")
    confirm(streams(), "Release?", _release(False), yes=True)
