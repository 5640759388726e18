"""The scripting CLI can be trusted: inert output, clear errors, explicit confirmation.

Each test runs ``python -m tui.cli`` as a subprocess and asserts on the bytes
of stdout and stderr and on the exit code (the contract in
:mod:`tui.cli.output`). They need git and Python only: the local target is
given its recorded history directly, so no model server runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.config import load_file
from core.targets.local import free_port, target_state_dir
from tests.support.repos import commit_files, init_repo, pytest_command
from tui.cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PERMISSION,
    EXIT_USAGE,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

#: One value carrying everything a terminal must never receive from outside:
#: an OSC title change ended by BEL, a colour CSI, a bare BEL, Textual markup,
#: a right-to-left override and a 10,000-character tail.
HOSTILE = (
    "\x1b]0;pwned\x07 \x1b[31mred\x1b[0m bell\x07 [@click=app.quit]x[/] "
    "\u202eevil\u202c " + "y" * 10_000
)
MARK = "\u241b".encode()  # ␛, what a removed escape sequence is shown as


@dataclass
class Run:
    """One finished ``mrc`` process: exit code and raw output bytes."""

    code: int
    out: bytes
    err: bytes

    def assert_inert(self) -> None:
        """No ESC or BEL byte reached stdout or stderr."""
        for name, data in (("stdout", self.out), ("stderr", self.err)):
            assert b"\x1b" not in data, f"ESC in {name}: {data[:2000]!r}"
            assert b"\x07" not in data, f"BEL in {name}: {data[:2000]!r}"
            assert b"\xc2\x9b" not in data, f"C1 CSI in {name}"

    def doc(self) -> dict:
        """Return stdout as the one JSON document; it must be pure ASCII."""
        self.out.decode("ascii")
        return json.loads(self.out)


def mrc(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Run:
    """Run ``python -m tui.cli ARGS`` with stdin not a terminal; never raises."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if env is None or "MRC_CONFIG" not in env:
        full.pop("MRC_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        cwd=cwd,
        env=full,
        stdin=subprocess.DEVNULL,
        timeout=180,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


TESTS = textwrap.dedent(
    """\
    HOSTILE = {hostile!r}

    def test_hostile_output():
        print(HOSTILE)
        assert False, HOSTILE
    """
)


def write_config(
    directory: Path,
    repo: Path,
    *,
    production: bool = False,
    read_only: bool = False,
    target_name: str = "local",
) -> Path:
    """Write ``directory/mrc.toml``: model churn on one local target; return its path."""
    path = directory / "mrc.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [[model]]
            name = "churn"
            repo = {json.dumps(str(repo))}
            test_command = {json.dumps(pytest_command())}
            test_timeout = "2m"

              [[model.target]]
              name = {json.dumps(target_name)}
              kind = "local"
              command = "{{python}} server.py {{port}}"
              port = {free_port()}
              health_path = "/healthz"
              production = {str(production).lower()}
              read_only = {str(read_only).lower()}
            """
        )
    )
    return path


@dataclass
class Hostile:
    """A model whose repository, target history and test output all carry :data:`HOSTILE`."""

    config: Path
    state: Path
    sha: str

    def run(self, *args: str) -> Run:
        return mrc("--config", str(self.config), *args, env={"MRC_STATE_DIR": str(self.state)})


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    """Commit subject, test output, failure message, target commit and change-causes
    are :data:`HOSTILE`; the target's name from the configuration carries ESC and BEL."""
    base = tmp_path_factory.mktemp("hostile")
    repo = init_repo(base / "repo")
    sha = commit_files(
        repo,
        {"tests/test_model.py": TESTS.format(hostile=HOSTILE)},
        HOSTILE.encode() + b"\n",
        when=1767225600,
    )
    config = write_config(base, repo, target_name="loc\x1b[2Jal\x07")
    state = base / "state"
    target = load_file(config).models[0].targets[0]
    history = target_state_dir(state, "churn", target.name)
    history.mkdir(parents=True)
    created = "2026-01-01T00:00:00+00:00"
    revisions = [
        {"number": 2, "commit": HOSTILE, "created": created, "change_cause": HOSTILE, "extra": {}},
        {"number": 1, "commit": HOSTILE, "created": created, "change_cause": HOSTILE, "extra": {}},
    ]
    (history / "state.json").write_text(
        json.dumps({"version": 1, "next": 3, "current": 2, "revisions": revisions})
    )
    return Hostile(config, state, sha)


def test_hostile_text_from_every_source_reaches_the_terminal_inert(hostile: Hostile) -> None:
    """status, history, test, release, rollback and doctor show outside text with ␛ marks,
    never an ESC or BEL byte, on stdout and stderr."""
    runs = {
        "status": hostile.run("status"),
        "history": hostile.run("history", "churn"),
        "test": hostile.run("test", "churn", hostile.sha),
        "doctor": hostile.run("doctor"),
        # the release's tests fail: its message and the test output are outside text
        "release": hostile.run("release", "churn", hostile.sha, "--yes", "--reason", HOSTILE),
        # revision 1's commit does not exist: the rollback is journalled, then fails
        "rollback": hostile.run("rollback", "churn", "--yes", "--reason", HOSTILE),
    }
    for name, run in runs.items():
        run.assert_inert()
        assert MARK in run.out + run.err, (name, run.out[:500], run.err[:500])
    assert runs["test"].code == EXIT_FAILED
    assert b"red" in runs["test"].err  # the test's own output, made inert, is still shown
    assert runs["release"].code == EXIT_FAILED
    assert runs["rollback"].code not in (EXIT_OK, EXIT_USAGE)

    # the rollback and its reason reached the journal; history shows them inert
    after = hostile.run("history", "churn")
    after.assert_inert()
    assert after.code == EXIT_OK
    assert b"rollback" in after.out and b"[@click=app.quit]" in after.out


def test_json_documents_keep_outside_values_in_ascii(hostile: Hostile) -> None:
    """JSON keeps the value exactly (scripts get the data) but its bytes hold no ESC or BEL."""
    status = hostile.run("status", "--json")
    status.assert_inert()
    row = status.doc()["targets"][0]
    assert row["commit"] == HOSTILE
    assert row["target"] == "loc\x1b[2Jal\x07"

    hostile.run("rollback", "churn", "--yes", "--reason", HOSTILE)
    history = hostile.run("history", "churn", "--json")
    history.assert_inert()
    doc = history.doc()
    assert doc["targets"][0]["revisions"][0]["change_cause"] == HOSTILE
    assert HOSTILE in [e["reason"] for e in doc["journal"]]

    test = hostile.run("test", "churn", hostile.sha, "--json")
    test.assert_inert()
    assert test.code == EXIT_FAILED
    assert "[@click=app.quit]x[/] \u202eevil" in test.doc()["failures"][0]["message"]

    doctor = hostile.run("doctor", "--json")
    doctor.assert_inert()
    assert doctor.doc()["warnings"] == []


# ------------------------------------------------------------ missing configuration


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A plain model repository whose one test passes: (path, sha)."""
    path = init_repo(tmp_path_factory.mktemp("plain") / "repo")
    sha = commit_files(
        path, {"tests/test_model.py": "def test_ok():\n    pass\n"}, "model\n", when=1767225600
    )
    return path, sha


@pytest.mark.parametrize("kind", ["missing", "not a repository"])
def test_a_bad_repository_path_is_reported_by_every_command(tmp_path: Path, kind: str) -> None:
    """A repo path that does not exist (or is no git repository) is a configuration
    error (exit 2) that every command names, on stderr and in its JSON document."""
    bad = tmp_path / "nosuchrepo"
    if kind == "not a repository":
        bad.mkdir()
    config = write_config(tmp_path, bad)
    env = {"MRC_STATE_DIR": str(tmp_path / "state")}

    def run(*args: str) -> Run:
        return mrc("--config", str(config), *args, cwd=tmp_path, env=env)

    for args in (("status",), ("history", "churn"), ("doctor",)):
        text = run(*args)
        assert text.code == EXIT_USAGE, (args, text.err)
        assert b"warning: model churn:" in text.err and str(bad).encode() in text.err
        as_json = run(*args, "--json")
        assert as_json.code == EXIT_USAGE, args
        warnings = as_json.doc()["warnings"]
        assert len(warnings) == 1 and str(bad) in warnings[0], warnings
    for args in (("test", "churn"), ("release", "churn", "HEAD", "--yes")):
        failed = run(*args)
        assert failed.code == EXIT_USAGE, (args, failed.err)
        assert str(bad).encode() in failed.err
        as_json = run(*args, "--json")
        assert as_json.code == EXIT_USAGE
        assert str(bad) in as_json.doc()["error"]
    # nothing was journalled
    history = run("history", "churn", "--json").doc()
    assert history["journal"] == [] and history["releases"] == []


@pytest.mark.parametrize("command", ["status", "doctor", "history churn", "test churn"])
def test_no_configuration_file_is_an_error_that_says_so(tmp_path: Path, command: str) -> None:
    """Without any configuration file a scripting command fails with exit 2 and says
    that no file was found, instead of printing an empty result."""
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "MRC_STATE_DIR": str(tmp_path / "state")}
    text = mrc(*command.split(), cwd=tmp_path, env=env)
    assert text.code == EXIT_USAGE, text.out
    assert b"no configuration file found" in text.err
    assert text.out == b""
    as_json = mrc(*command.split(), "--json", cwd=tmp_path, env=env)
    assert as_json.code == EXIT_USAGE
    assert "no configuration file found" in as_json.doc()["error"]


# ------------------------------------------------------------ confirmation, read-only


def test_yes_alone_is_refused_on_a_production_target(
    tmp_path: Path, repo: tuple[Path, str]
) -> None:
    """Scripts confirm a production change with --confirm MODEL; --yes alone, or a wrong
    name, is a usage error before anything is journalled."""
    path, sha = repo
    config = write_config(tmp_path, path, production=True)
    env = {"MRC_STATE_DIR": str(tmp_path / "state")}

    def run(*args: str) -> Run:
        return mrc("--config", str(config), *args, cwd=tmp_path, env=env)

    for args in (("release", "churn", sha), ("rollback", "churn")):
        refused = run(*args, "--yes", "--reason", "scripted")
        assert refused.code == EXIT_USAGE, (args, refused.err)
        assert b"--confirm churn" in refused.err and b"production" in refused.err
        wrong = run(*args, "--confirm", "other")
        assert wrong.code == EXIT_USAGE, (args, wrong.err)
        assert b"'other'" in wrong.err
    # without a flag a script is told which one a production target needs
    unasked = run("release", "churn", sha)
    assert unasked.code == EXIT_USAGE and b"pass --confirm churn" in unasked.err
    history = run("history", "churn", "--json").doc()
    assert history["journal"] == [] and history["releases"] == []

    # the model's name confirms: the rollback gets past confirmation to the target,
    # which has nothing to roll back to
    confirmed = run("rollback", "churn", "--confirm", "churn")
    assert b"no previous revision" in confirmed.err, confirmed.err


@pytest.mark.parametrize("how", ["--read-only", "read-only target"])
def test_read_only_refuses_every_mutating_command_before_it_runs(
    tmp_path: Path, repo: tuple[Path, str], how: str
) -> None:
    """``--read-only`` (or a read-only target) refuses test, release and rollback with
    exit 5 and a clear message; nothing runs and nothing is journalled."""
    path, sha = repo
    config = write_config(tmp_path, path, read_only=how != "--read-only")
    env = {"MRC_STATE_DIR": str(tmp_path / "state")}
    flags = ["--read-only"] if how == "--read-only" else []

    def run(*args: str) -> Run:
        return mrc("--config", str(config), *flags, *args, cwd=tmp_path, env=env)

    commands = [("release", "churn", sha, "--yes"), ("rollback", "churn", "--yes")]
    if how == "--read-only":  # a read-only target does not stop the model's tests
        commands.insert(0, ("test", "churn", sha))
    for args in commands:
        refused = run(*args)
        assert refused.code == EXIT_PERMISSION, (args, refused.err)
        assert b"refused" in refused.err and b"read-only" in refused.err, refused.err
        assert b"passed" not in refused.out + refused.err  # the tests did not run
    history = run("history", "churn", "--json").doc()
    assert history["journal"] == [] and history["releases"] == []
    assert recorded_test_runs(tmp_path / "state") == []


def recorded_test_runs(state: Path) -> list[object]:
    """Return the test runs the journal under ``state`` holds (none when it was never made)."""
    from core.journal import Journal
    from core.paths import JOURNAL_FILE

    if not (state / JOURNAL_FILE).exists():
        return []
    journal = Journal(state / JOURNAL_FILE)
    try:
        return list(journal.test_runs("churn"))
    finally:
        journal.close()


#: The CLI's mutating commands, each with its row of core.services.action_table.
CLI_COMMANDS = {"test": "test", "release": "release", "rollback": "rollback"}


@pytest.mark.parametrize("mode", ["--read-only", "read-only target", "production", "staging"])
@pytest.mark.parametrize("command", list(CLI_COMMANDS))
def test_the_cli_follows_the_action_table(
    tmp_path: Path, repo: tuple[Path, str], command: str, mode: str
) -> None:
    """Each mutating command is refused with the table's reason, or asks the table's
    confirmation (none; ``--yes``; ``--confirm MODEL`` on production) before anything
    is journalled; the console reads the same table (tests/tui/test_action_table.py)."""
    from core.services import action_table
    from core.services.action_table import Confirmation
    from core.services.workspace import Workspace

    path, sha = repo
    config = write_config(
        tmp_path, path, production=mode == "production", read_only=mode == "read-only target"
    )
    flags = ["--read-only"] if mode == "--read-only" else []
    loaded = load_file(config)
    ws = Workspace(loaded.with_read_only(True) if flags else loaded, state_dir=tmp_path / "probe")
    decision = action_table.check(ws, CLI_COMMANDS[command], "churn", "local")
    env = {"MRC_STATE_DIR": str(tmp_path / "state")}
    args = {"test": ("test", "churn", sha), "release": ("release", "churn", sha),
            "rollback": ("rollback", "churn")}[command]  # fmt: skip
    history_dir = target_state_dir(tmp_path / "state", "churn", "local")
    history_dir.mkdir(parents=True)  # two revisions: a rollback has somewhere to go
    created = "2026-01-01T00:00:00+00:00"
    revisions = [
        {"number": n, "commit": sha, "created": created, "change_cause": "", "extra": {}}
        for n in (2, 1)
    ]
    (history_dir / "state.json").write_text(
        json.dumps({"version": 1, "next": 3, "current": 2, "revisions": revisions})
    )
    run = mrc("--config", str(config), *flags, *args, cwd=tmp_path, env=env)
    run.assert_inert()
    if not decision.allowed:
        assert run.code == EXIT_PERMISSION, run.err
        assert decision.reason.encode() in run.err, run.err
    elif decision.confirmation is Confirmation.NONE:
        assert run.code == EXIT_OK, run.err  # the tests ran and passed, nothing was asked
        assert b"confirmation needed" not in run.err
    else:
        flag = b"--confirm churn" if decision.production else b"--yes"
        assert run.code == EXIT_USAGE, run.err
        assert b"confirmation needed but stdin is not a terminal: pass " + flag in run.err
    history = mrc("--config", str(config), "history", "churn", "--json", cwd=tmp_path, env=env)
    assert history.doc()["journal"] == [] and history.doc()["releases"] == []
    runs = recorded_test_runs(tmp_path / "state")
    assert len(runs) == (1 if decision.allowed and command == "test" else 0)
