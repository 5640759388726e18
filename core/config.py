"""Typed settings loaded from the TOML configuration file.

The schema is the one of ``examples/mrc.toml``: a ``[console]`` table and one
``[[model]]`` table per model with its ``[[model.target]]`` tables (kind
``kubernetes``, ``docker`` or ``local``), an optional ``[model.metrics]``
table and the ``[model.drift]`` and ``[model.guard]`` tables, and an optional
top-level ``[alertmanager]`` table (``url``, ``token_env``/``token_file``,
``headers``, ``timeout``, ``refresh``) naming the Alertmanager whose alerts
(labelled ``model=<name>``) the console and ``mrc alerts`` show.

Where the file is found (first match wins): the ``--config`` path,
``$MRC_CONFIG``, ``./mrc.toml``, ``$XDG_CONFIG_HOME/mrc/config.toml``. When
there is none, :func:`load` returns an empty :class:`Config` (no models,
``source`` None) so the console can say what to configure.

Validation collects every problem of a file and raises one
:class:`~core.errors.ConfigError` listing them, one line each, each line
starting with the key path (``model[0].target[1].kind: ...``). Secrets come
from ``*_env`` (an environment variable name) or ``*_file`` (a file holding
the value) keys and are wrapped in :class:`Secret`, which never prints its value.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from core import durations, paths
from core.errors import ConfigError, NotFound
from core.procs import DEFAULT_CHILD_ENV, ChildEnv
from core.sanitize import redact_url

METRICS_SOURCES = ("prometheus", "scrape")
DRIFT_METHODS = ("psi", "js")
DRIFT_REFERENCES = ("training", "before_release", "fixed")

# --------------------------------------------------------------------------
# Values


class Secret:
    """A secret value (token, password) that never shows up in output.

    ``str()`` and ``repr()`` give ``******``; :meth:`reveal` returns the value.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value; pass it to the backend, never to a log or the screen."""
        return self._value

    def __repr__(self) -> str:
        return "******"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# --------------------------------------------------------------------------
# Settings


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """The ``[console]`` table."""

    read_only: bool = False
    """True removes every mutating key (``--read-only`` sets it too)."""
    theme: str = "textual-dark"
    """The Textual theme name."""
    child_env: tuple[str, ...] = DEFAULT_CHILD_ENV
    """Variables (names or globs such as ``LC_*``) that test commands, model servers and
    other child processes get from the console's environment; nothing else is passed, and
    never a variable named by a ``*_env`` key (see :attr:`Config.child_env`)."""


@dataclass(frozen=True, slots=True)
class _TargetCommon:
    name: str
    """Name of the target, unique within its model (shown in the banner and the journal)."""
    kind: str
    """``kubernetes``, ``docker`` or ``local``."""
    production: bool = False
    """Production targets are shown in red and need a typed confirmation."""
    read_only: bool = False
    """True forbids every mutating action on this target."""
    console_read_only: bool = False
    """Set from ``[console] read_only`` or ``--read-only``; see :attr:`read_only_effective`."""

    @property
    def read_only_effective(self) -> bool:
        """True when this target or the whole console is read-only."""
        return self.read_only or self.console_read_only


@dataclass(frozen=True, slots=True)
class KubernetesTargetConfig(_TargetCommon):
    """A ``[[model.target]]`` of kind ``kubernetes``: one Deployment."""

    context: str | None = None
    """The kubeconfig context; None uses the kubeconfig's current context."""
    kubeconfig: Path | None = None
    """The kubeconfig file; None uses ``$KUBECONFIG`` or ``~/.kube/config``."""
    namespace: str = "default"
    """Namespace of the Deployment."""
    deployment: str = ""
    """Name of the Deployment (defaults to the model name)."""
    container: str = ""
    """Container of the pod template that runs the model (defaults to the deployment name)."""
    timeout: float = 10.0
    """Seconds allowed per API call."""


@dataclass(frozen=True, slots=True)
class DockerTargetConfig(_TargetCommon):
    """A ``[[model.target]]`` of kind ``docker``: one container on a Docker host."""

    base_url: str | None = None
    """Docker engine URL (``unix://``, ``tcp://``, ``ssh://``); None uses ``DOCKER_HOST``."""
    container: str = ""
    """Name of the live container (defaults to the model name)."""
    port: int | None = None
    """Host port the model server is published on."""
    health_path: str = "/healthz"
    """HTTP path that answers 200 once the server is ready."""
    keep: int = 5
    """How many previous revisions (containers and images) are kept for rollback."""
    timeout: float = 10.0
    """Seconds allowed per engine API call."""
    ready_timeout: float = 60.0
    """Seconds a new container has to become healthy before the rollout fails."""


@dataclass(frozen=True, slots=True)
class LocalTargetConfig(_TargetCommon):
    """A ``[[model.target]]`` of kind ``local``: model-server processes on this machine."""

    command: str = ""
    """The server command; ``{port}`` is replaced by the port. Run in the commit's worktree."""
    port: int | None = None
    """Port the live server listens on."""
    health_path: str = "/healthz"
    """HTTP path that answers 200 once the server is ready."""
    keep: int = 3
    """How many previous revisions are kept for rollback."""
    timeout: float = 10.0
    """Seconds allowed per health request."""
    ready_timeout: float = 60.0
    """Seconds a new process has to become healthy before the rollout fails."""
    child_env: ChildEnv = field(default_factory=ChildEnv)
    """What the server processes get of the console's environment (from ``[console]``)."""


TargetConfig = KubernetesTargetConfig | DockerTargetConfig | LocalTargetConfig


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The ``[model.metrics]`` table: where the model's metrics come from."""

    source: Literal["prometheus", "scrape"]
    """``prometheus`` (PromQL against a server) or ``scrape`` (GET the server's /metrics)."""
    url: str
    """Prometheus base URL, or the /metrics URL for ``scrape`` (derived from a target's port
    when not given)."""
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    """Extra HTTP headers sent with every request (left out of ``repr``: they may carry keys)."""
    token: Secret | None = None
    """Bearer token (from ``token_env`` or ``token_file``)."""
    username: str = ""
    """User name for HTTP basic authentication ("" for none)."""
    password: Secret | None = None
    """Password for basic authentication (from ``password_env`` or ``password_file``)."""
    timeout: float = 5.0
    """Seconds allowed per request."""
    refresh: float = 5.0
    """Seconds between two refreshes of the charts."""
    selector: str = ""
    """Label selector added to metric names, e.g. ``{job="churn"}``."""
    prediction_histogram: str = ""
    """Histogram metric of the model's prediction scores ("" if none)."""
    feature_histograms: tuple[str, ...] = ()
    """Histogram metrics of input features, watched for drift."""
    error_rate: str = ""
    """PromQL (prometheus) or metric name (scrape) of the error rate ("" if none)."""
    latency_p95: str = ""
    """PromQL (prometheus) or histogram name (scrape) of the 95th percentile latency."""
    throughput: str = ""
    """PromQL (prometheus) or counter name (scrape) of the request rate."""
    target: str = ""
    """For ``scrape`` without ``url``: the target whose port was used ("" otherwise)."""


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """The ``[model.drift]`` table: how drift is scored and when it is alarming."""

    method: Literal["psi", "js"] = "psi"
    """Population stability index or Jensen-Shannon divergence."""
    warn: float = 0.1
    """Scores at or above this are a warning."""
    alert: float = 0.25
    """Scores at or above this are an alert."""
    reference: Literal["training", "before_release", "fixed"] = "training"
    """Reference distribution: the training histograms shipped with the model, the window
    before the last release, or a fixed window."""
    reference_path: str | None = None
    """Path inside the repository of the training histograms (for ``training``)."""
    reference_start: datetime | None = None
    """Start of the fixed reference window (UTC; for ``fixed``)."""
    reference_end: datetime | None = None
    """End of the fixed reference window (UTC; for ``fixed``)."""
    window: float = 600.0
    """Seconds of recent data compared against the reference."""
    min_samples: int = 200
    """Below this many samples the score is "not enough data"."""


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """The ``[model.guard]`` table: checks run after a rollout."""

    duration: float = 300.0
    """Seconds the new revision is watched after a rollout."""
    auto_rollback: bool = False
    """Roll back on its own when a check fails during the watch."""
    max_error_rate: float | None = None
    """Highest acceptable error rate (fraction), or None for no check."""
    max_latency_p95: float | None = None
    """Highest acceptable 95th percentile latency in seconds, or None."""
    max_drift: float | None = None
    """Highest acceptable drift score, or None."""
    on_inconclusive: str = ""
    """What a verify window without a verdict does: ``"rollback"`` (through the journalled
    rollback, like a breach), ``"alert"`` (the operator decides; ``u`` rolls back) or
    ``"accept"`` (recorded, nothing else). "" (not set): ``"rollback"`` on production
    targets when ``auto_rollback`` is on, else ``"alert"``."""
    max_consecutive_errors: int = 4
    """Source errors in a row (unreachable, garbled or stale answers) after which a check,
    and so the whole window, is inconclusive."""


#: The values of ``[model.guard] on_inconclusive``.
ON_INCONCLUSIVE = ("rollback", "alert", "accept")

#: The values of ``[model.retrain] executor``.
RETRAIN_EXECUTORS = ("local", "docker", "kubernetes")


@dataclass(frozen=True, slots=True)
class RetrainConfig:
    """The ``[model.retrain]`` table: how the model is retrained on recent data."""

    command: str
    """Shell command run in a worktree at the chosen commit; it rewrites the model's files."""
    executor: str = "local"
    """Where the command runs: one of :data:`RETRAIN_EXECUTORS`."""
    window: float = 6 * 3600.0
    """Seconds of recent data the command is asked to train on (``--window`` overrides)."""
    timeout: float = 3600.0
    """Seconds the command may take before it is stopped and the retrain fails."""
    auto_release: bool = False
    """Release a retrained commit that passes its tests and quality gate on its own, to the
    model's targets that are not marked ``production`` (never to production ones)."""
    target: str = ""
    """``docker``/``kubernetes``: the model's target whose Docker engine or cluster runs the
    command ("" = the model's first target of that kind)."""
    image: str = ""
    """``docker``/``kubernetes``: the image the command runs in ("" = the model's image
    built from the commit, ``<image>:<short sha>``)."""
    job_template: str = "deploy/retrain-job.yaml"
    """``kubernetes``: path, in the model repository at the commit, of the Job manifest."""


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """One ``[[model]]`` table."""

    name: str
    """Unique model name."""
    repo: Path
    """Local clone of the model repository (absolute; relative paths are resolved against
    the configuration file's directory)."""
    test_command: str = ""
    """Shell command running the model's tests in a worktree ("" when not configured)."""
    test_timeout: float = 900.0
    """Seconds a test run may take before it is stopped."""
    image: str = ""
    """Image repository; builds are tagged ``<image>:<short sha>`` ("" when not configured)."""
    dockerfile: str = "Dockerfile"
    """Dockerfile path relative to the repository root."""
    quality: dict[str, float] = field(default_factory=dict)
    """Minimum values of the metrics the tests write; a release stops below them."""
    targets: tuple[TargetConfig, ...] = ()
    """Where the model runs."""
    metrics: MetricsConfig | None = None
    """Where its metrics come from, or None when not configured."""
    drift: DriftConfig = field(default_factory=DriftConfig)
    """Drift scoring settings."""
    guard: GuardConfig = field(default_factory=GuardConfig)
    """Post-rollout checks."""
    retrain: RetrainConfig | None = None
    """How the model is retrained, or None when not configured."""

    def target(self, name: str) -> TargetConfig:
        """Return the target called ``name``; raises NotFound when there is none."""
        for target in self.targets:
            if target.name == name:
                return target
        raise NotFound(f"model {self.name!r} has no target {name!r}")


@dataclass(frozen=True, slots=True)
class AlertmanagerConfig:
    """The top-level ``[alertmanager]`` table: the Alertmanager whose alerts the console shows.

    One Alertmanager serves every model; an alert belongs to a model through its
    ``model`` label.
    """

    url: str
    """Base URL of Alertmanager (its API v2 is below ``/api/v2``)."""
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    """Extra HTTP headers sent with every request (left out of ``repr``: they may carry keys)."""
    token: Secret | None = None
    """Bearer token (from ``token_env`` or ``token_file``)."""
    timeout: float = 5.0
    """Seconds allowed per request."""
    refresh: float = 15.0
    """Seconds between two reads of the alerts in the console."""


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration."""

    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    """The ``[console]`` settings."""
    models: tuple[ModelConfig, ...] = ()
    """The configured models, in file order."""
    source: Path | None = None
    """The file this came from, or None when no file was found."""
    secret_variables: frozenset[str] = frozenset()
    """The environment variables named by ``*_env`` keys anywhere in the file."""
    alertmanager: AlertmanagerConfig | None = None
    """The ``[alertmanager]`` table, or None when no Alertmanager is configured."""

    @property
    def child_env(self) -> ChildEnv:
        """What child processes get of the console's environment.

        The ``[console] child_env`` allow-list, less every variable a ``*_env``
        key names (secrets are never passed on, even when the list matches them).
        """
        return ChildEnv(self.console.child_env, self.secret_variables)

    def model(self, name: str) -> ModelConfig:
        """Return the model called ``name``; raises NotFound when there is none."""
        for model in self.models:
            if model.name == name:
                return model
        raise NotFound(f"no model {name!r} in the configuration")

    @property
    def read_only(self) -> bool:
        """True when the whole console is read-only."""
        return self.console.read_only

    def with_read_only(self, read_only: bool = True) -> Config:
        """Return a copy with the console (and so every target) read-only (``--read-only``)."""
        if not read_only:
            return self
        models = tuple(
            dataclasses.replace(
                model,
                targets=tuple(
                    dataclasses.replace(t, console_read_only=True) for t in model.targets
                ),
            )
            for model in self.models
        )
        return dataclasses.replace(
            self, console=dataclasses.replace(self.console, read_only=True), models=models
        )


# --------------------------------------------------------------------------
# Discovery and loading


def discover(
    explicit: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """Return the configuration file to use, or None when there is none.

    Order: ``explicit`` (the ``--config`` flag), ``$MRC_CONFIG``, ``./mrc.toml``,
    ``$XDG_CONFIG_HOME/mrc/config.toml``. An explicit path or ``MRC_CONFIG`` is
    returned even when it does not exist, so that :func:`load` reports it.
    """
    env = os.environ if environ is None else environ
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    if env.get("MRC_CONFIG"):
        return Path(env["MRC_CONFIG"]).expanduser()
    local = (cwd or Path.cwd()) / "mrc.toml"
    if local.is_file():
        return local
    user = paths.user_config_file(env)
    if user.is_file():
        return user
    return None


def load(
    explicit: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Find (see :func:`discover`) and load the configuration.

    Returns an empty Config (``source`` None) when no file is found. Raises
    ConfigError listing every problem when the file is unreadable or invalid.
    """
    path = discover(explicit, environ=environ, cwd=cwd)
    if path is None:
        return Config()
    return load_file(path, environ=environ)


def load_file(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate one configuration file.

    Raises ConfigError (with every problem) when it cannot be read or is invalid.
    """
    file = Path(path).expanduser()
    try:
        raw = file.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(str(file), [f"cannot read the file: {reason}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(str(file), [f"not UTF-8 text (byte {error.start})"]) from None
    return parse(text, source=file, environ=environ)


def parse(
    text: str,
    *,
    source: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate TOML ``text``; relative paths resolve against ``source``'s directory.

    Returns the Config; raises ConfigError with every problem found.
    """
    label = str(source) if source is not None else "<config>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(label, [f"invalid TOML: {error}"]) from None
    base = source.resolve().parent if source is not None else Path.cwd()
    builder = _Builder(base, os.environ if environ is None else environ)
    config = builder.build(data, source.resolve() if source is not None else None)
    if builder.problems:
        raise ConfigError(label, builder.problems)
    return config


# --------------------------------------------------------------------------
# Validation


_MISSING: Any = object()
_ENV_PATTERN = re.compile(r"[A-Za-z0-9_*?\[\]!]+")


def _secret_variables(data: object) -> frozenset[str]:
    """Return the variable names given by ``*_env`` string keys anywhere in ``data``."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and key.endswith("_env") and value.strip():
                found.add(value.strip())
            else:
                found |= _secret_variables(value)
    elif isinstance(data, list):
        for item in data:
            found |= _secret_variables(item)
    return frozenset(found)


def _describe(value: object) -> str:
    """Return the TOML type and a short rendering of ``value`` for an error message."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        value = redact_url(value)
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'string "{shown}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime | date | time):
        return f"date-time {value.isoformat()}"
    return type(value).__name__


class _Table:
    """A TOML table being read, reporting problems under its key path."""

    def __init__(self, data: dict[str, Any], path: str, problems: list[str]) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{self.key(name)}: {message}")

    def has(self, name: str) -> bool:
        return name in self.data

    def _get(self, name: str, default: Any) -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is _MISSING:
                self.problem(name, "required field missing")
            return _MISSING
        return self.data[name]

    def string(self, name: str, default: Any = _MISSING, *, allow_empty: bool = False) -> Any:
        value = self._get(name, default)
        if value is _MISSING:
            return default if default is not _MISSING else ""
        if not isinstance(value, str):
            self.problem(name, f"expected a string, got {_describe(value)}")
            return default if default is not _MISSING else ""
        if not value.strip() and not allow_empty:
            self.problem(name, "must not be empty")
            return default if default is not _MISSING else ""
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _MISSING) -> Any:
        value = self.string(name, default)
        if value not in choices and value == self.data.get(name):
            options = ", ".join(choices)
            self.problem(name, f'unknown value "{value}" (expected {options})')
            return default if default is not _MISSING else choices[0]
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, default)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.problem(name, f"expected true or false, got {_describe(value)}")
            return default
        return value

    def number(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> Any:
        value = self._get(name, default)
        if value is _MISSING:
            return default if default is not _MISSING else 0.0
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(name, f"expected a number, got {_describe(value)}")
            return default if default is not _MISSING else 0.0
        if math.isnan(value) or math.isinf(value):
            self.problem(name, f"expected a finite number, got {value}")
            return default if default is not _MISSING else 0.0
        if minimum is not None and value < minimum:
            self.problem(name, f"must be at least {minimum:g}, got {value:g}")
        if maximum is not None and value > maximum:
            self.problem(name, f"must be at most {maximum:g}, got {value:g}")
        return float(value)

    def integer(self, name: str, default: Any = _MISSING, *, minimum: int | None = None) -> Any:
        value = self._get(name, default)
        if value is _MISSING:
            return default if default is not _MISSING else 0
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(name, f"expected an integer, got {_describe(value)}")
            return default if default is not _MISSING else 0
        if minimum is not None and value < minimum:
            self.problem(name, f"must be at least {minimum}, got {value}")
        return value

    def port(self, name: str) -> int | None:
        value = self.integer(name, None)
        if isinstance(value, int) and not 1 <= value <= 65535 and self.has(name):
            self.problem(name, f"expected a port between 1 and 65535, got {value}")
            return None
        return value if isinstance(value, int) else None

    def duration(self, name: str, default: float) -> float:
        value = self._get(name, default)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.problem(name, f'expected a duration such as "30s", got {_describe(value)}')
            return default
        try:
            return durations.seconds(value)  # a TOML number means seconds
        except durations.DurationError as exc:
            self.problem(name, str(exc))
            return default

    def filepath(self, name: str, base: Path, default: Any = _MISSING) -> Any:
        value = self.string(name, default)
        if not isinstance(value, str) or not value:
            return default if default is not _MISSING else None
        candidate = Path(value).expanduser()
        if not candidate.is_absolute():
            candidate = base / candidate
        return candidate

    def string_list(self, name: str) -> tuple[str, ...]:
        value = self._get(name, ())
        if value is _MISSING:
            return ()
        if not isinstance(value, list):
            self.problem(name, f"expected an array of strings, got {_describe(value)}")
            return ()
        result = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.problems.append(
                    f"{self.key(name)}[{index}]: expected a string, got {_describe(item)}"
                )
            else:
                result.append(item)
        return tuple(result)

    def mapping(self, name: str, check: Callable[[object], bool], what: str) -> dict[str, Any]:
        value = self._get(name, {})
        if value is _MISSING:
            return {}
        if not isinstance(value, dict):
            self.problem(name, f"expected a table, got {_describe(value)}")
            return {}
        result = {}
        for key, item in value.items():
            if not check(item):
                self.problems.append(
                    f"{self.key(name)}.{key}: expected {what}, got {_describe(item)}"
                )
            else:
                result[key] = item
        return result

    def timestamp(self, name: str) -> datetime | None:
        value = self._get(name, None)
        if value is _MISSING or value is None:
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                self.problem(name, f'invalid date-time "{value}" (expected RFC 3339)')
                return None
        if not isinstance(value, datetime):
            self.problem(name, f"expected a date-time, got {_describe(value)}")
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def table(self, name: str) -> _Table | None:
        value = self._get(name, None)
        if value is _MISSING or value is None:
            return None
        if not isinstance(value, dict):
            self.problem(name, f"expected a table, got {_describe(value)}")
            return None
        return _Table(value, self.key(name), self.problems)

    def tables(self, name: str) -> list[_Table]:
        value = self._get(name, None)
        if value is _MISSING or value is None:
            return []
        if not isinstance(value, list):
            self.problem(
                name, f"expected an array of tables ([[{self.key(name)}]]), got {_describe(value)}"
            )
            return []
        result = []
        for index, item in enumerate(value):
            key = f"{self.key(name)}[{index}]"
            if not isinstance(item, dict):
                self.problems.append(f"{key}: expected a table, got {_describe(item)}")
                continue
            result.append(_Table(item, key, self.problems))
        return result

    def secret(self, name: str, base: Path, environ: Mapping[str, str]) -> Secret | None:
        """Read ``<name>_env`` / ``<name>_file``; a plain ``<name>`` key is refused."""
        env_key, file_key = f"{name}_env", f"{name}_file"
        if name in self.data:
            self.used.add(name)
            self.problem(
                name,
                f"secrets are not written in the file: use {env_key} (environment variable "
                f"name) or {file_key} (path of a file holding it)",
            )
        if self.has(env_key) and self.has(file_key):
            self.used.update((env_key, file_key))
            self.problem(env_key, f"give either {env_key} or {file_key}, not both")
            return None
        if self.has(env_key):
            variable = self.string(env_key)
            if not variable:
                return None
            value = environ.get(variable)
            if not value:
                self.problem(env_key, f"environment variable {variable} is not set or empty")
                return None
            return Secret(value)
        if self.has(file_key):
            file = self.filepath(file_key, base)
            if file is None:
                return None
            try:
                value = file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as error:
                reason = getattr(error, "strerror", None) or str(error.__class__.__name__)
                self.problem(file_key, f"cannot read {file}: {reason}")
                return None
            if not value:
                self.problem(file_key, f"{file} is empty")
                return None
            return Secret(value)
        return None

    def finish(self) -> None:
        """Report every key that was not read as unknown."""
        known = sorted(self.used)
        for name in self.data:
            if name in self.used:
                continue
            close = difflib.get_close_matches(name, known, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            self.problem(name, f"unknown key{hint}")


class _Builder:
    def __init__(self, base: Path, environ: Mapping[str, str]) -> None:
        self.base = base
        self.environ = environ
        self.problems: list[str] = []
        self.child_env_policy = ChildEnv()

    def build(self, data: dict[str, Any], source: Path | None) -> Config:
        root = _Table(data, "", self.problems)
        console = ConsoleSettings()
        console_table = root.table("console")
        if console_table is not None:
            console = ConsoleSettings(
                read_only=console_table.boolean("read_only", False),
                theme=console_table.string("theme", "textual-dark"),
                child_env=self.child_env(console_table),
            )
            console_table.finish()
        secrets = _secret_variables(data)
        self.child_env_policy = ChildEnv(console.child_env, secrets)
        models: list[ModelConfig] = []
        seen: dict[str, str] = {}
        for table in root.tables("model"):
            model = self.model(table, console.read_only)
            if model is None:
                continue
            if model.name in seen:
                self.problems.append(
                    f'{table.key("name")}: duplicate model name "{model.name}" '
                    f"(also {seen[model.name]})"
                )
            else:
                seen[model.name] = table.path
            models.append(model)
        alertmanager_table = root.table("alertmanager")
        alertmanager = self.alertmanager(alertmanager_table) if alertmanager_table else None
        root.finish()
        return Config(
            console=console,
            models=tuple(models),
            source=source,
            secret_variables=secrets,
            alertmanager=alertmanager,
        )

    def alertmanager(self, table: _Table) -> AlertmanagerConfig:
        url = table.string("url")
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                table.problem("url", f'expected an http(s) URL, got "{redact_url(url)}"')
        config = AlertmanagerConfig(
            url=url.rstrip("/"),
            headers=table.mapping("headers", lambda v: isinstance(v, str), "a string"),
            token=table.secret("token", self.base, self.environ),
            timeout=table.duration("timeout", 5.0),
            refresh=table.duration("refresh", 15.0),
        )
        table.finish()
        return config

    @staticmethod
    def child_env(table: _Table) -> tuple[str, ...]:
        """Return ``[console] child_env``: variable names and globs (default: the built-in list)."""
        if not table.has("child_env"):
            return DEFAULT_CHILD_ENV
        names = table.string_list("child_env")
        for index, name in enumerate(names):
            if not _ENV_PATTERN.fullmatch(name):
                table.problems.append(
                    f"{table.key('child_env')}[{index}]: {_describe(name)} is not a variable "
                    "name or glob (letters, digits, _ and the glob characters * ? [ ] !)"
                )
        return tuple(n for n in names if _ENV_PATTERN.fullmatch(n))

    def model(self, table: _Table, read_only: bool) -> ModelConfig | None:
        name = table.string("name")
        repo = table.filepath("repo", self.base)
        test_command = table.string("test_command", "")
        test_timeout = table.duration("test_timeout", 900.0)
        image = table.string("image", "")
        dockerfile = table.string("dockerfile", "Dockerfile")
        quality = {
            key: float(value)
            for key, value in table.mapping(
                "quality",
                lambda v: isinstance(v, int | float) and not isinstance(v, bool),
                "a number",
            ).items()
        }
        targets: list[TargetConfig] = []
        seen: dict[str, str] = {}
        for target_table in table.tables("target"):
            target = self.target(target_table, name or "", read_only)
            if target is None:
                continue
            if target.name in seen:
                self.problems.append(
                    f'{target_table.key("name")}: duplicate target name "{target.name}" '
                    f"(also {seen[target.name]})"
                )
            else:
                seen[target.name] = target_table.path
            targets.append(target)
        metrics_table = table.table("metrics")
        metrics = self.metrics(metrics_table, targets) if metrics_table else None
        drift_table = table.table("drift")
        drift = self.drift(drift_table) if drift_table else DriftConfig()
        guard_table = table.table("guard")
        guard = self.guard(guard_table) if guard_table else GuardConfig()
        retrain_table = table.table("retrain")
        retrain = self.retrain(retrain_table, targets) if retrain_table else None
        table.finish()
        if not name or repo is None:
            return None
        return ModelConfig(
            name=name,
            repo=repo,
            test_command=test_command,
            test_timeout=test_timeout,
            image=image,
            dockerfile=dockerfile,
            quality=quality,
            targets=tuple(targets),
            metrics=metrics,
            drift=drift,
            guard=guard,
            retrain=retrain,
        )

    def target(self, table: _Table, model: str, read_only: bool) -> TargetConfig | None:
        name = table.string("name")
        kind_value = table.data.get("kind", _MISSING)
        kind = table.string("kind")
        common: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "production": table.boolean("production", False),
            "read_only": table.boolean("read_only", False),
            "console_read_only": read_only,
        }
        parse_kind = self.TARGET_PARSERS.get(kind or "")
        if parse_kind is None:
            if isinstance(kind_value, str) and kind_value.strip():
                table.problem(
                    "kind",
                    f'unknown target kind "{kind_value}" (expected {", ".join(TARGET_KINDS)})',
                )
            # Keys of an unknown kind cannot be checked; do not report them as unknown too.
            return None
        target = parse_kind(self, table, model, common)
        table.finish()
        return target if name else None

    def kubernetes_target(
        self, table: _Table, model: str, common: dict[str, Any]
    ) -> KubernetesTargetConfig:
        deployment = table.string("deployment", model)
        return KubernetesTargetConfig(
            **common,
            context=table.string("context", None),
            kubeconfig=table.filepath("kubeconfig", self.base, None),
            namespace=table.string("namespace", "default"),
            deployment=deployment,
            container=table.string("container", deployment),
            timeout=table.duration("timeout", 10.0),
        )

    def docker_target(
        self, table: _Table, model: str, common: dict[str, Any]
    ) -> DockerTargetConfig:
        return DockerTargetConfig(
            **common,
            base_url=table.string("base_url", None),
            container=table.string("container", model),
            port=table.port("port"),
            health_path=self.http_path(table, "health_path"),
            keep=table.integer("keep", 5, minimum=1),
            timeout=table.duration("timeout", 10.0),
            ready_timeout=table.duration("ready_timeout", 60.0),
        )

    def local_target(self, table: _Table, model: str, common: dict[str, Any]) -> LocalTargetConfig:
        command = table.string("command")
        port = table.port("port")
        if command and port is None and "{port}" in command:
            table.problem("port", "required field missing (the command uses {port})")
        return LocalTargetConfig(
            **common,
            command=command,
            port=port,
            health_path=self.http_path(table, "health_path"),
            keep=table.integer("keep", 3, minimum=1),
            timeout=table.duration("timeout", 10.0),
            ready_timeout=table.duration("ready_timeout", 60.0),
            child_env=self.child_env_policy,
        )

    #: The keys of each target kind: kind -> the method reading its table (the keys every
    #: kind shares are read before, into ``common``).
    TARGET_PARSERS: ClassVar[
        Mapping[str, Callable[[_Builder, _Table, str, dict[str, Any]], TargetConfig]]
    ] = {
        "kubernetes": kubernetes_target,
        "docker": docker_target,
        "local": local_target,
    }

    @staticmethod
    def http_path(table: _Table, name: str) -> str:
        value = table.string(name, "/healthz")
        if not value.startswith("/"):
            table.problem(name, f'must start with "/", got "{value}"')
        return value

    def metrics(self, table: _Table, targets: list[TargetConfig]) -> MetricsConfig:
        source = table.choice("source", METRICS_SOURCES)
        url = table.string("url", "")
        via = table.string("target", "")
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                table.problem("url", f'expected an http(s) URL, got "{redact_url(url)}"')
        if source == "prometheus" and not url and table.data.get("source") == "prometheus":
            table.problem("url", "required field missing (the Prometheus base URL)")
        if source == "scrape" and not url:
            url, via = self.scrape_url(table, targets, via)
        elif via:
            table.problem("target", 'only used by source = "scrape" without url')
        token = table.secret("token", self.base, self.environ)
        password = table.secret("password", self.base, self.environ)
        username = table.string("username", "")
        if password is not None and not username:
            table.problem("username", "required field missing (password_* is set)")
        config = MetricsConfig(
            source=source,
            url=url,
            headers=table.mapping("headers", lambda v: isinstance(v, str), "a string"),
            token=token,
            username=username,
            password=password,
            timeout=table.duration("timeout", 5.0),
            refresh=table.duration("refresh", 5.0),
            selector=table.string("selector", "", allow_empty=True),
            prediction_histogram=table.string("prediction_histogram", "", allow_empty=True),
            feature_histograms=table.string_list("feature_histograms"),
            error_rate=table.string("error_rate", "", allow_empty=True),
            latency_p95=table.string("latency_p95", "", allow_empty=True),
            throughput=table.string("throughput", "", allow_empty=True),
            target=via,
        )
        table.finish()
        return config

    @staticmethod
    def scrape_url(table: _Table, targets: list[TargetConfig], via: str) -> tuple[str, str]:
        """Return the /metrics URL of a local or docker target and that target's name."""
        candidates = [t for t in targets if isinstance(t, LocalTargetConfig | DockerTargetConfig)]
        if via:
            candidates = [t for t in candidates if t.name == via]
            if not candidates:
                table.problem("target", f'no local or docker target named "{via}" in this model')
                return "", via
        for target in candidates:
            if target.port is None:
                continue
            host = "127.0.0.1"
            if isinstance(target, DockerTargetConfig) and target.base_url:
                parts = urlsplit(target.base_url)
                if parts.scheme in ("tcp", "http", "https", "ssh") and parts.hostname:
                    host = parts.hostname
            return f"http://{host}:{target.port}/metrics", target.name
        if table.data.get("source") == "scrape":
            table.problem(
                "url",
                "required field missing (no local or docker target with a port to scrape)",
            )
        return "", via

    def drift(self, table: _Table) -> DriftConfig:
        method = table.choice("method", DRIFT_METHODS, "psi")
        warn = table.number("warn", 0.1, minimum=0.0)
        alert = table.number("alert", 0.25, minimum=0.0)
        if (
            isinstance(table.data.get("warn", 0.1), int | float)
            and isinstance(table.data.get("alert", 0.25), int | float)
            and warn > alert
        ):
            table.problem("warn", f"must not be above alert ({warn:g} > {alert:g})")
        reference = table.choice("reference", DRIFT_REFERENCES, "training")
        reference_path = table.string("reference_path", None)
        start = table.timestamp("reference_start")
        end = table.timestamp("reference_end")
        if reference == "fixed":
            if start is None and not table.has("reference_start"):
                table.problem("reference_start", 'required field missing (reference = "fixed")')
            if end is None and not table.has("reference_end"):
                table.problem("reference_end", 'required field missing (reference = "fixed")')
            if start is not None and end is not None and start >= end:
                table.problem("reference_end", "must be after reference_start")
        config = DriftConfig(
            method=method,
            warn=warn,
            alert=alert,
            reference=reference,
            reference_path=reference_path,
            reference_start=start,
            reference_end=end,
            window=table.duration("window", 600.0),
            min_samples=table.integer("min_samples", 200, minimum=1),
        )
        if config.window <= 0 and table.has("window"):
            table.problem("window", "must be longer than 0s")
        table.finish()
        return config

    @staticmethod
    def retrain(table: _Table, targets: list[TargetConfig]) -> RetrainConfig | None:
        command = table.string("command")
        executor = table.choice("executor", RETRAIN_EXECUTORS, "local")
        config = RetrainConfig(
            command=command or "",
            executor=executor or "local",
            window=table.duration("window", 6 * 3600.0),
            timeout=table.duration("timeout", 3600.0),
            auto_release=table.boolean("auto_release", False),
            target=table.string("target", ""),
            image=table.string("image", ""),
            job_template=table.string("job_template", "deploy/retrain-job.yaml"),
        )
        if config.window <= 0 and table.has("window"):
            table.problem("window", "must be longer than 0s")
        if config.timeout <= 0 and table.has("timeout"):
            table.problem("timeout", "must be longer than 0s")
        if config.executor != "local":
            kinds = [t for t in targets if t.kind == config.executor]
            if config.target and not any(t.name == config.target for t in kinds):
                table.problem(
                    "target", f'names no {config.executor} target of this model: "{config.target}"'
                )
            elif not kinds:
                table.problem(
                    "executor",
                    f'"{config.executor}" needs a {config.executor} target of this model to run on',
                )
        table.finish()
        return config if command else None

    @staticmethod
    def guard(table: _Table) -> GuardConfig:
        config = GuardConfig(
            duration=table.duration("duration", 300.0),
            auto_rollback=table.boolean("auto_rollback", False),
            max_error_rate=table.number("max_error_rate", None, minimum=0.0, maximum=1.0),
            max_latency_p95=table.number("max_latency_p95", None, minimum=0.0),
            max_drift=table.number("max_drift", None, minimum=0.0),
            on_inconclusive=table.choice("on_inconclusive", ON_INCONCLUSIVE, ""),
            max_consecutive_errors=table.integer("max_consecutive_errors", 4, minimum=1),
        )
        table.finish()
        return config


#: The target kinds a ``[[model.target]]`` may name (the keys of the parser table).
TARGET_KINDS = tuple(_Builder.TARGET_PARSERS)
