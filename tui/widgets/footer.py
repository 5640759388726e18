"""The key footer every screen shows: Textual's Footer, rebuilt only when its keys change.

Textual's :class:`~textual.widgets.Footer` removes and mounts all of its key
widgets whenever the screen says its bindings were refreshed: on every focus
change, every ``refresh_bindings()`` and while a screen mounts (several times
before the first frame). Most of those refreshes change nothing it shows, yet
each rebuild restyles every key. :class:`KeyFooter` compares what it would
show with what it shows and rebuilds only when they differ.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Footer


class KeyFooter(Footer):
    """A :class:`~textual.widgets.Footer` that skips rebuilds showing the same keys."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown: tuple[Any, ...] | None = None

    def _keys(self) -> tuple[Any, ...] | None:
        """Return everything the footer's compose reads, or None before the bindings are ready."""
        if not self._bindings_ready:
            return None
        keys = tuple(
            (binding.key, binding.action, binding.description, binding.show, binding.group,
             binding.tooltip, enabled, tooltip)
            for (_, binding, enabled, tooltip) in self.screen.active_bindings.values()
        )  # fmt: skip
        return (self.show_command_palette, self.combine_groups, keys)

    def compose(self) -> ComposeResult:
        self._shown = self._keys()
        yield from super().compose()

    async def recompose(self) -> None:
        """Rebuild the keys, unless they would be the ones already shown."""
        if self._shown is not None and self.is_attached and self._keys() == self._shown:
            return
        await super().recompose()
