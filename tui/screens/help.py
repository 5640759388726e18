"""``?``: every key binding of the console, grouped by where it works."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def bindings_table(
    title: str,
    bindings: list[BindingType],
    keymap_display: Callable[[str], str],
    reasons: dict[str, str] | None = None,
) -> Table:
    """Return a two-column table (keys, description) of ``bindings``.

    ``reasons`` maps a displayed key to why it is disabled now; such rows
    say so after the description.
    """
    table = Table(title=title, title_justify="left", show_header=False, box=None, expand=True)
    table.add_column("keys", style="bold", no_wrap=True, width=14)
    table.add_column("action", ratio=1)
    for binding in bindings:
        if not isinstance(binding, Binding) or binding.system:
            continue
        keys = ", ".join(keymap_display(k.strip()) for k in binding.key.split(","))
        description = Text(binding.tooltip or binding.description or binding.action)
        reason = (reasons or {}).get(keys)
        if reason:
            description.append(f"  (disabled: {reason})", style="yellow")
        table.add_row(keys, description)
    return table


class HelpScreen(ModalScreen[None]):
    """A scrollable list of the keys of the app and of each screen.

    A panel: ``?``, ``esc`` or ``q`` close it, and the console's global keys
    (``1``…``5``, ``u``, ``m``, ``:``) close it and act.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 90%;
        max-width: 100;
        height: 90%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(
        self,
        sections: list[tuple[str, list[BindingType]]],
        reasons: dict[str, dict[str, str]] | None = None,
    ) -> None:
        super().__init__()
        self.sections = sections
        self.reasons = reasons or {}  # section title -> {displayed key: why it is disabled}

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "Keys  (esc to close)"
            for title, bindings in self.sections:
                reasons = self.reasons.get(title)
                yield Static(bindings_table(title, bindings, self._key_display, reasons))

    def _key_display(self, key: str) -> str:
        return self.app.get_key_display(Binding(key, ""))
