"""Child processes get an explicit, allow-listed environment; secrets never reach them.

The environment is built in one place (:func:`core.procs.child_environment`);
these tests check its rules, the ``[console] child_env`` setting, and what the
processes a local target starts (guard, shell, server, forwarder) really hold,
read from ``/proc/<pid>/environ``.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from core import config as config_mod
from core import procs
from core.domain import Artifact
from core.errors import ConfigError
from core.targets.local import LocalTarget, free_port
from tests.support.repos import BASE_TIME, commit_files, init_repo

SECRET = "s3cret-value"

CONSOLE = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/op",
    "LC_ALL": "C.UTF-8",
    "LANG": "C",
    "PYTHONPATH": "/src",
    "KUBECONFIG": "/home/op/.kube/config",
    "DOCKER_CONFIG": "/home/op/.docker",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "MRC_METRICS_TOKEN": SECRET,
}


# --------------------------------------------------------------------------
# The rules


def test_default_list_passes_the_basics_and_nothing_else() -> None:
    env = procs.child_environment(environ=CONSOLE)
    assert env == {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/op",
        "LC_ALL": "C.UTF-8",
        "LANG": "C",
        "PYTHONPATH": "/src",
    }


def test_globs_match_whole_names_case_sensitively() -> None:
    env = procs.child_environment(["LC_*", "pythonpath", "PATH?"], environ=CONSOLE)
    assert env == {"LC_ALL": "C.UTF-8"}


def test_denied_names_are_never_passed_even_when_allowed() -> None:
    env = procs.child_environment(["*"], deny={"MRC_METRICS_TOKEN"}, environ=CONSOLE)
    assert "MRC_METRICS_TOKEN" not in env
    assert env["KUBECONFIG"] == CONSOLE["KUBECONFIG"]  # asked for with "*"


def test_extra_values_are_set_and_win() -> None:
    policy = procs.ChildEnv(("PATH",), frozenset({"PORT"}))
    env = policy.build({"PORT": "8080", "PATH": "/opt/bin"}, environ=CONSOLE)
    assert env == {"PATH": "/opt/bin", "PORT": "8080"}


def test_an_empty_list_passes_only_the_extras() -> None:
    assert procs.child_environment([], {"A": "1"}, environ=CONSOLE) == {"A": "1"}


# --------------------------------------------------------------------------
# The configuration


def _parse(text: str, environ: dict[str, str] | None = None) -> config_mod.Config:
    return config_mod.parse(textwrap.dedent(text), environ=environ or {})


MODEL = """\
[[model]]
name = "churn"
repo = "/srv/churn"

  [[model.target]]
  name = "local"
  kind = "local"
  command = "serve {port}"
  port = 8000

  [model.metrics]
  source = "prometheus"
  url = "http://prom:9090"
  token_env = "MRC_METRICS_TOKEN"
  username = "ops"
  password_env = "PROM_PASSWORD"
"""


def test_child_env_defaults_to_the_built_in_list() -> None:
    config = _parse(MODEL, {"MRC_METRICS_TOKEN": SECRET, "PROM_PASSWORD": SECRET})
    assert config.console.child_env == procs.DEFAULT_CHILD_ENV
    assert config.secret_variables == {"MRC_METRICS_TOKEN", "PROM_PASSWORD"}
    policy = config.child_env
    assert policy.deny == {"MRC_METRICS_TOKEN", "PROM_PASSWORD"}
    assert config.models[0].targets[0].child_env == policy  # type: ignore[union-attr]


def test_console_child_env_replaces_the_list_and_secrets_stay_denied() -> None:
    text = '[console]\nchild_env = ["PATH", "MRC_*", "PROM_*"]\n' + MODEL
    config = _parse(text, {"MRC_METRICS_TOKEN": SECRET, "PROM_PASSWORD": SECRET})
    assert config.console.child_env == ("PATH", "MRC_*", "PROM_*")
    env = config.child_env.build(environ={**CONSOLE, "MRC_MODEL_HINT": "x", "PROM_PASSWORD": "p"})
    assert env == {"PATH": "/usr/bin:/bin", "MRC_MODEL_HINT": "x"}


def test_a_bad_child_env_entry_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        _parse('[console]\nchild_env = ["PATH", "A B", 3]\n')
    text = str(caught.value)
    assert "console.child_env[1]" in text and "A B" in text
    assert "console.child_env[2]: expected a string" in text


# --------------------------------------------------------------------------
# Real processes


def _environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode() for k, v in pairs}


@pytest.fixture
def console_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console's own environment holds a configured secret and other tools' credentials."""
    for name in ("KUBECONFIG", "DOCKER_CONFIG", "AWS_SECRET_ACCESS_KEY", "MRC_METRICS_TOKEN"):
        monkeypatch.setenv(name, CONSOLE[name])


def _assert_clean(env: dict[str, str]) -> None:
    for name in ("KUBECONFIG", "DOCKER_CONFIG", "AWS_SECRET_ACCESS_KEY", "MRC_METRICS_TOKEN"):
        assert name not in env, name
    assert SECRET not in repr(env)


@pytest.mark.usefixtures("console_secrets")
def test_spawn_guarded_without_an_environment_passes_the_default_list(tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    popen = procs.spawn_guarded(["/bin/sh", "-c", f"env > {out}"], tag="child-env-test")
    assert popen.wait(timeout=30) == 0
    lines = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    _assert_clean(lines)
    assert lines["PATH"] == os.environ["PATH"]


SERVER = textwrap.dedent(
    """\
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


@pytest.mark.usefixtures("console_secrets")
def test_local_target_processes_hold_no_secret(tmp_path: Path) -> None:
    """Every process of the server's and the forwarder's groups (guard, shell, server,
    forwarder) has PATH and no configured secret, KUBECONFIG or cloud credential."""
    repo = init_repo(tmp_path / "repo")
    sha = commit_files(repo, {"server.py": SERVER}, "server", when=BASE_TIME)
    config = _parse(
        MODEL.replace('"serve {port}"', '"{python} server.py {port}"').replace(
            "port = 8000", f"port = {free_port()}"
        ),
        {"MRC_METRICS_TOKEN": SECRET, "PROM_PASSWORD": SECRET},
    )
    model = config.models[0]
    target_cfg = model.targets[0]
    model = config_mod.ModelConfig(name=model.name, repo=repo, targets=(target_cfg,))
    target = LocalTarget.from_config(model, target_cfg, tmp_path / "state")  # type: ignore[arg-type]
    target.health_timeout = 20.0
    try:
        for _ in target.rollout(Artifact(commit=sha)):
            pass
        groups = [p.pid for p in target._all_procs()]
        assert len(groups) == 2  # the server and the forwarder
        pids = [pid for pgid in groups for pid in procs.live_group_members(pgid)]
        assert len(pids) >= 3
        for pid in pids:
            env = _environ_of(pid)
            _assert_clean(env)
            assert env["PATH"] == os.environ["PATH"]
        server = [e for e in map(_environ_of, pids) if e.get("MRC_COMMIT") == sha]
        assert server and server[0]["PORT"].isdigit()
    finally:
        target.close()


def test_the_readme_shows_the_default_list() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("child_env = [")
    listed = readme[start : readme.index("]", start) + 1]
    assert config_mod.parse(f"[console]\n{listed}\n").console.child_env == (procs.DEFAULT_CHILD_ENV)
