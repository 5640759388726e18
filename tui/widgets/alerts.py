"""The Alertmanager alerts of the selected model, polled in a background worker.

Shown on the Drift and Rollouts screens when an ``[alertmanager]`` table is
configured (hidden otherwise). Polling follows the console's rule: fetch in a
thread worker, render on the event loop, then arm the next timer, so reads
never overlap and a slow or stopped Alertmanager never holds up a key. A
failed read keeps the last alerts on screen under a "stale" badge. Every
label, annotation and error passes :func:`tui.text.literal`.

``R`` (a key of the screens showing the panel) retrains the model with the
highlighted firing drift alert's name as the reason when the panel has focus
(:meth:`AlertsPanel.retrain_reason`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Static

from tui.text import ago, literal

if TYPE_CHECKING:
    from core.alertmanager import Alert
    from tui.app import MrcApp


class AlertsPanel(Vertical):
    """The alerts table (``#alerts-table``) and its badge (``#alerts-badge``)."""

    DEFAULT_CSS = """
    AlertsPanel {
        height: auto;
        max-height: 8;
    }
    AlertsPanel DataTable {
        height: auto;
        max-height: 6;
    }
    AlertsPanel #alerts-badge {
        height: auto;
        max-height: 4;
        color: $text-muted;
    }
    AlertsPanel #alerts-badge.-stale {
        color: $warning;
        text-style: bold;
    }
    """

    class Fetched(Message):
        """The alerts of ``model`` (None and ``error`` set when the read failed)."""

        def __init__(self, model: str, alerts: list[Alert] | None, error: str) -> None:
            super().__init__()
            self.model = model
            self.alerts = alerts
            self.error = error

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.alerts: list[Alert] = []
        self.model = ""
        self.stale = ""
        self._timer: Timer | None = None

    @property
    def mrc(self) -> MrcApp:
        """The console app, typed."""
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("", id="alerts-badge", markup=False)
        yield DataTable(id="alerts-table", cursor_type="row", zebra_stripes=False)

    def on_mount(self) -> None:
        config = self.mrc.workspace.config.alertmanager
        self.display = config is not None
        if config is None:
            return
        table = self.query_one(DataTable)
        table.add_columns("alert", "state", "since", "summary")
        self.query_one("#alerts-badge", Static).update("alerts: reading Alertmanager…")
        self._schedule(0.01)

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        config = self.mrc.workspace.config.alertmanager
        if config is None:
            return
        if self.screen.is_current and self.mrc.selected_model:
            self.fetch(self.mrc.selected_model)  # the next timer is armed when it reports
        else:
            self._schedule(config.refresh)  # hidden screens do not read

    def poll_now(self) -> None:
        """Read the alerts again now (after a silence, or when the model changed)."""
        if self.mrc.workspace.config.alertmanager is not None:
            self._schedule(0.01)

    @work(thread=True, exclusive=True, group="alerts", exit_on_error=False)
    def fetch(self, model: str) -> None:
        """Read `model`'s alerts in a worker thread and post :class:`Fetched`."""
        try:
            alerts = self.mrc.alertmanager_client().alerts(model)
        except Exception as error:  # a garbled answer must not end the console
            self.post_message(self.Fetched(model, None, str(error) or type(error).__name__))
        else:
            self.post_message(self.Fetched(model, alerts, ""))

    def on_alerts_panel_fetched(self, message: Fetched) -> None:
        message.stop()
        config = self.mrc.workspace.config.alertmanager
        if config is None:
            return
        if message.model != self.mrc.selected_model:
            self._schedule(0.01)  # the selection moved meanwhile: read the new one
            return
        if message.alerts is None:
            self.stale = message.error
        else:
            self.stale = ""
            self.model = message.model
            self.alerts = message.alerts
            self._render_rows()
        self._render_badge()
        self.mrc.alerts_read(message.model, None if self.stale else len(self.alerts), self.stale)
        self._schedule(config.refresh)

    def _render_rows(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        now = self.mrc.clock()
        for alert in self.alerts:
            state = "silenced" if alert.silenced else alert.state
            table.add_row(
                literal(alert.name or "-", style="bold", max_len=40),
                literal(state, style="" if alert.silenced else "red", max_len=12),
                ago(alert.starts_at, now),
                literal(alert.summary or "-", max_len=200),
                key=alert.fingerprint,
            )
        if self.alerts:
            table.move_cursor(row=min(max(row, 0), len(self.alerts) - 1))

    def _render_badge(self) -> None:
        badge = self.query_one("#alerts-badge", Static)
        firing = sum(1 for a in self.alerts if not a.silenced)
        text = literal(
            f"alerts of {self.model or self.mrc.selected_model}: {firing} firing, "
            f"{len(self.alerts) - firing} silenced · a: silence the highlighted one"
        )
        if self.stale:
            text = literal(f"alerts stale: {self.stale}", max_len=300)
        text.no_wrap = False  # a stale reason wraps onto up to three lines
        badge.set_class(bool(self.stale), "-stale")
        badge.update(text)

    def retrain_reason(self) -> str:
        """Returns the highlighted alert's name when it is a firing drift alert and the panel
        has focus (``R`` then retrains with it as the reason), else ""."""
        if not self.has_focus_within:
            return ""
        alert = self.selected()
        return alert.name if alert is not None and is_firing_drift(alert) else ""

    def selected(self) -> Alert | None:
        """Returns the highlighted alert of the selected model, or None."""
        if self.model != self.mrc.selected_model or not self.alerts:
            return None
        row = self.query_one(DataTable).cursor_row
        return self.alerts[row] if 0 <= row < len(self.alerts) else None


def is_firing_drift(alert: Alert) -> bool:
    """True for a drift alert (``MrcDrift...``, see :mod:`core.rules`) firing and not silenced."""
    return "drift" in alert.name.lower() and alert.state == "active" and not alert.silenced
