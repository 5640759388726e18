"""The console: five screens, global keys, the one-key rollback, the command palette."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, ClassVar, Protocol

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import Hit, Hits, Provider
from textual.screen import Screen
from textual.widgets import Input

from core.sanitize import clean_line
from tui import gc_pause
from tui.operations import (
    OperationEnded,
    Operations,
    PermissionsRead,
    PreviewRead,
    TestRunChanged,
)
from tui.runs import LiveOperation
from tui.screens.base import Dialog, MrcScreen
from tui.widgets.banner import BannerInfo

if TYPE_CHECKING:
    import threading

    from rich.console import RenderableType
    from rich.text import Text
    from textual import events
    from textual.notifications import SeverityLevel

    from core.alertmanager import Alert, AlertmanagerClient
    from core.domain import RollbackPreview, RolloutState
    from core.services.action_table import Decision as ActionDecision
    from core.services.workspace import Workspace
    from tui.screens.confirm import Decision as ConfirmDecision

#: How long quitting waits for running changes to record their outcome (seconds).
QUIT_GRACE_SECONDS = 5.0

#: Screen names in key order: ``1`` opens the first.
SCREENS_ORDER = ("commits", "tests", "rollouts", "rollbacks", "drift")

#: Where each screen is defined; modules are imported when a screen is first opened.
SCREEN_CLASSES: dict[str, str] = {
    "commits": "tui.screens.commits:CommitsScreen",
    "tests": "tui.screens.tests:TestsScreen",
    "rollouts": "tui.screens.rollouts:RolloutsScreen",
    "rollbacks": "tui.screens.rollbacks:RollbacksScreen",
    "drift": "tui.screens.drift:DriftScreen",
}


def screen_class(name: str) -> type[MrcScreen]:
    """Import and return the class of screen ``name``."""
    module, _, attribute = SCREEN_CLASSES[name].partition(":")
    cls: type[MrcScreen] = getattr(importlib.import_module(module), attribute)
    return cls


def _screen_factory(name: str) -> Callable[[], Screen]:
    return lambda: screen_class(name)()


#: Why ``a`` does nothing without an ``[alertmanager]`` table.
NO_ALERTMANAGER = "no Alertmanager configured: add an [alertmanager] table with its url"

#: Why ``R`` does nothing for a model without a ``[model.retrain]`` table.
NO_RETRAIN = (
    "{model} has no [model.retrain] table: add one with the command that retrains it "
    "(see examples/mrc.toml)"
)

#: The app's actions that work from every screen and panel (priority bindings).
GLOBAL_ACTIONS = frozenset({"goto", "rollback_previous", "next_model", "jump", "help"})

#: The console's actions that change something, each with its row of
#: :data:`core.services.action_table.ACTIONS` (read-only rule, confirmation,
#: journal entry). A refused one is removed; pressing it says why.
MUTATING_ACTIONS: dict[str, str] = {
    "rollback_previous": "rollback",
    "rollback_to": "rollback",
    "run_tests": "test",
    "rerun": "test",
    "build": "build",
    "release": "release",
    "set_image": "set_image",
    "pause_resume": "pause",
    "restart": "restart",
    "silence_alert": "silence",
    "retrain": "retrain",
}


class Starting(Protocol):
    """Work still starting while the console opens (the demo's release and traffic).

    ``ready`` is set when it has finished; ``error`` then holds why it
    failed, or None.
    """

    ready: threading.Event
    error: BaseException | None


#: How often the console checks whether it is quitting while it waits for :class:`Starting`.
STARTING_POLL_SECONDS = 0.5


class MrcCommands(Provider):
    """Command palette entries: every screen and the global actions."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        assert isinstance(app, MrcApp)
        commands: list[tuple[str, str, Callable[[], object]]] = [
            (f"Screen: {name.title()}", f"open the {name} screen", partial(app.goto, name))
            for name in SCREENS_ORDER
        ]
        commands.append(("Help: keys", "list every key binding", app.action_help))
        for model in app.model_names():
            commands.append(
                (f"Model: {model}", "select this model", partial(app.select_model, model))
            )
        if not app.refusal("rollback_previous", app.selected_model, app.current_target_name()):
            commands.append(
                (
                    "Roll back selected model",
                    "previous revision, after confirmation",
                    app.action_rollback_previous,
                )
            )
        return commands

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield Hit(1.0, name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class MrcApp(App[None]):
    """The Model Release Console."""

    TITLE = "Model Release Console"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS: ClassVar = App.COMMANDS | {MrcCommands}

    # The first screen is Textual's default screen, not a mode's: a mode's first screen
    # is laid out and rendered again for every resize and resume that arrives before
    # the first frame (5 passes against 1, about 40 ms). Its mode is added on mount.
    MODES: ClassVar = {
        name: _screen_factory(name) for name in SCREEN_CLASSES if name != SCREENS_ORDER[0]
    }
    DEFAULT_MODE = SCREENS_ORDER[0]

    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(
                str(number),
                f"goto('{name}')",
                name.title(),
                id=f"screen.{name}",
                tooltip=f"Open the {name.title()} screen",
                show=False,
                priority=True,
            )
            for number, name in enumerate(SCREENS_ORDER, start=1)
        ),
        Binding(
            "u",
            "rollback_previous",
            "Roll back",
            id="rollback.previous",
            tooltip="Roll the selected model back to its previous revision",
            priority=True,
        ),
        Binding(
            "m",
            "next_model",
            "Model",
            id="model.next",
            tooltip="Select the next model",
            show=False,
            priority=True,
        ),
        Binding(
            "colon",
            "jump",
            "Jump",
            id="jump",
            tooltip="Jump to a screen by name",
            show=False,
            priority=True,
        ),
        Binding(
            "question_mark",
            "help",
            "Help",
            id="help",
            tooltip="List every key (again: close)",
            priority=True,
        ),
        Binding("q", "quit", "Quit", id="quit", tooltip="Quit the console"),
    ]

    def __init__(
        self,
        workspace: Workspace,
        *,
        clock: Callable[[], datetime] | None = None,
        animate: bool = True,
        data_shift: Callable[[bool], None] | None = None,
        starting: Starting | None = None,
    ) -> None:
        super().__init__()
        self.workspace: Workspace = workspace
        self._starting = starting  # refresh when it has started; say so if it failed
        self.ops = Operations(self, workspace)  # every long operation, tracked
        self._quitting = False
        self.data_shift = data_shift  # the demo's traffic switch (``S`` on the Drift screen)
        self._shift_on = False
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.live = animate  # False in snapshot tests: no timers that change the picture
        names = self.model_names()
        self.selected_model: str = names[0] if names else ""
        self.selected_target: str = ""
        self.guard_alert: str = ""
        self._previews: dict[tuple[str, str], RollbackPreview] = {}
        self._preview_errors: dict[tuple[str, str], str] = {}
        self._paused_screens: set[str] = set()
        self._permissions: dict[tuple[str, str, str], str] = {}
        self.alert_count: int | None = None  # the selected model's alerts; None: not read
        self.alerts_stale = ""  # why the last read of Alertmanager failed ("" when it worked)
        self.history_version = 0  # bumped when a retrain commits: the Commits list is reread
        self._alertmanager: AlertmanagerClient | None = None
        theme = workspace.config.console.theme
        if theme in self.available_themes:
            self.theme = theme

    # -- state ---------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        """True when the console was started read-only (flag or config)."""
        return bool(self.workspace.config.read_only)

    def model_names(self) -> list[str]:
        """The configured models, in file order."""
        return [m.name for m in self.workspace.config.models]

    def banner_info(self) -> BannerInfo:
        """What the context banner shows right now."""
        config = self.workspace.config
        targets = []
        production = []
        for model in config.models:
            for target in model.targets:
                label = f"{model.name}/{target.name} ({target.kind})"
                targets.append(label)
                if target.production:
                    production.append(f"{model.name}/{target.name}")
        source = str(config.source) if config.source else "no config file (see README)"
        return BannerInfo(
            config=source,
            targets=tuple(targets),
            production=tuple(production),
            read_only=self.read_only,
            model=self.selected_model,
            alert=self.guard_alert,
            alerts=self.alert_count,
            alerts_stale=bool(self.alerts_stale),
        )

    def refresh_banners(self) -> None:
        """Redraw the banner of the visible screen."""
        screen = self.screen
        if isinstance(screen, MrcScreen):
            screen.refresh_banner()

    def paused_polling(self, screen: Screen) -> bool:
        """True when live updates of ``screen`` are paused (``space`` on the Drift screen)."""
        return type(screen).__name__ in self._paused_screens

    def set_paused(self, screen: Screen, paused: bool) -> None:
        """Pause or resume live updates of ``screen``."""
        name = type(screen).__name__
        if paused:
            self._paused_screens.add(name)
        else:
            self._paused_screens.discard(name)

    def select_model(self, model: str, target: str = "") -> None:
        """Make ``model`` (and optionally ``target``) the subject of ``u`` and the Drift screen."""
        changed = (model, target) != (self.selected_model, self.selected_target)
        if model != self.selected_model:
            self.alert_count, self.alerts_stale = None, ""
            self.call_later(self._reread_alerts)
        self.selected_model = model
        self.selected_target = target
        self.refresh_banners()
        if changed:
            self.refresh_bindings()  # which keys are enabled depends on the model
            self.warm_history()

    def current_target_name(self) -> str:
        """The selected target of the selected model (its first target by default)."""
        if not self.selected_model:
            return ""
        model = self.workspace.config.model(self.selected_model)
        names = [t.name for t in model.targets]
        if self.selected_target in names:
            return self.selected_target
        return names[0] if names else ""

    # -- the table of mutating actions ------------------------------------------

    def decide(self, action: str, model: str, target: str | None = None) -> ActionDecision:
        """Return :func:`core.services.action_table.check` for ``action`` (a table row name).

        Raises what it raises (NotFound for an unknown model or target).
        """
        from core.services import action_table

        return action_table.check(self.workspace, action, model, target)

    def refusal(self, action: str, model: str, target: str = "") -> str:
        """Return why the table refuses the console ``action`` on ``model``/``target``.

        "" when it is allowed, when ``action`` changes nothing
        (:data:`MUTATING_ACTIONS`), or when there is no such model or target
        (other checks say so). ``target`` "" is the model's first target.
        """
        from core.errors import NotFound

        row = MUTATING_ACTIONS.get(action)
        if row is None or not model:
            return ""
        try:
            return self.decide(row, model, target or None).reason
        except NotFound:
            return ""

    def confirm_action(
        self,
        decision: ActionDecision,
        summary: Text,
        go: Callable[[ConfirmDecision], None],
    ) -> None:
        """Refuse, ask, or go ahead with the action ``decision`` describes: the one gate.

        Refused (read-only): the reason is shown and no dialog opens.
        Otherwise the table's confirmation is asked (nothing; ``y``; the
        model's name typed) with ``summary``, and ``go`` is called with the
        operator's answer once confirmed (never when cancelled).
        """
        from core.services.action_table import Confirmation
        from tui.screens.confirm import Decision, TypedConfirm, YesConfirm

        if not decision.allowed:
            self.notify(decision.reason, severity="warning", markup=False)
            return

        def answered(answer: ConfirmDecision | None) -> None:
            if answer is not None:
                go(answer)

        title = decision.action.title.capitalize()
        if decision.production:
            title = f"Production {decision.action.title}"
        if decision.confirmation is Confirmation.NAME:
            self.push_screen(TypedConfirm(title, summary, decision.model), answered)
        elif decision.confirmation is Confirmation.YES:
            self.push_screen(YesConfirm(f"{title}?", summary, decision.action.title), answered)
        else:
            go(Decision())

    # -- lifecycle -----------------------------------------------------------

    def on_load(self) -> None:
        # Before any worker starts: a backend call still hanging when the console quits
        # is abandoned (daemon thread), so quitting never waits for its timeout.
        import asyncio

        from tui.background import DaemonExecutor

        asyncio.get_running_loop().set_default_executor(DaemonExecutor())

    def get_default_screen(self) -> Screen:
        """Return the first screen shown (see ``MODES``)."""
        return screen_class(self.DEFAULT_MODE)()

    def on_mount(self) -> None:
        self.add_mode(self.DEFAULT_MODE, _screen_factory(self.DEFAULT_MODE))
        self.call_after_refresh(gc_pause.release)  # collection was held off while starting
        # Opening targets imports their client libraries: do it after the first frame.
        self.set_timer(0.5, self.warm_history)
        self.set_timer(0.5, self.load_permissions)
        if self.live:
            self.set_interval(15, self.warm_history)
            self.set_interval(60, self.load_permissions)
        if self._starting is not None:
            self.run_worker(self._follow_start, thread=True, group="starting", exit_on_error=False)

    def _follow_start(self) -> None:
        """Wait for :attr:`_starting`; then refresh what it changed, or notify its error."""
        starting = self._starting
        assert starting is not None
        while not starting.ready.wait(STARTING_POLL_SECONDS):
            if self._quitting or not self.is_running:
                return
        if starting.error is None:
            self.call_from_thread(self.after_change)
        else:
            error = clean_line(str(starting.error) or type(starting.error).__name__)
            self.call_from_thread(
                self.notify,
                f"the demo release did not start: {error}",
                severity="error",
                timeout=60,
                markup=False,
            )

    def get_system_commands(self, screen: Screen):  # type: ignore[no-untyped-def]
        yield from super().get_system_commands(screen)
        yield SystemCommand("Jump", "jump to a screen by name", self.action_jump)

    # -- actions -------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.refusal(action, self.selected_model, self.current_target_name()):
            return False  # read-only: the key is removed; pressing it says why (on_key)
        if action in GLOBAL_ACTIONS and not self.global_keys_active():
            return False  # a dialog waits for its answer, or the operator is typing
        if self.disabled_reason(action) is not None:
            return None  # shown dimmed; pressing it says why (see on_key)
        return True

    def global_keys_active(self) -> bool:
        """True when the console's global keys (``1``…``5``, ``u``, ``m``, ``:``, ``?``) apply.

        They work on every screen and panel (progress, diff, detail, help),
        and are off while a :class:`~tui.screens.base.Dialog` waits for its
        answer or a text field (an :class:`~textual.widgets.Input`, the only
        kind the console has) has focus: then the key is text.
        """
        return not isinstance(self.screen, Dialog) and not isinstance(self.focused, Input)

    def disabled_reason(self, action: str) -> str | None:
        """Return why the app-wide ``action`` cannot run now, or None when it can."""
        refusal = self.refusal(action, self.selected_model, self.current_target_name())
        if refusal:
            return refusal
        if action != "rollback_previous":
            return None
        model = self.selected_model
        if not model:
            return "no model is configured: nothing to roll back"
        target = self.current_target_name()
        if not target:
            return f"{model} has no target in its configuration: nothing to roll back"
        return self.permission_reason(model, target, "rollback") or None

    def key_reasons(self, screen: Screen | None = None) -> list[tuple[str, str]]:
        """(key, why) for every dimmed key of ``screen`` (default: visible) and of the app.

        Keys hidden altogether (read-only mode, demo-only keys) are not
        listed; pressing one still says why (see :meth:`on_key`).
        """
        screen = self.screen if screen is None else screen
        reasons = self._reasons_of(screen) if isinstance(screen, MrcScreen) else []
        return reasons + [r for r in self._reasons_of(self) if r not in reasons]

    def _reasons_of(self, owner: MrcApp | MrcScreen) -> list[tuple[str, str]]:
        reasons: list[tuple[str, str]] = []
        for binding in owner.BINDINGS:
            if not isinstance(binding, Binding):
                continue
            name = binding.action.partition("(")[0]
            if owner.check_action(name, ()) is None:
                reason = owner.disabled_reason(name)
                if reason is not None:
                    reasons.append((self.get_key_display(binding), reason))
        return reasons

    def on_key(self, event: events.Key) -> None:
        """A key nothing handled: if it is a disabled or hidden binding, say why."""
        active = self.screen.active_bindings.get(event.key)
        if active is not None and active.enabled:
            return
        owners: list[MrcApp | MrcScreen] = []
        if isinstance(self.screen, MrcScreen):
            owners.append(self.screen)
        if self.global_keys_active():
            owners.append(self)
        for owner in owners:
            for binding in owner.BINDINGS:
                if not isinstance(binding, Binding):
                    continue
                if event.key not in (key.strip() for key in binding.key.split(",")):
                    continue
                reason = owner.disabled_reason(binding.action.partition("(")[0])
                if reason is not None:
                    key = self.get_key_display(Binding(event.key, ""))
                    self.notify(f"{key}: {reason}", severity="warning", markup=False)
                    return

    def goto(self, name: str) -> None:
        """Switch to the screen called ``name``; panels over the current screen close first.

        Panels (progress, diff, detail, help) only show something: their
        operations keep running. A :class:`~tui.screens.base.Dialog` is never
        closed this way.
        """
        if name not in SCREEN_CLASSES:
            return
        while len(self.screen_stack) > 1 and not isinstance(self.screen, (MrcScreen, Dialog)):
            self.pop_screen()
        if isinstance(self.screen, Dialog):
            return
        self.switch_mode(name)

    def action_goto(self, name: str) -> None:
        self.goto(name)

    def action_help(self) -> None:
        # The help, jump and progress screens load on first use, after the first frame.
        from tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        from tui.screens.confirm import RollbackConfirm
        from tui.screens.progress import OperationScreen
        from tui.widgets.alerts import AlertsPanel

        sections: list[tuple[str, list[BindingType]]] = [("Everywhere", list(self.BINDINGS))]
        reasons = {"Everywhere": dict(self._reasons_of(self))}
        for name in SCREENS_ORDER:
            screen_cls = screen_class(name)
            title = f"{name.title()} screen"
            sections.append((title, list(screen_cls.BINDINGS)))
            if isinstance(self.screen, screen_cls):
                reasons[title] = dict(self._reasons_of(self.screen))
        sections.append(("Roll back dialog (u)", list(RollbackConfirm.HELP_BINDINGS)))
        sections.append(("Alerts panel (Drift, Rollouts)", list(AlertsPanel.BINDINGS)))
        sections.append(("Build / release / retrain progress", list(OperationScreen.BINDINGS)))
        sections.append(("Everywhere (Textual)", [Binding("ctrl+p", "command_palette", "Palette")]))
        self.push_screen(HelpScreen(sections, reasons))

    def action_jump(self) -> None:
        from tui.screens.jump import JumpScreen

        def done(choice: str | None) -> None:
            if choice is None:
                return
            if choice in ("q", "quit"):
                self.exit()
                return
            matches = [n for n in SCREENS_ORDER if n.startswith(choice)]
            if matches:
                self.goto(matches[0])
            else:
                self.notify(f"no screen called {choice!r}", severity="warning", markup=False)

        self.push_screen(JumpScreen([*SCREENS_ORDER, "quit"]), done)

    def action_next_model(self) -> None:
        names = self.model_names()
        if not names:
            self.notify("no model is configured", severity="warning")
            return
        index = names.index(self.selected_model) if self.selected_model in names else -1
        self.select_model(names[(index + 1) % len(names)])
        self.notify(f"model: {self.selected_model}", markup=False)

    # -- one-key rollback ----------------------------------------------------

    def warm_history(self) -> None:
        """Keep the rollback preview of the selected target fresh, so ``u`` opens instantly."""
        model, target = self.selected_model, self.current_target_name()
        if model and target:
            self.ops.warm_history(model, target)

    def action_rollback_previous(self) -> None:
        reason = self.disabled_reason("rollback_previous")
        if reason is not None:
            self.notify(f"u: {reason}", severity="warning", markup=False)
            return
        self.open_rollback(self.selected_model, self.current_target_name(), None)

    def open_rollback(self, model: str, target: str, to_revision: int | None) -> None:
        """Show the confirm dialog for a rollback, then run it in a worker.

        A rollback the table refuses (read-only) says why, before any dialog.
        """
        decision = self.decide("rollback", model, target)
        if not decision.allowed:
            self.notify(decision.reason, severity="warning", markup=False)
            return
        preview = self._previews.get((model, target)) if to_revision is None else None
        if preview is None:
            self.ops.load_preview(model, target, to_revision)
            return
        self._confirm_preview(preview)
        self.warm_history()

    def _confirm_preview(self, preview: RollbackPreview) -> None:
        """Ask for confirmation of ``preview``, then roll back unless the target changed since.

        The table's ``y`` is the rollback dialog (revisions, images, commits,
        diff); a typed name, if the table asks one, shows the same summary.
        """
        from core.services.action_table import Confirmation
        from tui.screens.confirm import RollbackConfirm, preview_text

        def decided(decision) -> None:  # type: ignore[no-untyped-def]
            if decision is not None:
                self.run_rollback(
                    preview.model, preview.target, preview.to_revision, decision.reason, preview
                )

        table = self.decide("rollback", preview.model, preview.target)
        if table.allowed and table.confirmation is Confirmation.YES:
            self.push_screen(RollbackConfirm(preview), decided)
        else:
            self.confirm_action(table, preview_text(preview), decided)

    def run_rollback(
        self,
        model: str,
        target: str,
        to_revision: int,
        reason: str,
        preview: RollbackPreview | None = None,
    ) -> None:
        """Roll back in a tracked worker (see :meth:`tui.operations.Operations.rollback`)."""
        self.notify(f"rolling back {model}/{target} to revision {to_revision}…", markup=False)
        self.ops.rollback(model, target, to_revision, reason, preview)

    @on(PreviewRead)
    def _preview_read(self, message: PreviewRead) -> None:
        key = (message.model, message.target)
        if message.preview is None:
            if message.confirm:
                error = clean_line(message.error)
                self.notify(f"cannot roll back: {error}", severity="error", markup=False)
            else:
                self._preview_errors[key] = message.error
                self._previews.pop(key, None)
            return
        if message.cache:
            self._previews[key] = message.preview
            self._preview_errors.pop(key, None)
        if message.confirm:
            self._confirm_preview(message.preview)

    def after_change(self) -> None:
        """Refresh what an action may have changed: previews and the visible screen."""
        self.warm_history()
        screen = self.screen
        if isinstance(screen, MrcScreen):
            screen.on_shown()
            screen.poll()

    # -- other target actions -----------------------------------------------

    def permission_reason(self, model: str, target: str, action: str) -> str:
        """Return why ``action`` is not allowed on the target ("" when it is, or unknown yet)."""
        return self._permissions.get((model, target, action), "")

    def load_permissions(self) -> None:
        """Ask every opened target which actions the credentials allow (RBAC, reachability)."""
        self.ops.load_permissions()

    @on(PermissionsRead)
    def _permissions_read(self, message: PermissionsRead) -> None:
        self._permissions = message.reasons
        if self.screen_stack:  # an answer arriving while the console closes has no keys to redo
            self.refresh_bindings()

    def run_simple(
        self, model: str, target: str, action: str, expected: RolloutState | None = None
    ) -> None:
        """Pause, resume or restart a target once confirmed, journalled, in a tracked worker.

        The confirmation is the table's (``y``; the model's name on production).
        ``expected`` is the state the operator saw when pressing the key: a
        target changed since refuses with a conflict.
        """
        from rich.text import Text

        decision = self.decide(action, model, target)
        where = f"{model}/{target}" + (" (production)" if decision.production else "")
        summary = Text(f"{action.capitalize()} {where}.")

        def go(answer: ConfirmDecision) -> None:
            self.ops.simple(model, target, action, answer.reason, expected)

        self.confirm_action(decision, summary, go)

    # -- Alertmanager -------------------------------------------------------

    def alertmanager_client(self) -> AlertmanagerClient:
        """Returns the client of the ``[alertmanager]`` table (created on first use).

        Raises ValueError when no Alertmanager is configured.
        """
        from core.alertmanager import AlertmanagerClient

        config = self.workspace.config.alertmanager
        if config is None:
            raise ValueError("no [alertmanager] table in the configuration")
        if self._alertmanager is None:
            self._alertmanager = AlertmanagerClient.from_config(config)
        return self._alertmanager

    def alerts_read(self, model: str, count: int | None, stale: str) -> None:
        """Record the result of a read of `model`'s alerts for the banner (count, or why stale)."""
        if model != self.selected_model:
            return
        if count is not None:
            self.alert_count = count
        self.alerts_stale = stale
        self.refresh_banners()

    def silence_refusal(self) -> str:
        """Returns why ``a`` (silence an alert) cannot be used at all ("" when it can).

        Without an ``[alertmanager]`` table, or refused by the action table
        (read-only mode).
        """
        if self.workspace.config.alertmanager is None:
            return NO_ALERTMANAGER
        return self.refusal("silence_alert", self.selected_model)

    def silence_alert(self, alert: Alert | None) -> None:
        """Ask for a duration and reason, confirm (``y``), then silence `alert`, journalled.

        Refused in read-only mode (the action table's ``silence`` row) with
        the reason; without an alert the operator is told why nothing happens.
        """
        from rich.text import Text

        from core.errors import NotFound
        from core.sanitize import clean_line
        from tui.screens.silence import SilenceDialog, SilenceRequest, alert_text

        if self.workspace.config.alertmanager is None:
            self.notify(NO_ALERTMANAGER, severity="warning", markup=False)
            return
        if alert is None:
            self.notify("no alert selected to silence", severity="warning", markup=False)
            return
        try:
            decision = self.decide("silence", alert.model)
        except NotFound as error:
            self.notify(clean_line(str(error)), severity="warning", markup=False)
            return
        if not decision.allowed:
            self.notify(decision.reason, severity="warning", markup=False)
            return

        def asked(request: SilenceRequest | None) -> None:
            if request is None:
                return
            summary = alert_text(alert)
            summary.append(f"\nfor    {request.duration}", style="bold")
            summary.append("\nreason ", style="bold")
            summary.append_text(Text(clean_line(request.reason)))

            def go(answer: ConfirmDecision) -> None:
                self._silence(alert, request.seconds, answer.reason or request.reason)

            self.confirm_action(decision, summary, go)

        self.push_screen(SilenceDialog(alert), asked)

    def _silence(self, alert: Alert, seconds: float, reason: str) -> None:
        """Create the silence in a worker thread; notify the outcome; read the alerts again."""
        from core.sanitize import clean_line
        from core.services.actions import run_silence

        def work() -> None:
            try:
                silence_id = run_silence(
                    self.workspace.journal,
                    self.alertmanager_client(),
                    alert,
                    duration=seconds,
                    reason=reason,
                )
            except Exception as error:
                text = clean_line(f"silence failed: {error}")
                self.call_from_thread(self.notify, text, severity="error", markup=False)
            else:
                text = clean_line(f"silenced {alert.name} of {alert.model} ({silence_id})")
                self.call_from_thread(self.notify, text, markup=False)
            self.call_from_thread(self._reread_alerts)

        self.run_worker(work, thread=True, group="silence", exit_on_error=False)

    def _reread_alerts(self) -> None:
        from tui.widgets.alerts import AlertsPanel

        for panel in self.screen.query(AlertsPanel):
            panel.poll_now()

    # -- retraining ---------------------------------------------------------

    def retrain_refusal(self, model: str = "") -> str:
        """Returns why ``R`` cannot retrain ``model`` (default: the selected one), "" if it can.

        No model, no ``[model.retrain]`` table (:data:`NO_RETRAIN`), or the
        action table's refusal (read-only mode).
        """
        model = model or self.selected_model
        if not model:
            return "no model is configured: nothing to retrain"
        if self.workspace.config.model(model).retrain is None:
            return NO_RETRAIN.format(model=model)
        return self.refusal("retrain", model)

    def retrain_key(self) -> bool | None:
        """Returns ``check_action``'s answer for ``R`` on the screens that offer it.

        False (removed) when the action table refuses it (read-only mode),
        None (dimmed) without ``[model.retrain]``, else True; pressing a
        removed or dimmed ``R`` says :meth:`retrain_refusal`.
        """
        if self.refusal("retrain", self.selected_model):
            return False
        return None if self.retrain_refusal() else True

    def start_retrain(self, model: str, reason: str = "") -> None:
        """Retrain ``model`` once confirmed (``y``, a reason), with a progress view.

        Refused with the reason (read-only, no ``[model.retrain]``) before
        any dialog. ``reason`` is the default reason (a drift alert's name);
        one typed in the dialog replaces it. The command runs at the deployed
        commit on the configured window; its result is a commit on a
        ``retrain/`` branch, listed first on the Commits screen.
        """
        from rich.text import Text

        from core import durations
        from tui.text import literal

        refusal = self.retrain_refusal(model)
        if refusal:
            self.notify(f"R: {refusal}", severity="warning", markup=False)
            return
        retrain = self.workspace.config.model(model).retrain
        assert retrain is not None  # retrain_refusal says so otherwise
        summary = Text()
        summary.append("model    ", style="bold")
        summary.append_text(literal(model))
        summary.append("\nrun      ", style="bold")
        summary.append_text(literal(retrain.command, max_len=300))
        summary.append("\nat       ", style="bold")
        summary.append("the deployed commit, on the last ")
        summary.append(durations.format(retrain.window), style="bold")
        summary.append(f" of data ({retrain.executor})")
        summary.append("\nresult   ", style="bold")
        summary.append("a commit on a retrain/ branch; nothing is released")
        if reason:
            summary.append("\nreason   ", style="bold")
            summary.append_text(literal(reason, max_len=200))

        def go(answer: ConfirmDecision) -> None:
            op = self.ops.retrain(model, answer.reason or reason)
            self.show_operation(op)

        self.confirm_action(self.decide("retrain", model), summary, go)

    # -- long operations ----------------------------------------------------

    def show_operation(self, op: LiveOperation) -> None:
        """Open the progress view of ``op`` (a build, release or retrain)."""
        from tui.screens.progress import OperationScreen

        self.push_screen(OperationScreen(op, live=self.live))

    def operations(self, kind: str | None = None) -> list[LiveOperation]:
        """Tests, builds and releases started from this console, oldest first."""
        return self.ops.history(kind)

    def can(self, action: str) -> str | None:
        """Return why ``action`` ("run_tests", "build", "release") cannot run now, or None."""
        model = self.selected_model
        if not model:
            return "no model is configured"
        config = self.workspace.config.model(model)
        refusal = self.refusal(action, model, self.current_target_name())
        if refusal:
            return refusal
        if action == "build" and not config.image:
            return f"{model} has no `image` in its configuration: nothing to build"
        if action == "release" and not config.targets:
            return f"{model} has no target to release to"
        return None

    def start_tests(self, model: str, commit: str) -> None:
        """Run the model's tests at ``commit`` and show the Tests screen."""
        refusal = self.refusal("run_tests", model)
        if refusal:
            self.notify(refusal, severity="warning", markup=False)
            return
        if not self.workspace.config.model(model).test_command:
            self.notify(f"{model} has no test_command configured", severity="warning")
            return
        self.ops.tests(model, commit)
        self.notify(f"testing {commit[:8]}…", markup=False)
        self.goto("tests")

    def start_build(self, model: str, commit: str) -> None:
        """Build the model's image at ``commit`` with a progress view."""
        op = self.ops.build(model, commit)
        self.show_operation(op)

    def start_release(self, model: str, commit: str) -> None:
        """Release ``commit`` once confirmed as the table asks, then run the pipeline."""
        from rich.text import Text

        target_name = self.current_target_name()
        target = self.workspace.target_config(model, target_name or None)

        def go(decision: ConfirmDecision) -> None:
            op = self.ops.release(model, commit, target.name, decision.reason)
            self.show_operation(op)

        summary = Text(f"Release {commit[:8]} of {model} to {target.name} ({target.kind}).")
        self.confirm_action(self.decide("release", model, target.name), summary, go)

    def request_rollout(
        self, model: str, target: str, value: str, expected: RolloutState | None = None
    ) -> None:
        """Roll out ``value`` once confirmed as the table asks for ``set_image``.

        ``expected`` is the state the operator saw when starting (see :meth:`run_simple`).
        """
        from rich.text import Text

        def go(decision: ConfirmDecision) -> None:
            reason = decision.reason or "set from the console"
            self.start_rollout(model, target, value, reason, expected)

        table = self.decide("set_image", model, target)
        production = " (production)" if table.production else ""
        summary = Text(f"Roll out {value} to {model}/{target}{production}.")
        self.confirm_action(table, summary, go)

    def start_rollout(
        self,
        model: str,
        target: str,
        value: str,
        reason: str = "",
        expected: RolloutState | None = None,
    ) -> None:
        """Roll out what ``value`` names (``Workspace.artifact_from_input``) in a tracked worker.

        ``expected``: the state the operator saw (a change made since is a conflict).
        """
        self.ops.rollout(model, target, value, reason, expected)

    @on(TestRunChanged)
    def _test_run_changed(self, message: TestRunChanged) -> None:
        message.op.run = message.run
        if message.status_changed:  # queued, started: show the row at once
            self.after_change()

    @on(OperationEnded)
    def _operation_ended(self, message: OperationEnded) -> None:
        op = message.op
        op.error = message.error
        op.finished = True
        if op.kind == "rollback":
            self._previews.pop((op.model, op.target), None)
        if op.kind == "retrain" and not message.error:
            self.history_version += 1  # a new commit on a retrain/ branch: reread the list
        if message.alert:
            self.guard_alert = message.alert
        if message.notice:
            severity: SeverityLevel = "information"
            if message.severity in ("warning", "error"):
                severity = "error" if message.severity == "error" else "warning"
            # Notices carry outside text (a failed container's last log lines, API
            # errors): markup=False keeps ESC bytes, so they are sanitised here.
            notice = clean_line(message.notice)
            if message.timeout is None:
                self.notify(notice, severity=severity, markup=False)
            else:
                self.notify(notice, severity=severity, timeout=message.timeout, markup=False)
        if message.changed:
            self.after_change()
            self.refresh_banners()

    # -- quitting ------------------------------------------------------------

    def exit(
        self,
        result: None = None,
        return_code: int = 0,
        message: RenderableType | None = None,
    ) -> None:
        """Quit; running changes are cancelled and their outcome recorded first.

        Every running mutating operation is cancelled, then the console waits
        (in a worker, at most :data:`QUIT_GRACE_SECONDS`) until their journal
        rows are closed out, and exits. Quitting again while it waits exits
        at once. ``q``, the Jump prompt's ``quit`` and SIGTERM all come here.
        """
        running = self.ops.cancel_all()
        if not running or self._quitting:
            super().exit(result, return_code, message)
            return
        self._quitting = True
        what = ", ".join(op.describe() for op in running)
        self.notify(
            f"stopping {what}; quitting once its outcome is in the journal (q: quit now)",
            severity="warning",
            markup=False,
        )
        self.run_worker(
            self._exit_when_closed(result, return_code, message),
            name="quit",
            group="quit",
            exit_on_error=False,
        )

    async def _exit_when_closed(
        self, result: None, return_code: int, message: RenderableType | None
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.ops.wait_closed, QUIT_GRACE_SECONDS)
        super().exit(result, return_code, message)

    def stop_operations(self, timeout: float = QUIT_GRACE_SECONDS) -> list[LiveOperation]:
        """Cancel every running change and wait up to ``timeout`` s for its journal row.

        For the hangup handler: it blocks the calling thread but never needs
        the event loop. Returns the operations still running afterwards.
        """
        self.ops.cancel_all()
        return self.ops.wait_closed(timeout)

    async def on_unmount(self) -> None:
        # However the app ends (a browser closing its page ends it without exit()), nothing
        # it started keeps changing targets unobserved: cancel, then wait (bounded) until
        # the journal rows are closed, before the process can exit under them.
        import asyncio

        self.ops.cancel_all()
        await asyncio.to_thread(self.ops.wait_closed, QUIT_GRACE_SECONDS)

    def toggle_data_shift(self) -> None:
        """Demo only: switch the traffic generator's input data shift on or off."""
        if self.data_shift is None:
            self.notify("the data shift is a control of the demo (mrc demo)", severity="warning")
            return
        self._shift_on = not self._shift_on
        self.data_shift(self._shift_on)
        self.notify("input data shift on" if self._shift_on else "input data shift off")
