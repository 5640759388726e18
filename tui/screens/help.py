"""``?``: every key binding of the console, grouped by where it works."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def bindings_table(title: str, bindings: list[BindingType], keymap_display) -> Table:
    """Return a two-column table (keys, description) of ``bindings``."""
    table = Table(title=title, title_justify="left", show_header=False, box=None, expand=True)
    table.add_column("keys", style="bold", no_wrap=True, width=14)
    table.add_column("action", ratio=1)
    for binding in bindings:
        if not isinstance(binding, Binding) or binding.system:
            continue
        keys = ", ".join(keymap_display(k.strip()) for k in binding.key.split(","))
        description = binding.tooltip or binding.description or binding.action
        table.add_row(keys, Text(description))
    return table


class HelpScreen(ModalScreen[None]):
    """A scrollable list of the keys of the app and of each screen."""

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

    def __init__(self, sections: list[tuple[str, list[BindingType]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "Keys  (esc to close)"
            for title, bindings in self.sections:
                yield Static(bindings_table(title, bindings, self._key_display))

    def _key_display(self, key: str) -> str:
        return self.app.get_key_display(Binding(key, ""))
