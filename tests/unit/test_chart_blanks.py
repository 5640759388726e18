"""A chart line's blanks take a neighbour's style: the same look, fewer style changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from rich.style import Style

from tui.widgets.chart import _blanks_merged

BACK = ("#1e1e1e", "#ffffff")
CELL = st.tuples(
    st.sampled_from(" ─▄x"),
    st.one_of(
        st.none(),
        st.builds(
            Style,
            color=st.sampled_from(["#e0e0e0", "#58d1eb", "red"]),
            bgcolor=st.sampled_from(BACK),
            underline=st.booleans(),
        ),
    ),
)


@given(st.lists(CELL, max_size=40))
def test_every_cell_looks_the_same(cells: list[tuple[str, Style | None]]) -> None:
    """Each character keeps its background, each non-blank its colour, and a blank
    changes style only to one with the same background and no underline."""
    plain = "".join(char for char, _ in cells)
    styles: list[object] = [style for _, style in cells]
    text = _blanks_merged(plain, styles)
    assert text.plain == plain
    for column, (char, before) in enumerate(cells):
        after = styles[column]
        shown = Style.null()
        for span in text.spans:
            if span.start <= column < span.end:
                shown = span.style  # type: ignore[assignment]
        assert shown == (after or Style.null())
        if char != " " or before is None or before.underline:
            assert after == before
        else:
            assert isinstance(after, Style) and not after.underline
            assert after.bgcolor == before.bgcolor


def test_labels_and_the_gaps_between_them_are_one_style_run() -> None:
    """plotext styles the x axis' labels and the gaps between them apart; after the
    merge the line is one run, written to the terminal with one change of colours."""
    label = Style(color="#e0e0e0", bgcolor="#1e1e1e")
    gap = Style(bgcolor="#1e1e1e")
    plain = "   05:30   05:35   "
    styles: list[object] = [label if char != " " else gap for char in plain]
    text = _blanks_merged(plain, styles)
    assert [(span.start, span.end, span.style) for span in text.spans] == [(0, len(plain), label)]
