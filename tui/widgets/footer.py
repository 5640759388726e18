"""The key footer every screen shows: one line of the screen's keys, drawn as one widget.

Textual's :class:`~textual.widgets.Footer` is a scrolling container with a
widget per key. Mounting and styling those widgets took about 70 ms of the
console's ~450 ms from start to its first frame (in a pty at 120x40), and the
footer removed and mounted them all again whenever the screen's bindings were
refreshed (on every focus change). :class:`KeyFooter` draws the same keys as one line of text:

* keys with ``show=True``, one per action, in binding order, the key in bold
  and its description after it; a key whose action is disabled is dimmed;
* the command palette's key at the right edge, as Textual's footer shows it;
* when the line is too wide, the padding around keys goes first (as in
  Textual's compact footer), then the line is cut with ``…`` (the palette key
  stays);
* a click on a key presses it (a disabled key rings the bell), and hovering
  a key shows its tooltip, as with Textual's footer.

It repaints only when what it shows changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

if TYPE_CHECKING:
    from textual import events
    from textual.screen import Screen

#: Drawn between the keys and the command palette's key.
PALETTE_SEPARATOR = "▏"


class FooterKey(NamedTuple):
    """One key as the footer shows it."""

    key: str
    """The key pressed when it is clicked (Textual's key name)."""
    display: str
    """The key as shown, e.g. ``^p``."""
    description: str
    action: str
    enabled: bool
    tooltip: str


class KeyFooter(Widget, can_focus=False):
    """One line listing the keys of the screen it is on; click a key to press it."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"key-footer--key", "key-footer--description"}
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
    }
    KeyFooter > .key-footer--key {
        color: $footer-key-foreground;
        background: $footer-key-background;
        text-style: bold;
    }
    KeyFooter > .key-footer--description {
        color: $footer-description-foreground;
        background: $footer-description-background;
    }
    """

    def __init__(self, *, show_command_palette: bool = True) -> None:
        super().__init__()
        self.show_command_palette = show_command_palette
        self._keys: tuple[FooterKey, ...] | None = None
        self._palette: FooterKey | None = None
        #: Where each key was drawn last: (first column, end column, key).
        self._spans: list[tuple[int, int, FooterKey]] = []

    @property
    def keys(self) -> tuple[FooterKey, ...]:
        """Return the keys shown (the command palette's key is not among them)."""
        if self._keys is None:
            self._read_keys()
        assert self._keys is not None
        return self._keys

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[Any]) -> None:
        """Repaint, once the screen has refreshed, if its bindings now show other keys."""
        if screen is self.screen:
            # Read after the refresh, as Textual's footer does: a binding's check_action
            # may depend on state the same refresh brings (a just-resumed screen).
            self.call_after_refresh(self._repaint_if_changed)

    def _repaint_if_changed(self) -> None:
        # A screen that is no longer shown reads its keys again when it resumes.
        if self.is_attached and self.screen is self.app.screen and self._read_keys():
            self.refresh()

    def _read_keys(self) -> bool:
        """Read the keys from the screen's active bindings; return whether they changed."""
        app = self.app
        shown: dict[str, FooterKey] = {}
        palette = None
        for key, (_node, binding, enabled, tooltip) in self.screen.active_bindings.items():
            if key == app.COMMAND_PALETTE_BINDING and app.ENABLE_COMMAND_PALETTE:
                if self.show_command_palette:
                    palette = FooterKey(
                        binding.key, app.get_key_display(binding), binding.description,
                        binding.action, enabled, binding.tooltip or binding.description,
                    )  # fmt: skip
            elif binding.show and binding.action not in shown:
                shown[binding.action] = FooterKey(
                    binding.key, app.get_key_display(binding), binding.description,
                    binding.action, enabled, tooltip or binding.tooltip,
                )  # fmt: skip
        keys = tuple(shown.values())
        changed = keys != self._keys or palette != self._palette
        self._keys, self._palette = keys, palette
        return changed

    def render(self) -> Text:
        """Return the line of keys, fitted to the widget's width (see the module)."""
        key_style = self.get_component_rich_style("key-footer--key")
        description_style = self.get_component_rich_style("key-footer--description")
        width = self.size.width
        keys = self.keys  # reads the palette's key too
        right = Text(end="")
        if self._palette is not None:
            right.append(PALETTE_SEPARATOR)
            right.append(self._palette.display, key_style)
            right.append(f" {self._palette.description}", description_style)
        room = max(0, width - right.cell_len)
        for compact in (False, True):
            pieces = [self._piece(item, compact, key_style, description_style) for item in keys]
            gap = 1 if compact else 0  # a wide piece ends in padding: it may be cut at the edge
            fits = sum(piece.cell_len + gap for piece in pieces) - 1 <= room
            if fits:
                break
        line = Text(end="", no_wrap=True)
        self._spans = []
        for index, (item, piece) in enumerate(zip(keys, pieces, strict=True)):
            if not fits and line.cell_len + piece.cell_len + gap + 1 > room:
                line.append("…")  # this key and the ones after it do not fit
                break
            self._spans.append((line.cell_len, line.cell_len + piece.cell_len, item))
            line.append_text(piece)
            if gap and index < len(pieces) - 1:
                line.append(" ")
        line.truncate(room, pad=True)
        line.append_text(right)
        if self._palette is not None:
            self._spans.append((room, width, self._palette))
        return line

    @staticmethod
    def _piece(item: FooterKey, compact: bool, key_style: Style, description_style: Style) -> Text:
        """Return ``item`` drawn as Textual's footer draws it, compact or not; dim if disabled."""
        piece = Text(end="")
        piece.append(item.display if compact else f" {item.display} ", key_style)
        if item.description:
            text = f" {item.description}" if compact else f"{item.description} "
            piece.append(text, description_style)
        if not item.enabled:
            piece.stylize("dim")
        return piece

    def _key_at(self, x: int) -> FooterKey | None:
        """Return the key drawn at column ``x`` of the footer, if any."""
        for start, end, item in self._spans:
            if start <= x < end:
                return item
        return None

    def on_mouse_down(self, event: events.MouseDown) -> None:
        item = self._key_at(event.x)
        if item is None:
            return
        event.stop()
        if item.enabled:
            self.app.simulate_key(item.key)
        else:
            self.app.bell()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        item = self._key_at(event.x)
        self.tooltip = item.tooltip if item is not None and item.tooltip else None
