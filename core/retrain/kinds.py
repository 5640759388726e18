"""``[model.retrain] executor`` -> the :class:`~core.retrain.base.Executor` that runs the command.

One entry per kind; each imports its module on first use, so the Docker
and Kubernetes clients are loaded only when a retrain runs there. Every
constructor takes the workspace and the model's configuration (the local
one only needs the ``[console] child_env`` policy from it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.config import ModelConfig
    from core.retrain.base import Executor
    from core.services.workspace import Workspace

#: Builds the executor of one kind for one model.
Factory = Callable[["Workspace", "ModelConfig"], "Executor"]


def _local(workspace: Workspace, model: ModelConfig) -> Executor:
    from core.retrain.local import LocalExecutor

    return LocalExecutor(workspace.config.child_env)


def _docker(workspace: Workspace, model: ModelConfig) -> Executor:
    from core.retrain.docker import DockerExecutor

    return DockerExecutor(workspace, model)


def _kubernetes(workspace: Workspace, model: ModelConfig) -> Executor:
    from core.retrain.kubernetes import KubernetesExecutor

    return KubernetesExecutor(workspace, model)


#: Every executor kind (the values :data:`core.config.RETRAIN_EXECUTORS` allows).
EXECUTORS: Mapping[str, Factory] = {
    "local": _local,
    "docker": _docker,
    "kubernetes": _kubernetes,
}


def no_retrain(workspace: Workspace, model: str) -> ConfigError:
    """Return the error of a model without a ``[model.retrain]`` table (to raise)."""
    source = str(workspace.config.source or "configuration")
    return ConfigError(
        source,
        [
            f"model {model}: no [model.retrain] table: add one with the `command` that "
            "retrains the model (see the README, Retraining)"
        ],
    )


def executor_for(workspace: Workspace, model: str) -> Executor:
    """Return the executor ``model``'s ``[model.retrain] executor`` names.

    Constructing it contacts no backend. Raises NotFound for an unknown
    model and ConfigError when the model has no ``[model.retrain]`` table or
    names an unknown executor.
    """
    model_cfg = workspace.model(model)
    retrain = model_cfg.retrain
    if retrain is None:
        raise no_retrain(workspace, model)
    factory = EXECUTORS.get(retrain.executor)
    if factory is None:
        source = str(workspace.config.source or "configuration")
        raise ConfigError(
            source,
            [f"model {model}: retrain executor {retrain.executor!r} (expected "
             f"{', '.join(EXECUTORS)})"],
        )  # fmt: skip
    return factory(workspace, model_cfg)
