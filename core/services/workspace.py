"""From configuration to live objects: targets, metrics sources, repositories.

:class:`Workspace` is the single place the console and the scripting CLI get
their backend objects from. Everything is created on first use (heavy
libraries are imported then, not at start) and cached per model, so two
screens looking at the same target share one client. :func:`doctor` checks
that every configured backend answers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import config as config_mod
from core import paths
from core.cancel import CancelToken
from core.config import Config, ModelConfig, TargetConfig
from core.errors import ConfigError, NotFound
from core.targets.kinds import KINDS, kind_of

if TYPE_CHECKING:
    from core.domain import Artifact, JournalEntry, Progress, RollbackPreview, RolloutState
    from core.git import Repository
    from core.images import ImageBuilder
    from core.journal import Journal
    from core.metrics.base import MetricsSource
    from core.metrics.scoring import DriftScorer
    from core.retrain.base import Trigger
    from core.services.guard import Guard, GuardEvent
    from core.services.references import ReleaseMarkers, TrainingReferences
    from core.targets.base import Seen, Target
    from core.testing import TestEvent, TestRunner

# --------------------------------------------------------------------------
# Factories


def open_target(model_cfg: ModelConfig, target_cfg: TargetConfig, state_dir: Path) -> Target:
    """Return the live :class:`Target` for one model on one configured target.

    The kind's constructor (see :data:`core.targets.kinds.KINDS`) imports its
    module here, on first use. Constructing a target does not contact the
    backend. Raises ConfigError for an unknown kind.
    """
    entry = KINDS.get(target_cfg.kind)
    if entry is None:
        raise ConfigError(
            str(model_cfg.name),
            [f"model {model_cfg.name}: target {target_cfg.name}: kind {target_cfg.kind!r}"],
        )
    return entry.open(model_cfg, target_cfg, state_dir)


# --------------------------------------------------------------------------
# The workspace


class Workspace:
    """Configuration, journal and the live backend objects of every model.

    Thread-safe: the console's workers call it concurrently. ``journal`` may
    be given (tests); otherwise it is opened on first use under ``state_dir``.
    """

    def __init__(
        self,
        config: Config,
        *,
        journal: Journal | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.state_dir = Path(state_dir) if state_dir is not None else paths.state_dir()
        self._journal = journal
        self._lock = threading.RLock()
        self._targets: dict[tuple[str, str], Target] = {}
        self._metrics: dict[str, MetricsSource | None] = {}
        self._repos: dict[str, Repository] = {}
        self._runner: TestRunner | None = None
        self._guard_states: dict[tuple[str, str], GuardEvent] = {}
        self._drift_inputs: dict[str, tuple[TrainingReferences, ReleaseMarkers]] = {}
        self._scorers: dict[str, DriftScorer | None] = {}

    @classmethod
    def open(
        cls,
        config_path: str | None = None,
        *,
        read_only: bool = False,
        state_dir: Path | None = None,
    ) -> Workspace:
        """Load the configuration (see :func:`core.config.load`) and return a workspace.

        Raises ConfigError when the file is invalid.
        """
        config = config_mod.load(config_path)
        if read_only:
            config = config.with_read_only(True)
        return cls(config, state_dir=state_dir)

    # -------------------------------------------------------------- config

    @property
    def models(self) -> tuple[ModelConfig, ...]:
        """The configured models, in file order."""
        return self.config.models

    def model(self, name: str) -> ModelConfig:
        """Return the model's configuration; raises NotFound."""
        return self.config.model(name)

    def target_config(self, model: str, target: str | None = None) -> TargetConfig:
        """Return the configuration of ``target`` (None: the model's first target).

        Raises NotFound for an unknown model or target, or a model without targets.
        """
        model_cfg = self.model(model)
        if target is None:
            if not model_cfg.targets:
                raise NotFound(f"model {model!r} has no target configured")
            return model_cfg.targets[0]
        return model_cfg.target(target)

    def is_read_only(self, model: str, target: str) -> bool:
        """True when mutating actions on this model's target are disabled."""
        if self.config.read_only:
            return True
        return self.target_config(model, target).read_only_effective

    # ------------------------------------------------------------- objects

    @property
    def journal(self) -> Journal:
        """The journal (opened under ``state_dir`` on first use)."""
        with self._lock:
            if self._journal is None:
                from core.journal import Journal

                paths.ensure_dir(self.state_dir)
                self._journal = Journal(self.state_dir / paths.JOURNAL_FILE)
            return self._journal

    def target(self, model: str, target: str | None = None) -> Target:
        """Return the (cached) live target; raises NotFound or ConfigError."""
        target_cfg = self.target_config(model, target)
        key = (model, target_cfg.name)
        with self._lock:
            if key not in self._targets:
                self._targets[key] = open_target(self.model(model), target_cfg, self.state_dir)
            return self._targets[key]

    def targets(self, model: str) -> list[Target]:
        """Return every target of ``model``, in configuration order."""
        return [self.target(model, t.name) for t in self.model(model).targets]

    def metrics(self, model: str) -> MetricsSource | None:
        """Return the (cached) metrics source of ``model``, or None when not configured."""
        with self._lock:
            if model not in self._metrics:
                from core.metrics.sources import open_source

                model_cfg = self.model(model)
                metrics = model_cfg.metrics
                self._metrics[model] = (
                    None if metrics is None else open_source(metrics, model_cfg.name)
                )
            return self._metrics[model]

    def repository(self, model: str) -> Repository:
        """Return the (cached) :class:`core.git.Repository` of ``model``.

        Raises BackendUnavailable when the path is not a git repository.
        """
        with self._lock:
            if model not in self._repos:
                from core.git import Repository

                self._repos[model] = Repository(self.model(model).repo)
            return self._repos[model]

    def resolve_commit(self, model: str, rev: str) -> str:
        """Return the full sha of ``rev`` (sha prefix, tag, branch) in the model's repository.

        Raises NotFound when it does not name a commit.
        """
        return str(self.repository(model).resolve(rev))

    def artifact_from_input(self, model: str, target: str, value: str) -> Artifact:
        """Return the Artifact a value typed on the Rollouts screen names for ``target``.

        On a local target ``value`` is a commit ref resolved in the model's
        repository; on image targets it is an image reference, taken as is.
        Raises NotFound when a local target's value names no commit, or for an
        unknown model or target; ConfigError for an unknown target kind.
        """
        rule = kind_of(self.target_config(model, target)).artifact
        return rule.from_input(value, lambda ref: self.resolve_commit(model, ref))

    @property
    def test_runner(self) -> TestRunner:
        """The :class:`core.testing.TestRunner` shared by every model (runs queue per model)."""
        with self._lock:
            if self._runner is None:
                from core.testing import TestRunner

                self._runner = TestRunner(
                    self.journal, self.state_dir / "test-output", child_env=self.config.child_env
                )
            return self._runner

    def run_tests(
        self, model: str, commit: str, cancel: CancelToken | None = None
    ) -> Iterator[TestEvent]:
        """Run ``model``'s test command at ``commit``; return the run's events.

        The events are :data:`core.testing.TestEvent` values, the last one
        ``RunFinished``. Raises ConfigError when the model has no test command.
        """
        model_cfg = self.model(model)
        if not model_cfg.test_command:
            source = str(self.config.source or "configuration")
            raise ConfigError(source, [f"model {model}: test_command is not set"])
        return self.test_runner.run(
            model,
            model_cfg.repo,
            commit,
            model_cfg.test_command,
            timeout=model_cfg.test_timeout,
            cancel=cancel,
        )

    def image_builder(self, model: str) -> ImageBuilder:
        """Return a :class:`core.images.ImageBuilder` for ``model``.

        It talks to the engine of the model's first target whose kind names
        one (a docker target's ``base_url``), else to ``DOCKER_HOST`` (the
        local engine). Raises NotFound for an unknown model, ConfigError for
        an unknown target kind.
        """
        from core.images import ImageBuilder

        base_url = None
        for t in self.model(model).targets:
            base_url = kind_of(t).build_engine(t)
            if base_url:
                break
        return ImageBuilder(base_url)

    def guard(self, model: str) -> Guard:
        """Return the :class:`core.services.guard.Guard` configured for ``model``.

        Starts the source's background collection (a scrape source only has
        data while its scraper runs).
        """
        from core.services.guard import Guard, GuardSettings

        model_cfg = self.model(model)
        metrics = model_cfg.metrics
        source = self.metrics(model)
        if source is not None:
            source.start()
        queries = {}
        if metrics is not None:
            queries = {"error_rate": metrics.error_rate, "latency_p95": metrics.latency_p95}
        return Guard(
            source,
            GuardSettings.from_config(model_cfg.guard),
            queries=queries,
            drift=self.drift_probe(model),
            journal=self.journal,
            rollback=self.rollback_action,
        )

    def live_state_for(self, entry: JournalEntry) -> RolloutState:
        """Return the live :class:`~core.domain.RolloutState` of a journal entry's target.

        Shown beside an entry whose outcome is unknown, so the operator can
        verify what the interrupted action left behind. Raises NotFound when the
        model or target is no longer configured, BackendUnavailable when it
        cannot be reached.
        """
        return self.target(entry.model, entry.target).status()

    def note_guard(self, event: GuardEvent) -> None:
        """Remember the latest :class:`core.services.guard.GuardEvent` of its model and target."""
        with self._lock:
            self._guard_states[(event.model, event.target)] = event

    def guard_state(self, model: str, target: str) -> GuardEvent | None:
        """Return the latest GuardEvent of ``model`` on ``target`` (None: never guarded here).

        The Rollouts and Drift screens show it: watching (STARTED/CHECK), passed,
        breach, alert (rollback ready) or rolled back.
        """
        with self._lock:
            return self._guard_states.get((model, target))

    def drift_inputs(self, model: str) -> tuple[TrainingReferences, ReleaseMarkers]:
        """Return the (cached) loaders of what ``model``'s drift is judged against.

        The training reference (the reference file at the deployed commit) and
        the release markers; see :mod:`core.services.references`. The guard,
        the Drift screen and the CLI share them. Raises NotFound.
        """
        from core.services.references import ReleaseMarkers, TrainingReferences

        self.model(model)
        with self._lock:
            if model not in self._drift_inputs:
                self._drift_inputs[model] = (
                    TrainingReferences(self, model),
                    ReleaseMarkers(self, model),
                )
            return self._drift_inputs[model]

    def drift_probe(self, model: str) -> DriftScorer | None:
        """Return the (cached) :class:`~core.metrics.scoring.DriftScorer` of ``model``.

        It scores a window against the configured reference (training,
        before_release or fixed), gathering that reference itself. None when
        the model has no metrics source or no prediction histogram. Does not
        start the source. Raises NotFound.
        """
        from core.metrics.scoring import DriftScorer, DriftSettings

        model_cfg = self.model(model)
        source = self.metrics(model)
        training, markers = self.drift_inputs(model)
        with self._lock:
            if model not in self._scorers:
                metrics = model_cfg.metrics
                scorer = None
                if source is not None and metrics is not None and metrics.prediction_histogram:
                    settings = DriftSettings.from_config(metrics, model_cfg.drift, model_cfg.guard)
                    scorer = DriftScorer(source, settings, training=training, markers=markers)
                self._scorers[model] = scorer
            return self._scorers[model]

    # ------------------------------------------------------------ actions

    def run_rollout(
        self,
        target: Target,
        artifact: Artifact,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: Seen = None,
    ) -> Iterator[Progress]:
        """Roll ``artifact`` out on ``target`` through :mod:`core.services.actions` (journalled).

        ``expected`` is the state the operator saw: Conflict if the target changed since.

        Raises ReadOnly when :mod:`core.services.action_table` refuses it
        (read-only mode or target); otherwise as Target.rollout.
        """
        from core.services import action_table, actions

        action_table.require(self, "rollout", target.model, target.name)
        return actions.run_rollout(
            self.journal, target, artifact, reason=reason, cancel=cancel, expected=expected
        )

    def run_rollback(
        self,
        target: Target,
        to_revision: int | None = None,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: RollbackPreview | None = None,
        wait: bool = True,
    ) -> Iterator[Progress]:
        """Roll ``target`` back through :mod:`core.services.actions` (journalled).

        ``expected`` is the preview the operator confirmed: targets that
        support it refuse with Conflict when their state changed since.
        ``wait`` False returns once the backend acknowledged the change when the
        target :attr:`~core.targets.base.Target.acknowledges_first` (see
        :func:`core.services.actions.run_rollback`).
        Raises ReadOnly when :mod:`core.services.action_table` refuses it
        (read-only mode or target); otherwise as Target.rollback.
        """
        from core.services import action_table, actions

        action_table.require(self, "rollback", target.model, target.name)
        return actions.run_rollback(
            self.journal,
            target,
            to_revision,
            reason=reason,
            cancel=cancel,
            expected=expected,
            wait=wait,
        )

    def retrain(
        self,
        model: str,
        *,
        commit: str | None = None,
        window: float | None = None,
        trigger: Trigger,
        cancel: CancelToken | None = None,
    ) -> Iterator[Progress]:
        """Retrain ``model`` (journalled); see :func:`core.services.retrain.run_retrain`."""
        from core.services.retrain import run_retrain

        return run_retrain(
            self, model, commit=commit, window=window, trigger=trigger, cancel=cancel
        )

    def rollback_action(
        self,
        journal: Journal,
        target: Target,
        to_revision: int | None = None,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
    ) -> Iterator[Progress]:
        """Same as :meth:`run_rollback`, in the shape :class:`core.services.guard.Guard` calls."""
        return self.run_rollback(target, to_revision, reason=reason, cancel=cancel)

    def close(self) -> None:
        """Close every target and metrics source opened so far (errors are ignored)."""
        with self._lock:
            objects: list[Any] = [*self._targets.values(), *self._metrics.values()]
            self._targets.clear()
            self._metrics.clear()
            self._scorers.clear()
        for obj in objects:
            if obj is None:
                continue
            try:
                obj.close()
            except Exception:
                pass
