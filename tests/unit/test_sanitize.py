"""clean_line makes outside text literal and inert for a terminal, and shows what it removed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.sanitize import CONTROL_MARK, ELLIPSIS, ESCAPE_MARK, clean_line

E = ESCAPE_MARK


def test_markup_text_is_unchanged() -> None:
    text = "[bold]markup[/bold] and [@click=app.quit]click me[/]"
    assert clean_line(text) == text


def test_csi_color_sequences_are_removed() -> None:
    assert clean_line("ansi \x1b[31;1mred\x1b[0m done") == f"ansi {E}red{E} done"


def test_cursor_and_erase_sequences_are_removed() -> None:
    assert clean_line("a\x1b[2J\x1b[H\x1b[?25lb\x1b(Bc\x1b7") == f"a{E * 3}b{E}c{E}"


@pytest.mark.parametrize(
    "osc",
    [
        "\x1b]0;pwned title\x07",
        "\x1b]8;;http://evil.example/\x1b\\",
        "\x1b]52;c;Y2xpcGJvYXJk\x07",
        "\x9d0;c1 title\x9c",
    ],
)
def test_osc_sequences_are_removed(osc: str) -> None:
    assert clean_line(f"before {osc}after") == f"before {E}after"


def test_dcs_and_unterminated_string_commands_are_removed() -> None:
    assert clean_line("x\x1bPq#0;2;0;0;0\x1b\\y") == f"x{E}y"
    assert clean_line("x\x1b]0;never terminated") == f"x{E}"


def test_other_control_characters_are_shown_as_marks_and_tabs_expanded() -> None:
    assert clean_line("a\x00b\x07c\x08d\x7fe\x85f\rg") == f"a␀b␇c␈d␡e{CONTROL_MARK}f␍g"
    assert clean_line("col1\tcol2", tab_size=4) == "col1    col2"
    assert clean_line("one\ntwo") == "one two"


def test_bidi_overrides_are_marked_but_rtl_text_is_kept() -> None:
    rtl = "שלום مرحبا"
    assert clean_line(rtl) == rtl
    m = CONTROL_MARK
    assert clean_line(f"\u202e{rtl}\u202c and \u2066x\u2069") == f"{m}{rtl}{m} and {m}x{m}"


def test_long_line_is_truncated_with_marker() -> None:
    result = clean_line("x" * 10_000, max_len=2000)
    assert result.startswith("x" * 2000)
    assert result == "x" * 2000 + f"{ELLIPSIS}[+8000 chars]"


def test_short_line_is_not_truncated() -> None:
    assert clean_line("y" * 2000, max_len=2000) == "y" * 2000


def test_invalid_utf8_bytes_are_replaced() -> None:
    assert clean_line(b"bad \xff\xfe\xc3 bytes") == "bad \ufffd\ufffd\ufffd bytes"
    assert clean_line(b"\xd7\xa9 ok") == "ש ok"


def test_lone_surrogates_in_str_are_replaced() -> None:
    text = b"x\xffy".decode("utf-8", errors="surrogateescape")
    assert clean_line(text) == "x\ufffdy"
    clean_line(text).encode("utf-8")  # must be encodable


@given(st.text(), st.integers(min_value=1, max_value=300))
def test_result_never_contains_controls_and_is_bounded(text: str, max_len: int) -> None:
    result = clean_line(text, max_len=max_len)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in result)
    assert "\x1b" not in result
    body = result.split(ELLIPSIS + "[+")[0] if ELLIPSIS + "[+" in result else result
    assert len(body) <= max_len


@given(
    st.text(alphabet=st.sampled_from(["a", "\x1b", "[", "]", "0", ";", "m", "\x07", "\x9b", "\\"]))
)
def test_something_removed_is_always_shown(text: str) -> None:
    result = clean_line(text)
    if any(ch in text for ch in "\x1b\x07\x9b"):
        assert any(mark in result for mark in (ESCAPE_MARK, "␇", CONTROL_MARK))
    else:
        assert result == text
