"""Secrets stay in mrc: children get an allow-listed environment, messages redact URLs,
the state directory is private and the journal is never opened through a symbolic link.

Each test runs ``python -m tui.cli`` as a subprocess, the way an operator does,
against a real git repository; the release test starts a real model server
(whose own environment is what is checked). They need git and Python only.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.targets.local import free_port
from tests.support.repos import BASE_TIME, commit_files, init_repo, pytest_command
from tui.cli.output import EXIT_OK, EXIT_USAGE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

#: The value of the variable ``token_env`` names, and the password of the URLs below.
SECRET = "s3cret-do-not-leak"
TOKEN_VAR = "MRC_TEST_METRICS_TOKEN"

#: The console's environment: a configured secret, and credentials of other tools.
CONSOLE_ENV = {
    TOKEN_VAR: SECRET,
    "KUBECONFIG": "/home/operator/.kube/prod-config",
    "DOCKER_CONFIG": "/home/operator/.docker-prod",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "MRC_EXTRA_SETTING": "visible",
    "LC_TIME": "C",
}

#: The model server: writes its environment to the file named by argv[2], then serves.
SERVER = textwrap.dedent(
    """\
    import json, os, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    with open(sys.argv[2], "w") as out:
        json.dump(dict(os.environ), out)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"ok" if self.path == "/healthz" else b"# no metrics\\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)

#: The model's test: writes its environment where the server test does too.
TESTS = textwrap.dedent(
    """\
    import json, os, pathlib

    def test_dump_environment():
        out = pathlib.Path(__file__).resolve().parents[1] / "ENV_FILE"
        target = pathlib.Path(out.read_text().strip())
        target.write_text(json.dumps(dict(os.environ)))
    """
)


def mrc(config: Path, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tui.cli --config CONFIG ARGS`` in the console environment; never raises."""
    env = {**os.environ, **CONSOLE_ENV, "MRC_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    env.pop("MRC_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=180,
    )


def make_repo(path: Path, env_file: Path) -> str:
    """Create the model repository; its test writes its environment to ``env_file``."""
    init_repo(path)
    files = {
        "server.py": SERVER,
        "tests/test_env.py": TESTS,
        "ENV_FILE": f"{env_file}\n",
    }
    return commit_files(path, files, "model", when=BASE_TIME)


def write_config(
    directory: Path,
    repo: Path,
    *,
    console: str = "",
    metrics_url: str | None = None,
    server_env_file: Path | None = None,
) -> Path:
    """Write ``mrc.toml``: model churn on a local target, metrics reading ``token_env``."""
    port = free_port()
    url = metrics_url or f"http://127.0.0.1:{port}/metrics"
    env_file = server_env_file or directory / "unused.json"
    text = textwrap.dedent(
        f"""\
        [[model]]
        name = "churn"
        repo = {json.dumps(str(repo))}
        test_command = {json.dumps(pytest_command())}
        test_timeout = "2m"

          [[model.target]]
          name = "local"
          kind = "local"
          command = "{{python}} server.py {{port}} {env_file}"
          port = {port}

          [model.metrics]
          source = "scrape"
          url = {json.dumps(url)}
          token_env = "{TOKEN_VAR}"

          [model.guard]
          duration = "1s"
        """
    )
    path = directory / "mrc.toml"
    path.write_text(textwrap.dedent(console) + "\n" + text)
    return path


def read_env(path: Path) -> dict[str, str]:
    assert path.is_file(), f"the child did not write {path}"
    return json.loads(path.read_text())


def assert_no_secrets(env: dict[str, str]) -> None:
    """The configured secret and other tools' credentials did not reach the child."""
    assert TOKEN_VAR not in env
    assert SECRET not in json.dumps(env)
    for name in ("KUBECONFIG", "DOCKER_CONFIG", "AWS_SECRET_ACCESS_KEY"):
        assert name not in env, name


# ---------------------------------------------------------------------- children


def test_test_command_gets_the_allow_listed_environment_only(tmp_path: Path) -> None:
    """``mrc test``: the test sees PATH, HOME, LC_* and the runner's MRC_* values; not the
    token named by ``token_env``, KUBECONFIG, DOCKER_CONFIG or cloud credentials."""
    env_file = tmp_path / "test-env.json"
    sha = make_repo(tmp_path / "repo", env_file)
    config = write_config(tmp_path, tmp_path / "repo")
    proc = mrc(config, tmp_path / "state", "test", "churn", sha[:8])
    assert proc.returncode == EXIT_OK, proc.stderr
    env = read_env(env_file)
    assert_no_secrets(env)
    assert "MRC_EXTRA_SETTING" not in env  # not on the default list
    assert env["PATH"] == os.environ["PATH"]
    assert env["LC_TIME"] == "C"  # a glob of the default list
    assert env["MRC_COMMIT"] == sha and "MRC_JUNIT_XML" in env


def test_console_child_env_replaces_the_list_but_never_passes_a_secret(tmp_path: Path) -> None:
    """``[console] child_env`` decides what children get; a glob matching the variable a
    ``*_env`` key names still does not pass it."""
    env_file = tmp_path / "test-env.json"
    sha = make_repo(tmp_path / "repo", env_file)
    console = """\
        [console]
        child_env = ["PATH", "MRC_EXTRA_*", "MRC_TEST_*", "KUBE*"]
    """
    config = write_config(tmp_path, tmp_path / "repo", console=console)
    proc = mrc(config, tmp_path / "state", "test", "churn", sha[:8])
    assert proc.returncode == EXIT_OK, proc.stderr
    env = read_env(env_file)
    assert env["MRC_EXTRA_SETTING"] == "visible"
    assert env["KUBECONFIG"] == CONSOLE_ENV["KUBECONFIG"]  # asked for explicitly
    assert TOKEN_VAR not in env and SECRET not in json.dumps(env)
    assert "HOME" not in env and "LC_TIME" not in env  # not on this list


def test_a_released_local_server_gets_the_allow_listed_environment_only(tmp_path: Path) -> None:
    """``mrc release`` to a local target: the model server started for the new revision
    sees PATH and its MRC_COMMIT/PORT, never the configured secret or KUBECONFIG."""
    server_env = tmp_path / "server-env.json"
    sha = make_repo(tmp_path / "repo", tmp_path / "test-env.json")
    config = write_config(tmp_path, tmp_path / "repo", server_env_file=server_env)
    proc = mrc(config, tmp_path / "state", "release", "churn", sha[:8], "--yes")
    env = read_env(server_env)  # whatever the guard said, the server ran
    assert_no_secrets(env)
    assert env["PATH"] == os.environ["PATH"]
    assert env["MRC_COMMIT"] == sha and env["PORT"].isdigit()
    assert SECRET not in proc.stdout + proc.stderr


# ---------------------------------------------------------------------- messages


def test_doctor_never_prints_a_password_from_a_url(tmp_path: Path) -> None:
    """``mrc doctor`` (text and JSON) names the metrics URL without its password."""
    make_repo(tmp_path / "repo", tmp_path / "env.json")
    url = f"http://user:{SECRET}@127.0.0.1:1/metrics?access_token={SECRET}"
    config = write_config(tmp_path, tmp_path / "repo", metrics_url=url)
    for args in (("doctor",), ("doctor", "--json")):
        proc = mrc(config, tmp_path / "state", *args)
        assert "127.0.0.1:1" in proc.stdout, proc.stdout  # the line is there ...
        assert "user:******@" in proc.stdout
        assert SECRET not in proc.stdout + proc.stderr  # ... without the password


def test_a_config_error_never_prints_a_password_from_a_url(tmp_path: Path) -> None:
    """A rejected metrics URL is named in the error without its password."""
    make_repo(tmp_path / "repo", tmp_path / "env.json")
    url = f"ftp://user:{SECRET}@127.0.0.1:1/"
    config = write_config(tmp_path, tmp_path / "repo", metrics_url=url)
    proc = mrc(config, tmp_path / "state", "status")
    assert proc.returncode == EXIT_USAGE
    assert "model[0].metrics.url" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr


# ---------------------------------------------------------------------- state directory


def test_an_existing_loose_state_dir_is_made_private(tmp_path: Path) -> None:
    """A state dir left 0755 (and a journal left 0644) is 0700 (0600) once mrc opened it."""
    make_repo(tmp_path / "repo", tmp_path / "env.json")
    config = write_config(tmp_path, tmp_path / "repo")
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    journal = state / "journal.sqlite3"
    journal.touch()
    journal.chmod(0o644)
    proc = mrc(config, state, "history", "churn")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600


def test_a_symlinked_journal_is_refused_not_followed(tmp_path: Path) -> None:
    """A journal path that is a symbolic link stops mrc with a clear error; the file it
    points to is neither created nor written."""
    make_repo(tmp_path / "repo", tmp_path / "env.json")
    config = write_config(tmp_path, tmp_path / "repo")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere.sqlite3"
    (state / "journal.sqlite3").symlink_to(elsewhere)
    proc = mrc(config, state, "history", "churn")
    assert proc.returncode != EXIT_OK
    assert "symbolic link" in proc.stderr, proc.stderr
    assert not elsewhere.exists()
