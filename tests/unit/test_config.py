"""Configuration loading, discovery and validation messages."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core import config
from core.config import (
    Config,
    DockerTargetConfig,
    KubernetesTargetConfig,
    LocalTargetConfig,
    Secret,
)
from core.errors import ConfigError, NotFound

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mrc.toml"
ENV = {"PROMETHEUS_TOKEN": "tok-3141-secret", "HOME": "/home/someone"}

MINIMAL = """
[[model]]
name = "m"
repo = "repo"
"""


def write(tmp_path: Path, text: str, name: str = "mrc.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.load_file(path, environ=environ if environ is not None else {})
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    return caught.value.problems


# --------------------------------------------------------------------------
# The good file


def test_example_file_loads_with_every_section() -> None:
    loaded = config.load_file(EXAMPLE, environ=ENV)
    assert loaded.source == EXAMPLE.resolve()
    assert loaded.console.theme == "textual-dark" and not loaded.read_only
    (model,) = loaded.models
    assert model.name == "churn"
    assert model.repo == Path("~/src/churn-model").expanduser()
    assert model.test_timeout == 15 * 60
    assert model.quality == {"accuracy": 0.80}
    kube, docker, local = model.targets
    assert isinstance(kube, KubernetesTargetConfig)
    assert (kube.context, kube.namespace, kube.deployment, kube.container) == (
        "prod-eu",
        "ml",
        "churn",
        "server",
    )
    assert kube.production and kube.timeout == 10.0
    assert kube.kubeconfig == Path("~/.kube/config").expanduser()
    assert isinstance(docker, DockerTargetConfig)
    assert (docker.base_url, docker.port, docker.keep) == ("unix:///var/run/docker.sock", 8080, 5)
    assert isinstance(local, LocalTargetConfig)
    assert (local.command, local.keep, local.health_path) == (
        "python -m server --port {port}",
        3,
        "/healthz",
    )
    assert model.metrics is not None
    assert model.metrics.source == "prometheus"
    assert model.metrics.token is not None
    assert model.metrics.token.reveal() == "tok-3141-secret"
    assert model.metrics.refresh == 5.0
    assert model.metrics.feature_histograms == ("model_feature_value",)
    assert model.drift.method == "psi" and model.drift.window == 600.0
    assert (model.drift.warn, model.drift.alert, model.drift.min_samples) == (0.1, 0.25, 200)
    assert model.guard.duration == 300.0 and model.guard.max_latency_p95 == 0.5
    assert loaded.model("churn") is model
    assert model.target("edge") is docker


def test_defaults_of_a_minimal_model(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
[[model.target]]
name = "k"
kind = "kubernetes"

[[model.target]]
name = "d"
kind = "docker"
"""
    )
    loaded = config.load_file(write(tmp_path, text), environ={})
    (model,) = loaded.models
    assert model.repo == tmp_path.resolve() / "repo"  # relative to the file's directory
    assert model.metrics is None
    assert model.drift == config.DriftConfig()
    kube, docker = model.targets
    assert isinstance(kube, KubernetesTargetConfig)
    assert (kube.namespace, kube.deployment, kube.container, kube.timeout) == (
        "default",
        "m",
        "m",
        10.0,
    )
    assert isinstance(docker, DockerTargetConfig)
    assert (docker.keep, docker.health_path, docker.container) == (5, "/healthz", "m")


def test_container_defaults_to_the_deployment_name(tmp_path: Path) -> None:
    text = MINIMAL + '[[model.target]]\nname = "k"\nkind = "kubernetes"\ndeployment = "srv"\n'
    (target,) = config.load_file(write(tmp_path, text), environ={}).models[0].targets
    assert isinstance(target, KubernetesTargetConfig)
    assert target.container == "srv"


def test_scrape_url_derived_from_the_local_target_port(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
[[model.target]]
name = "local"
kind = "local"
command = "serve --port {port}"
port = 9123

[model.metrics]
source = "scrape"
"""
    )
    metrics = config.load_file(write(tmp_path, text), environ={}).models[0].metrics
    assert metrics is not None
    assert (metrics.url, metrics.target) == ("http://127.0.0.1:9123/metrics", "local")


def test_scrape_url_of_a_remote_docker_host(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
[[model.target]]
name = "edge"
kind = "docker"
base_url = "ssh://deploy@edge-7.example"
port = 8081

[model.metrics]
source = "scrape"
target = "edge"
"""
    )
    metrics = config.load_file(write(tmp_path, text), environ={}).models[0].metrics
    assert metrics is not None and metrics.url == "http://edge-7.example:8081/metrics"


def test_fixed_drift_reference_window(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
[model.drift]
reference = "fixed"
reference_start = 2026-03-01T00:00:00Z
reference_end = "2026-03-02T12:00:00+02:00"
"""
    )
    drift = config.load_file(write(tmp_path, text), environ={}).models[0].drift
    assert drift.reference_start == datetime(2026, 3, 1, tzinfo=UTC)
    assert drift.reference_end == datetime(2026, 3, 2, 10, tzinfo=UTC)


def test_empty_file_is_a_config_without_models(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing yet\n")
    loaded = config.load_file(path, environ={})
    assert loaded.models == () and loaded.source == path.resolve()


def test_durations_use_the_one_grammar(tmp_path: Path) -> None:
    text = MINIMAL + 'test_timeout = "2d"\n\n[model.guard]\nduration = 90\n'
    model = config.load_file(write(tmp_path, text), environ={}).models[0]
    assert model.test_timeout == 172800.0
    assert model.guard.duration == 90.0  # a TOML number is seconds


# --------------------------------------------------------------------------
# Bad files: each message names the key path

BAD = [
    pytest.param(
        MINIMAL + '[[model.target]]\nname = "a"\nkind = "local"\ncommand = "x"\n'
        '[[model.target]]\nname = "b"\nkind = "helm"\n',
        'model[0].target[1].kind: unknown target kind "helm" (expected kubernetes, docker, local)',
        id="unknown-target-kind",
    ),
    pytest.param(
        MINIMAL + '[model.drift]\nwarn = "high"\n',
        'model[0].drift.warn: expected a number, got string "high"',
        id="wrong-type-number",
    ),
    pytest.param(
        '[[model]]\nrepo = "."\n',
        "model[0].name: required field missing",
        id="missing-name",
    ),
    pytest.param(
        '[[model]]\nname = "m"\n',
        "model[0].repo: required field missing",
        id="missing-repo",
    ),
    pytest.param(
        '[console]\ncolour = "red"\n',
        "console.colour: unknown key",
        id="unknown-console-key",
    ),
    pytest.param(
        MINIMAL + 'test_timout = "5m"\n',
        'model[0].test_timout: unknown key (did you mean "test_timeout"?)',
        id="unknown-model-key-with-hint",
    ),
    pytest.param(
        MINIMAL + 'test_timeout = "5 minutes"\n',
        'model[0].test_timeout: invalid duration "5 minutes"',
        id="invalid-duration",
    ),
    pytest.param(
        MINIMAL + "[model.guard]\nduration = true\n",
        "model[0].guard.duration: expected a duration",
        id="duration-wrong-type",
    ),
    pytest.param(
        MINIMAL + '\n[[model]]\nname = "m"\nrepo = "other"\n',
        'model[1].name: duplicate model name "m" (also model[0])',
        id="duplicate-model",
    ),
    pytest.param(
        MINIMAL + '[[model.target]]\nname = "t"\nkind = "local"\ncommand = "a"\n'
        '[[model.target]]\nname = "t"\nkind = "local"\ncommand = "b"\n',
        'model[0].target[1].name: duplicate target name "t" (also model[0].target[0])',
        id="duplicate-target",
    ),
    pytest.param(
        MINIMAL + "[model.drift]\nwarn = 0.3\nalert = 0.2\n",
        "model[0].drift.warn: must not be above alert (0.3 > 0.2)",
        id="warn-above-alert",
    ),
    pytest.param(
        MINIMAL + '[model.drift]\nmethod = "kl"\n',
        'model[0].drift.method: unknown value "kl" (expected psi, js)',
        id="unknown-drift-method",
    ),
    pytest.param(
        MINIMAL + '[model.metrics]\nsource = "graphite"\nurl = "http://x:1"\n',
        'model[0].metrics.source: unknown value "graphite"',
        id="unknown-metrics-source",
    ),
    pytest.param(
        MINIMAL + '[model.metrics]\nsource = "prometheus"\n',
        "model[0].metrics.url: required field missing",
        id="prometheus-without-url",
    ),
    pytest.param(
        MINIMAL + '[[model.target]]\nname = "d"\nkind = "docker"\nport = 70000\n',
        "model[0].target[0].port: expected a port between 1 and 65535, got 70000",
        id="port-out-of-range",
    ),
    pytest.param(
        MINIMAL + '[[model.target]]\nname = "d"\nkind = "docker"\nkeep = 0\n',
        "model[0].target[0].keep: must be at least 1, got 0",
        id="keep-zero",
    ),
    pytest.param(
        MINIMAL + '[[model.target]]\nname = "k"\nkind = "kubernetes"\nproduction = "yes"\n',
        'model[0].target[0].production: expected true or false, got string "yes"',
        id="bool-wrong-type",
    ),
    pytest.param(
        MINIMAL + '[[model.target]]\nname = "l"\nkind = "local"\n',
        "model[0].target[0].command: required field missing",
        id="local-without-command",
    ),
    pytest.param(
        MINIMAL + '[[model.target]]\nkind = "docker"\n',
        "model[0].target[0].name: required field missing",
        id="target-without-name",
    ),
    pytest.param(
        '[model]\nname = "m"\nrepo = "."\n',
        "model: expected an array of tables ([[model]]), got a table",
        id="model-not-array",
    ),
    pytest.param(
        MINIMAL + 'quality = { accuracy = "high" }\n',
        'model[0].quality.accuracy: expected a number, got string "high"',
        id="quality-not-number",
    ),
    pytest.param(
        MINIMAL + '[model.metrics]\nsource = "prometheus"\nurl = "localhost:9090"\n',
        'model[0].metrics.url: expected an http(s) URL, got "localhost:9090"',
        id="url-without-scheme",
    ),
    pytest.param(
        MINIMAL + '[model.metrics]\nsource = "prometheus"\nurl = "http://p:9090"\n'
        'token_env = "NO_SUCH_VARIABLE_HERE"\n',
        "model[0].metrics.token_env: environment variable NO_SUCH_VARIABLE_HERE is not set",
        id="secret-env-missing",
    ),
    pytest.param(
        MINIMAL + '[model.metrics]\nsource = "prometheus"\nurl = "http://p:9090"\n'
        'password_file = "/nonexistent/pw"\nusername = "u"\n',
        "model[0].metrics.password_file: cannot read /nonexistent/pw",
        id="secret-file-unreadable",
    ),
    pytest.param(
        MINIMAL + '[model.metrics]\nsource = "prometheus"\nurl = "http://p:9090"\ntoken = "abc"\n',
        "model[0].metrics.token: secrets are not written in the file",
        id="plain-secret",
    ),
    pytest.param(
        MINIMAL + '[model.drift]\nreference = "fixed"\n',
        "model[0].drift.reference_start: required field missing",
        id="fixed-without-window",
    ),
    pytest.param(
        MINIMAL + "[model.guard]\nmax_error_rate = 1.5\n",
        "model[0].guard.max_error_rate: must be at most 1, got 1.5",
        id="rate-above-one",
    ),
    pytest.param(
        MINIMAL + '[model.metrics]\nsource = "scrape"\n',
        "model[0].metrics.url: required field missing (no local or docker target",
        id="scrape-without-port",
    ),
    pytest.param(
        "nonsense = 1\n[console]\nread_only = false\n",
        "nonsense: unknown key",
        id="unknown-top-level-key",
    ),
    pytest.param(
        MINIMAL + '[model.metrics]\nsource = "prometheus"\nurl = "http://p:1"\n'
        'feature_histograms = ["a", 3]\n',
        "model[0].metrics.feature_histograms[1]: expected a string, got integer 3",
        id="list-item-wrong-type",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_config_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    problems = problems_of(tmp_path, text)
    assert any(p.startswith(expected) for p in problems), problems


def test_distinct_bad_configs_are_at_least_fifteen() -> None:
    keys = {param.values[1].split(":")[0] for param in BAD}
    assert len(keys) >= 15


def test_invalid_toml_reports_line_and_column(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "[console]\nread_only = \n")
    (problem,) = problems
    assert problem.startswith("invalid TOML:") and "line 2" in problem and "column" in problem


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path / "absent.toml", environ={})
    assert "cannot read the file" in caught.value.problems[0]
    if os.geteuid() != 0:  # root reads everything
        path = write(tmp_path, MINIMAL)
        path.chmod(0)
        with pytest.raises(ConfigError):
            config.load_file(path, environ={})


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """
[console]
colour = "red"

[[model]]
repo = 3
test_timeout = "soon"

  [[model.target]]
  name = "a"
  kind = "helm"

  [model.drift]
  warn = "high"
  alert = -1
"""
    problems = problems_of(tmp_path, text)
    expected = [
        "console.colour: unknown key",
        "model[0].name: required field missing",
        "model[0].repo: expected a string, got integer 3",
        'model[0].test_timeout: invalid duration "soon"',
        'model[0].target[0].kind: unknown target kind "helm"',
        'model[0].drift.warn: expected a number, got string "high"',
        "model[0].drift.alert: must be at least 0, got -1",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)
    assert len(problems) == len(expected), problems


# --------------------------------------------------------------------------
# Secrets


def test_secret_never_prints() -> None:
    secret = Secret("hunter2-value")
    assert str(secret) == "******" and repr(secret) == "******"
    assert f"{secret}" == "******"
    assert secret.reveal() == "hunter2-value"


def test_secrets_from_env_and_file_do_not_leak(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("file-pass-2718\n", encoding="utf-8")
    text = (
        MINIMAL
        + """
[model.metrics]
source = "prometheus"
url = "http://p:9090"
token_env = "MY_TOKEN"
username = "reader"
password_file = "pw"
"""
    )
    loaded = config.load_file(write(tmp_path, text), environ={"MY_TOKEN": "env-token-1618"})
    metrics = loaded.models[0].metrics
    assert metrics is not None and metrics.token is not None and metrics.password is not None
    assert metrics.token.reveal() == "env-token-1618"
    assert metrics.password.reveal() == "file-pass-2718"  # stripped, relative to the file
    for rendering in (str(loaded), repr(loaded), repr(metrics)):
        assert "env-token-1618" not in rendering and "file-pass-2718" not in rendering


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("file-pass-2718", encoding="utf-8")
    text = (
        MINIMAL
        + """
[model.metrics]
source = "prometheus"
url = "http://p:9090"
token_env = "MY_TOKEN"
password_file = "pw"
timeout = "never"
"""
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.load_file(path, environ={"MY_TOKEN": "env-token-1618"})
    message = str(caught.value)
    assert "model[0].metrics.username: required field missing" in message
    assert "model[0].metrics.timeout" in message
    assert "env-token-1618" not in message and "file-pass-2718" not in message


# --------------------------------------------------------------------------
# Discovery


def test_discovery_order(tmp_path: Path) -> None:
    cwd = tmp_path / "work"
    xdg = tmp_path / "xdg"
    cwd.mkdir()
    (xdg / "mrc").mkdir(parents=True)
    env = {"XDG_CONFIG_HOME": str(xdg), "HOME": str(tmp_path / "home")}

    assert config.discover(environ=env, cwd=cwd) is None
    assert config.load(environ=env, cwd=cwd) == Config()

    user_file = xdg / "mrc" / "config.toml"
    user_file.write_text(MINIMAL.replace('"m"', '"from-xdg"'), encoding="utf-8")
    assert config.discover(environ=env, cwd=cwd) == user_file
    assert config.load(environ=env, cwd=cwd).models[0].name == "from-xdg"

    local_file = cwd / "mrc.toml"
    local_file.write_text(MINIMAL.replace('"m"', '"from-cwd"'), encoding="utf-8")
    assert config.load(environ=env, cwd=cwd).models[0].name == "from-cwd"

    env_file = write(tmp_path, MINIMAL.replace('"m"', '"from-env"'), "env.toml")
    env["MRC_CONFIG"] = str(env_file)
    assert config.load(environ=env, cwd=cwd).models[0].name == "from-env"

    flag_file = write(tmp_path, MINIMAL.replace('"m"', '"from-flag"'), "flag.toml")
    assert config.load(flag_file, environ=env, cwd=cwd).models[0].name == "from-flag"

    # A named file that does not exist is an error, not a silent empty config.
    env["MRC_CONFIG"] = str(tmp_path / "missing.toml")
    with pytest.raises(ConfigError):
        config.load(environ=env, cwd=cwd)

    # Without XDG_CONFIG_HOME the user file is under ~/.config.
    home_file = tmp_path / "home" / ".config" / "mrc" / "config.toml"
    home_file.parent.mkdir(parents=True)
    home_file.write_text(MINIMAL, encoding="utf-8")
    assert config.discover(environ={"HOME": str(tmp_path / "home")}, cwd=tmp_path) == home_file


def test_no_file_gives_an_empty_config_for_the_real_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MRC_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nothing"))
    monkeypatch.chdir(tmp_path)
    loaded = config.load()
    assert loaded.models == () and loaded.source is None


# --------------------------------------------------------------------------
# Read-only and lookups


def test_read_only_flag_reaches_every_target(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
[[model.target]]
name = "a"
kind = "kubernetes"

[[model.target]]
name = "b"
kind = "kubernetes"
read_only = true
"""
    )
    loaded = config.load_file(write(tmp_path, text), environ={})
    a, b = loaded.models[0].targets
    assert not a.read_only_effective and b.read_only_effective
    forced = loaded.with_read_only()
    assert forced.read_only
    assert all(t.read_only_effective for t in forced.models[0].targets)
    assert not loaded.models[0].targets[0].read_only_effective  # the original is unchanged


def test_console_read_only_in_file_applies_to_targets(tmp_path: Path) -> None:
    text = "[console]\nread_only = true\n" + MINIMAL + '[[model.target]]\nname = "a"\n'
    text += 'kind = "docker"\n'
    (target,) = config.load_file(write(tmp_path, text), environ={}).models[0].targets
    assert target.read_only_effective and not target.read_only


def test_lookups_raise_not_found() -> None:
    loaded = config.load_file(EXAMPLE, environ=ENV)
    with pytest.raises(NotFound):
        loaded.model("nope")
    with pytest.raises(NotFound):
        loaded.models[0].target("nope")
