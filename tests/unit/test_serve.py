"""``mrc serve`` refuses unsafe or impossible starts before serving, as a subprocess says.

Also: a console started by ``mrc serve`` journals its user "via browser".
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.audit import whoami
from tui.serve import console_command, decide_read_only, is_loopback

MRC = [sys.executable, "-m", "tui.cli"]


def run_mrc(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MRC_CONFIG", "MRC_VIA"}}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return subprocess.run(
        [*MRC, *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_non_loopback_host_without_an_explicit_choice_is_refused(tmp_path: Path) -> None:
    result = run_mrc("serve", "--host", "0.0.0.0", "--port", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert "not a loopback address" in result.stderr
    assert "--read-only" in result.stderr and "--allow-changes" in result.stderr


def test_port_in_use_is_named_with_exit_3(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_mrc("serve", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 3
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_wrong_configuration_gives_the_console_s_error_before_serving(tmp_path: Path) -> None:
    config = tmp_path / "mrc.toml"
    config.write_text("[[model]]\nname = 1\n", encoding="utf-8")
    console = run_mrc("--config", str(config), cwd=tmp_path)
    served = run_mrc("--config", str(config), "serve", "--port", "1", cwd=tmp_path)
    assert served.returncode == console.returncode == 2
    assert served.stderr == console.stderr
    assert "serving" not in served.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False),
     ("10.1.2.3", False), ("example.org", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_read_only_unless_changes_are_allowed() -> None:
    assert decide_read_only("127.0.0.1", read_only=False, allow_changes=False) is True
    assert decide_read_only("127.0.0.1", read_only=False, allow_changes=True) is False
    assert decide_read_only("0.0.0.0", read_only=True, allow_changes=False) is True
    assert decide_read_only("0.0.0.0", read_only=False, allow_changes=True) is False


def test_served_console_command_keeps_config_and_read_only(tmp_path: Path) -> None:
    command = console_command(str(tmp_path / "my config.toml"), read_only=True, python="py")
    assert command == f"py -m tui.cli --config '{tmp_path / 'my config.toml'}' --read-only"


def test_actor_is_marked_via_browser() -> None:
    plain = whoami({})
    served = whoami({"MRC_VIA": "browser"})
    assert served.user == f"{plain.user} via browser"
