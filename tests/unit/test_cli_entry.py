"""The ``mrc`` entry point as a user starts it: ``python -m tui.cli`` subprocesses.

Needs no service: help, configuration errors, and which modules each path
loads (the console's first frame must not wait for the scripting commands or
the heavy backends).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.python import loaded_after
from tui.cli.output import EXIT_USAGE
from tui.cli.parser import EXPORTER_COMMANDS, SCRIPT_COMMANDS, build_parser
from tui.cli.runner import COMMANDS

ROOT = Path(__file__).resolve().parents[2]


def mrc(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tui.cli ARGS`` (no config from the environment); never raises."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MRC_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.mark.parametrize("args", [("--help",), ("status", "--help"), ("rollback", "--help")])
def test_python_dash_m_runs_the_cli(args: tuple[str, ...]) -> None:
    proc = mrc(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: mrc {' '.join(args[:-1])}".rstrip())


def test_top_level_help_lists_every_command() -> None:
    proc = mrc("--help")
    for name in ("demo", *SCRIPT_COMMANDS):
        assert f"\n    {name} " in proc.stdout, proc.stdout


def test_every_scripting_command_is_parsed_and_run() -> None:
    assert set(COMMANDS) == set(SCRIPT_COMMANDS) | set(EXPORTER_COMMANDS)
    args = build_parser().parse_args(["rollback", "churn", "--to", "3", "-y", "--json"])
    assert (args.command, args.model, args.to_revision, args.yes, args.json) == (
        "rollback", "churn", 3, True, True,
    )  # fmt: skip
    args = build_parser().parse_args(["release", "churn", "HEAD", "--confirm", "churn"])
    assert (args.confirm_name, args.yes) == ("churn", False)


def test_invalid_configuration_is_exit_2_with_the_reason(tmp_path: Path) -> None:
    """On stderr for people; with --json also as the one document's ``error``."""
    config = tmp_path / "mrc.toml"
    config.write_text('[[model]]\nname = "churn"\nbogus = 1\n', encoding="utf-8")
    proc = mrc("--config", str(config), "status", cwd=tmp_path)
    assert proc.returncode == EXIT_USAGE
    assert proc.stdout == ""
    assert "mrc: invalid configuration" in proc.stderr and "bogus" in proc.stderr
    as_json = mrc("--config", str(config), "status", "--json", cwd=tmp_path)
    assert as_json.returncode == EXIT_USAGE
    assert set(json.loads(as_json.stdout)) == {"error"}
    assert "bogus" in json.loads(as_json.stdout)["error"]


def test_unknown_command_is_a_usage_error() -> None:
    proc = mrc("bogus")
    assert proc.returncode == EXIT_USAGE
    assert "invalid choice: 'bogus'" in proc.stderr


def test_console_path_loads_no_scripting_command_nor_backend() -> None:
    """``mrc`` with no command goes to the console without importing the scripting commands."""
    code = (
        "import json\n"
        "import tui.cli, tui.cli.console\n"
        "seen = []\n"
        "tui.cli.console.open_console = lambda args: seen.append(args.command) or 0\n"
        "code = tui.cli.main(['--read-only'])\n"
        "print(json.dumps([code, seen]))\n"
    )
    printed, modules = loaded_after(code, ("tui.cli", "kubernetes", "docker", "plotext", "git"))
    assert printed == [0, [None]]
    assert modules == ["tui.cli", "tui.cli.console", "tui.cli.parser"]


def test_the_first_screen_builds_only_the_types_it_shows() -> None:
    """The console's first screen lists commits: importing what it needs defines the commit
    and test-run types, not those of targets, drift or the journal (each costs start-up)."""
    code = (
        "import tui.app, tui.cli.console, tui.data, tui.screens.commits\n"
        "import core.config, core.services.workspace\n"
    )
    _, modules = loaded_after(code, ("core.domain",))
    assert modules == [
        "core.domain",
        "core.domain.progress",
        "core.domain.runs",
        "core.domain.source",
    ]
