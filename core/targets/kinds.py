"""The one table of target kinds: what each ``kind = "..."`` of a ``[[model.target]]`` means.

:data:`KINDS` maps a kind's name to its :class:`TargetKind`: the configuration
type the parser builds for it, how the live :class:`~core.targets.base.Target`
is constructed (its module is imported then, not at start), how ``mrc doctor``
checks that its backend answers, which Docker engine builds its images, and
its :class:`ArtifactRule` (how a commit, or a value typed on the Rollouts
screen, becomes the :class:`~core.domain.Artifact` a rollout installs).

The workspace, the doctor and the release pipeline all look a kind up here,
so adding a kind touches only its entry below and its own module.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from core.config import (
    DockerTargetConfig,
    KubernetesTargetConfig,
    LocalTargetConfig,
    ModelConfig,
    TargetConfig,
)
from core.errors import ConfigError, NotFound
from core.sanitize import redact_url

if TYPE_CHECKING:
    from core.domain import Artifact
    from core.targets.base import Target

# --------------------------------------------------------------------------
# Artifact rules


class ArtifactRule(Protocol):
    """How a commit, or a value typed by the operator, becomes what a rollout installs."""

    def for_commit(self, model: ModelConfig, sha: str) -> Artifact:
        """Return the Artifact that releasing commit ``sha`` of ``model`` installs."""
        ...

    def skip_build(self, model: ModelConfig) -> str:
        """Return why a release of ``model`` builds and pushes no image ("" when it does)."""
        ...

    def from_input(self, value: str, resolve: Callable[[str], str]) -> Artifact:
        """Return the Artifact a value typed on the Rollouts screen names.

        ``resolve`` turns a commit ref into a full sha (raising NotFound when
        it names no commit); rules that take the value as it is never call it.
        """
        ...


class CommitRule:
    """The commit itself is the artifact: no image is built or pushed (local targets)."""

    def for_commit(self, model: ModelConfig, sha: str) -> Artifact:
        """Return ``Artifact(commit=sha)``."""
        from core.domain import Artifact

        return Artifact(commit=sha)

    def skip_build(self, model: ModelConfig) -> str:
        """Return the reason local targets never build: they run the commit itself."""
        return "local targets run the commit itself"

    def from_input(self, value: str, resolve: Callable[[str], str]) -> Artifact:
        """Return the commit ``value`` names; raises NotFound when it names none."""
        from core.domain import Artifact

        return Artifact(commit=resolve(value))


class ImageRule:
    """The model's ``image`` tagged with the short sha, built and pushed (docker, kubernetes)."""

    def for_commit(self, model: ModelConfig, sha: str) -> Artifact:
        """Return the commit and ``<image>:<sha[:8]>`` ("" image when none is configured)."""
        from core.domain import Artifact

        image = f"{model.image}:{sha[:8]}" if model.image else ""
        return Artifact(commit=sha, image=image)

    def skip_build(self, model: ModelConfig) -> str:
        """Return "" when the model names an image, else why nothing is built."""
        return "" if model.image else "the model has no image configured"

    def from_input(self, value: str, resolve: Callable[[str], str]) -> Artifact:
        """Return ``value`` as an image reference, unchanged."""
        from core.domain import Artifact

        return Artifact(image=value)


# --------------------------------------------------------------------------
# The kind record


@dataclass(frozen=True, slots=True)
class TargetKind:
    """Everything the console knows about one target kind.

    ``open(model, target, state_dir)`` returns the live target without
    contacting the backend. ``doctor_label(target)`` names what
    ``doctor_check(target, timeout)`` checks (credentials in it redacted); the
    check returns a one-line description of what answered and raises when
    nothing does.
    ``build_engine(target)`` is the Docker engine URL that builds images for
    this target (None: this kind names none; ``DOCKER_HOST`` is used).
    """

    name: str
    config_type: type[TargetConfig]
    open: Callable[[ModelConfig, Any, Path], Target]
    doctor_label: Callable[[Any], str]
    doctor_check: Callable[[Any, float], str]
    artifact: ArtifactRule
    build_engine: Callable[[Any], str | None] = lambda target: None


def kind_of(target: TargetConfig) -> TargetKind:
    """Return the entry of ``target``'s kind; raises ConfigError for a kind not in :data:`KINDS`."""
    entry = KINDS.get(target.kind)
    if entry is None:
        raise ConfigError("", [f"target {target.name}: unknown kind {target.kind!r}"])
    return entry


def artifact_rule(kind: str) -> ArtifactRule:
    """Return the artifact rule of the target kind named ``kind``; raises NotFound."""
    entry = KINDS.get(kind)
    if entry is None:
        raise NotFound(f"unknown target kind {kind!r}")
    return entry.artifact


# --------------------------------------------------------------------------
# kubernetes


def _open_kubernetes(model: ModelConfig, target: KubernetesTargetConfig, state_dir: Path) -> Target:
    from core.targets.kubernetes import KubernetesTarget

    return KubernetesTarget.from_config(model, target)


def _check_kubernetes(target: KubernetesTargetConfig, timeout: float) -> str:
    from core.targets.k8s_api import api_for

    info = api_for(target.context, target.kubeconfig).request("GET", "/version", timeout=timeout)
    return f"server {info.get('gitVersion', '?')}"


# --------------------------------------------------------------------------
# docker


def _open_docker(model: ModelConfig, target: DockerTargetConfig, state_dir: Path) -> Target:
    from core.targets.docker import DockerTarget

    return DockerTarget.from_config(model, target)


def _check_docker(target: DockerTargetConfig, timeout: float) -> str:
    import docker

    if target.base_url:
        client = docker.DockerClient(base_url=target.base_url, timeout=int(timeout))
    else:
        client = docker.from_env(timeout=int(timeout))
    try:
        client.ping()
        return f"engine {client.version().get('Version', '?')}"
    finally:
        client.close()


# --------------------------------------------------------------------------
# local


def _open_local(model: ModelConfig, target: LocalTargetConfig, state_dir: Path) -> Target:
    from core.targets.local import LocalTarget

    return LocalTarget.from_config(model, target, state_dir)


def _check_local(target: LocalTargetConfig, timeout: float) -> str:
    # The same placeholders the local target fills in, with harmless values.
    values = {
        "python": sys.executable,
        "port": str(target.port or 0),
        "artifact": ".",
        "commit": "0" * 40,
        "revision": "0",
    }
    command = target.command
    for key, value in values.items():
        command = command.replace("{" + key + "}", value)
    argv = shlex.split(command)
    if not argv:
        raise ConfigError("", ["empty command"])
    program = argv[0]
    if "/" in program and not program.startswith("/"):
        return f"{program} (relative to the commit's files)"
    found = shutil.which(program)
    if found is None:
        raise NotFound(f"command {program!r} not found on PATH")
    return f"{program} -> {found}"


# --------------------------------------------------------------------------
# The table

KINDS: Mapping[str, TargetKind] = {
    "kubernetes": TargetKind(
        name="kubernetes",
        config_type=KubernetesTargetConfig,
        open=_open_kubernetes,
        doctor_label=lambda t: f"context {t.context or '(current)'}",
        doctor_check=_check_kubernetes,
        artifact=ImageRule(),
    ),
    "docker": TargetKind(
        name="docker",
        config_type=DockerTargetConfig,
        open=_open_docker,
        doctor_label=lambda t: redact_url(t.base_url) if t.base_url else "$DOCKER_HOST",
        doctor_check=_check_docker,
        artifact=ImageRule(),
        build_engine=lambda t: t.base_url or None,
    ),
    "local": TargetKind(
        name="local",
        config_type=LocalTargetConfig,
        open=_open_local,
        doctor_label=lambda t: redact_url(t.command),
        doctor_check=_check_local,
        artifact=CommitRule(),
    ),
}
"""Every target kind, by the name ``kind = "..."`` gives it in the configuration."""
