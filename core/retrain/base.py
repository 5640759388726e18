"""The contract between the retrain service and the executors that run the command.

A retrain runs ``[model.retrain] command`` at one commit of the model
repository. The service prepares a :class:`RetrainJob` (a temporary worktree
at the commit, an output directory, the data window and the trigger) and
hands it to the configured :class:`Executor`. The command rewrites the
model's files in the worktree and may write training metrics to
``$MRC_RETRAIN_OUTPUT/metrics.json``; what it changed becomes a commit on
:attr:`RetrainJob.branch`. An executor that runs far from this machine (a
Kubernetes Job) cannot hand files back: it declares
:attr:`Executor.publishes_branch` and the command pushes the branch itself.

The command's environment is explicit (never the console's own): the
variables of :meth:`RetrainJob.environment` plus what ``[console]
child_env`` allows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

from core.cancel import CancelToken
from core.domain import Progress
from core.errors import ConfigError

if TYPE_CHECKING:
    from core.config import ModelConfig, RetrainConfig
    from core.services.workspace import Workspace

_T = TypeVar("_T")

#: Where the retrain's branches live: ``retrain/<model>/<UTC timestamp>``.
BRANCH_PREFIX = "retrain/"

#: The file, in the output directory, where a command may write its training metrics
#: (a JSON object of numbers, like a test run's metrics file).
METRICS_FILE = "metrics.json"


@dataclass(frozen=True, slots=True)
class Trigger:
    """Why a retrain was started: the drift that was seen, and by whom."""

    score: float | None
    """The drift score at the start (None when it was not known)."""
    method: str
    """The drift method (``psi``, ``ks``...), "" when not known."""
    reference: str
    """The drift reference (``training``, ``window``), "" when not known."""
    started_by: str
    """Who started it (``user@host``, plus "via browser" when served)."""
    reason: str = ""
    """The operator's reason, or the alert's name when started from an alert."""


@dataclass(frozen=True, slots=True)
class RetrainJob:
    """One run of the retrain command, as an executor receives it."""

    model: str
    commit: str
    """Full sha of the commit the command starts from."""
    command: str
    """Shell command (``sh -c``)."""
    workdir: Path
    """A worktree checked out at :attr:`commit`; the command's working directory."""
    output: Path
    """A directory outside the worktree for ``metrics.json`` (and anything else to keep)."""
    window_start: datetime
    window_end: datetime
    """The data window (UTC) the command trains on."""
    metrics_url: str
    """The model's metrics source URL ("" when none is configured); never with credentials."""
    trigger: Trigger
    branch: str
    """The branch the result goes to (``retrain/<model>/<UTC timestamp>``)."""
    timeout: float
    """Seconds the command may run; the executor stops it after that and raises."""
    remote: str = ""
    """URL of the model repository's remote (``origin``): where a Job pushes :attr:`branch`."""

    def environment(
        self, *, workdir: str | None = None, output: str | None = None
    ) -> dict[str, str]:
        """Return the documented ``MRC_RETRAIN_*`` variables of this run.

        ``workdir``/``output`` replace the paths as the command sees them (a
        container mounts them elsewhere). Never raises.
        """
        return {
            "MRC_RETRAIN_MODEL": self.model,
            "MRC_RETRAIN_COMMIT": self.commit,
            "MRC_RETRAIN_WINDOW_START": _rfc3339(self.window_start),
            "MRC_RETRAIN_WINDOW_END": _rfc3339(self.window_end),
            "MRC_RETRAIN_METRICS_URL": self.metrics_url,
            "MRC_RETRAIN_TRIGGER_SCORE": ""
            if self.trigger.score is None
            else f"{self.trigger.score:.6g}",
            "MRC_RETRAIN_TRIGGER_METHOD": self.trigger.method,
            "MRC_RETRAIN_TRIGGER_REFERENCE": self.trigger.reference,
            "MRC_RETRAIN_WORKDIR": workdir if workdir is not None else str(self.workdir),
            "MRC_RETRAIN_OUTPUT": output if output is not None else str(self.output),
            "MRC_RETRAIN_BRANCH": self.branch,
            "MRC_RETRAIN_REMOTE": self.remote,
        }


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Executor(Protocol):
    """Runs a :class:`RetrainJob`'s command somewhere and streams what it prints.

    :meth:`run` yields :class:`~core.domain.Progress` items: ``step="output"``
    with one line the command printed (raw; the front ends sanitise it) and
    ``step="executor"`` for the executor's own steps (container created, Job
    scheduled, pod events). It returns when the command succeeded and raises:

    * :class:`~core.errors.OperationFailed` when the command exits non-zero,
      its container or Job fails, or :attr:`RetrainJob.timeout` passes (the
      message says which, with the exit code or the API's own reason);
    * :class:`~core.errors.Cancelled` after ``cancel`` was set, once what it
      started (process group, container, Job and its pods) is removed;
    * :class:`~core.errors.BackendUnavailable` / :class:`~core.errors.NotFound`
      / :class:`~core.errors.PermissionDenied` / :class:`~core.errors.ConfigError`
      when the engine or cluster cannot run it (an invalid Job template is a
      ConfigError carrying the API's message).
    """

    kind: ClassVar[str]
    """The ``[model.retrain] executor`` value it implements."""
    publishes_branch: ClassVar[bool]
    """True when the command pushes :attr:`RetrainJob.branch` to the remote itself (the
    service then fetches it); False when the service commits the worktree."""

    def run(self, job: RetrainJob, cancel: CancelToken) -> Iterator[Progress]:
        """Run ``job``; see the class docstring for what it yields and raises."""
        ...


class TargetExecutor:
    """What the executors running on one of the model's targets (Docker, Kubernetes) share.

    Constructing one reads the configuration only. Subclasses set ``kind``
    and ``publishes_branch`` and implement ``run``.
    """

    def __init__(self, workspace: Workspace, model: ModelConfig) -> None:
        self.workspace = workspace
        self.model = model

    @property
    def retrain(self) -> RetrainConfig:
        """The model's ``[model.retrain]``; raises ConfigError when it is not configured."""
        if self.model.retrain is None:
            raise self.config_error("[model.retrain] is not configured")
        return self.model.retrain

    def config_error(self, problem: str) -> ConfigError:
        """Return (not raise) a ConfigError about this model's retrain configuration."""
        source = str(self.workspace.config.source or "configuration")
        return ConfigError(source, [f"model {self.model.name}: {problem}"])

    def target_of(self, config_type: type[_T], kind: str) -> _T | None:
        """Return the target the command runs on: ``[model.retrain] target`` when set, else
        the model's first target of ``config_type`` (None when it has none).

        Raises ConfigError when the named target does not exist or is of another kind.
        """
        wanted = self.retrain.target
        for target in self.model.targets:
            if wanted and target.name != wanted:
                continue
            if isinstance(target, config_type):
                return target
            if wanted:
                raise self.config_error(
                    f"retrain target {wanted!r} is a {target.kind} target; the {kind} "
                    f"executor needs a {kind} target"
                )
        if wanted:
            raise self.config_error(f"retrain target {wanted!r} is not a target of the model")
        return None

    def image_for(self, commit: str) -> str:
        """Return the image the command runs in at ``commit``: ``[model.retrain] image`` when
        set, else ``<model image>:<short sha>``. Raises ConfigError when neither is set."""
        if self.retrain.image:
            return self.retrain.image
        if not self.model.image:
            raise self.config_error(
                f"the {self.retrain.executor} retrain executor needs an image: set "
                "[model.retrain] image or the model's image"
            )
        return f"{self.model.image}:{commit[:8]}"
