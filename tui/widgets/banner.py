"""The context banner: which configuration, which targets, read-only, production."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from tui.text import literal


@dataclass(frozen=True)
class BannerInfo:
    """What the banner shows; built by the app from the configuration."""

    config: str  # path of the configuration file, or a note that there is none
    targets: tuple[str, ...] = ()  # "model/target (kind)" descriptions
    production: tuple[str, ...] = ()  # the production ones among them
    read_only: bool = False
    model: str = ""  # the selected model
    alert: str = ""  # a guard alert waiting for the operator
    screen: str = ""  # "1 Commits" etc.
    alerts: int | None = None  # the selected model's Alertmanager alerts (None: not read)
    alerts_stale: bool = False  # the last read of Alertmanager failed


class ContextBanner(Static):
    """One line at the top of every screen; production targets turn it red."""

    DEFAULT_CSS = """
    ContextBanner {
        height: 1;
        background: $panel;
        color: $text;
        padding: 0 1;
    }
    ContextBanner.-production {
        background: darkred;
        color: white;
        text-style: bold;
    }
    ContextBanner.-alert {
        background: darkred;
        color: white;
    }
    """

    def show(self, info: BannerInfo) -> None:
        """Render ``info`` and set the production/alert classes."""
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        line.append("mrc ", style="bold")
        if info.screen:
            line.append(info.screen, style="bold reverse")
            line.append(" ")
        if info.model:
            line.append_text(literal(info.model, style="bold"))
            line.append(" · ")
        if info.read_only:
            line.append("READ-ONLY", style="bold reverse")
            line.append(" · ")
        if info.alert:
            line.append_text(literal(info.alert, style="bold"))
            line.append(" · ")
        if info.alerts is not None or info.alerts_stale:
            count = "?" if info.alerts is None else str(info.alerts)
            line.append(f"{count} alert{'' if count == '1' else 's'}", style="bold")
            if info.alerts_stale:
                line.append(" (stale)", style="bold")
            line.append(" · ")
        if info.production:
            line.append("PRODUCTION: ", style="bold")
            line.append_text(literal(", ".join(info.production)))
            line.append(" · ")
        if info.targets:
            line.append_text(literal(", ".join(info.targets)))
            line.append(" · ")
        line.append_text(literal(info.config, style="dim"))
        self.set_class(bool(info.production), "-production")
        self.set_class(bool(info.alert) and not info.production, "-alert")
        self.update(line)
