"""What every screen of the console shares: banner, footer, polling, empty states."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, TypeVar

from textual.app import ComposeResult
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from tui.widgets.banner import ContextBanner
from tui.widgets.footer import KeyFooter

if TYPE_CHECKING:
    from tui.app import MrcApp

AnswerType = TypeVar("AnswerType")


class Dialog(ModalScreen[AnswerType]):
    """A modal that waits for an answer (confirmations, the jump prompt).

    While one is up the console's global keys (``1``…``5``, ``u``, ``m``,
    ``:``, ``?``) are off, so every key belongs to the question. Any other
    modal screen is a *panel* (progress, diff, detail, help): it only shows
    something, and the global keys close it and act.
    """


class EmptyState(Static):
    """An honest "nothing here yet" panel: why, and what to configure."""

    DEFAULT_CSS = """
    EmptyState {
        width: 1fr;
        height: auto;
        padding: 1 2;
        color: $text-muted;
    }
    """


class MrcScreen(Screen):
    """Base of the five main screens.

    Subclasses put their widgets in :meth:`compose_body`. A screen that shows
    live data sets ``POLL_SECONDS`` and implements :meth:`poll`, which must
    start a worker in the ``"poll"`` group: the next poll is armed only when
    that worker has finished, so refreshes never overlap, and nothing polls
    while the screen is hidden.
    """

    TITLE_TEXT: ClassVar[str] = ""
    POLL_SECONDS: ClassVar[float | None] = None

    DEFAULT_CSS = """
    MrcScreen #key-reasons {
        height: auto;
        max-height: 2;
        padding: 0 1;
        color: $text-muted;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        # Textual re-parses every stylesheet and restyles the whole app when a mode's
        # screen is first shown, unless the screen says its styles are current (a new
        # screen says they are not). They are: a screen is styled as it mounts, with
        # the app's current variables. The re-parse was ~15 ms before the first frame
        # (the same sources parsed three times) and again on each screen's first visit.
        self._css_update_count = self.app._css_update_count
        self._poll_timer: Timer | None = None
        self._visible = False

    @property
    def mrc(self) -> MrcApp:
        """The console app, typed."""
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield ContextBanner()
        yield from self.compose_body()
        yield Static("", id="key-reasons", classes="key-reasons", markup=False)
        yield KeyFooter()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.sub_title = self.TITLE_TEXT

    def on_screen_resume(self) -> None:
        self._visible = True
        self.refresh_banner()
        self.on_shown()
        if self.POLL_SECONDS is not None:
            self._schedule(0.01)

    def on_screen_suspend(self) -> None:
        self._visible = False
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None

    def refresh_banner(self) -> None:
        """Redraw the context banner and the line naming why keys are disabled."""
        info = self.mrc.banner_info()
        self.query_one(ContextBanner).show(replace(info, screen=self.TITLE_TEXT))
        reasons = [] if self.mrc.read_only else self.mrc.key_reasons(self)
        line = self.query_one("#key-reasons", Static)
        line.update(" · ".join(f"{key}: {why}" for key, why in reasons))
        line.display = bool(reasons)

    def disabled_reason(self, action: str) -> str | None:
        """Return why this screen's ``action`` cannot run now, or None when it can.

        The default: every action can run. A screen that disables keys says
        why here; ``check_action`` then dims the key, the line above the
        footer and the help name the reason, and pressing it notifies it.
        """
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if self.disabled_reason(action) is not None else True

    def on_shown(self) -> None:
        """Called each time the screen becomes visible (load data here)."""

    def poll(self) -> None:
        """Start the ``"poll"`` worker that fetches fresh data."""

    def _schedule(self, delay: float) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
        self._poll_timer = self.set_timer(delay, self._tick)

    def _tick(self) -> None:
        self._poll_timer = None
        if self._visible and not self.mrc.paused_polling(self):
            self.poll()
        elif self._visible and self.POLL_SECONDS is not None:
            self._schedule(self.POLL_SECONDS)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "poll" or self.POLL_SECONDS is None:
            return
        finished = (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED)
        if event.state in finished and self._visible:
            self._schedule(self.POLL_SECONDS)
