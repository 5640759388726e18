"""The scripting commands as a user runs them: ``python -m tui.cli ...`` subprocesses.

Exit codes and JSON documents are the contract (see :mod:`tui.cli.output`).
The local-target tests use a real git repository and real server processes;
the Kubernetes tests use the real control plane from the service fixtures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.targets.local import free_port
from tests.integration.test_release_k8s import k8s_config, live_image, rollout_to
from tests.integration.test_release_local import (
    ServedRepo,
    make_served_repo,
    served,
    write_config,
)
from tui.cli.output import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_PERMISSION,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

STATUS_KEYS = {
    "model", "target", "kind", "production", "read_only", "phase", "revision", "image",
    "commit", "desired", "ready", "updated", "available", "message", "error",
}  # fmt: skip
ENTRY_KEYS = {
    "id", "time", "user", "ssh_client", "host", "model", "target", "action", "from_revision",
    "to_revision", "reason", "outcome", "outcome_unknown", "error", "finished_at",
}  # fmt: skip


def mrc(
    *args: str, config: Path, state: Path, stdin: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tui.cli --config CONFIG ARGS`` with its own state dir; never raises."""
    env = {**os.environ, "MRC_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    env.pop("MRC_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "--config", str(config), *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )


def doc(proc: subprocess.CompletedProcess[str]) -> dict:
    """Parse stdout as the one JSON document and check it is in the stable (sorted) form."""
    data = json.loads(proc.stdout)
    assert proc.stdout == json.dumps(data, sort_keys=True, indent=2) + "\n"
    return data


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> ServedRepo:
    return make_served_repo(tmp_path_factory.mktemp("clirepo") / "churn")


@pytest.fixture
def local(tmp_path: Path, sample: ServedRepo) -> tuple[Path, Path]:
    """(config, state dir) of the sample model on a local target."""
    config = write_config(tmp_path, sample.path, free_port(), duration="1s")
    return config, tmp_path / "state"


# ---------------------------------------------------------------------- local target


def test_status_json_lists_every_target_with_the_documented_keys(
    local: tuple[Path, Path],
) -> None:
    config, state = local
    proc = mrc("status", "--json", config=config, state=state)
    assert proc.returncode == EXIT_OK, proc.stderr
    rows = doc(proc)["targets"]
    assert len(rows) == 1
    assert set(rows[0]) == STATUS_KEYS
    assert (rows[0]["model"], rows[0]["target"], rows[0]["kind"]) == ("churn", "local", "local")
    assert rows[0]["error"] == ""
    text = mrc("status", config=config, state=state)
    assert text.returncode == EXIT_OK
    assert "churn" in text.stdout and "local" in text.stdout


def test_test_command_streams_output_and_reports_pass_and_fail(
    local: tuple[Path, Path], sample: ServedRepo
) -> None:
    config, state = local
    ok = mrc("test", "churn", sample.shas["v2"][:8], "--json", config=config, state=state)
    assert ok.returncode == EXIT_OK, ok.stderr
    run = doc(ok)
    assert (run["status"], run["passed"], run["failed"]) == ("passed", 1, 0)
    assert run["commit"] == sample.shas["v2"]
    assert run["metrics"] == {"accuracy": 0.93}
    assert "1 passed" in ok.stderr  # pytest's own output went to stderr

    bad = mrc("test", "churn", sample.shas["broken"], config=config, state=state)
    assert bad.returncode == EXIT_FAILED
    assert "the model file is broken" in bad.stderr
    assert bad.stdout.startswith(f"churn {sample.shas['broken'][:8]}: failed: 0 passed, 1 failed")


def test_release_rollback_and_history(local: tuple[Path, Path], sample: ServedRepo) -> None:
    config, state = local
    first = mrc("release", "churn", sample.shas["v1"], "--yes", "--json", config=config,
                state=state)  # fmt: skip
    assert first.returncode == EXIT_OK, first.stderr
    result = doc(first)
    assert result["outcome"] == "done"
    assert [(s["step"], s["result"]) for s in result["steps"]] == [
        ("tests", "done"), ("build", "skipped"), ("push", "skipped"), ("rollout", "done"),
        ("wait", "done"), ("verify", "done"),
    ]  # fmt: skip
    assert "==> rollout" in first.stderr  # progress on stderr

    second = mrc("release", "churn", sample.shas["v2"], "--yes", "--reason", "ship v2",
                 config=config, state=state)  # fmt: skip
    assert second.returncode == EXIT_OK, second.stderr
    assert ": done: " in second.stdout

    back = mrc("rollback", "churn", "--yes", "--json", "--reason", "bad numbers",
               config=config, state=state)  # fmt: skip
    assert back.returncode == EXIT_OK, back.stderr
    rb = doc(back)
    assert rb["result"] == "done"
    assert rb["from_revision"] == 2 and rb["to_revision"] == 1

    hist = mrc("history", "churn", "--json", config=config, state=state)
    assert hist.returncode == EXIT_OK, hist.stderr
    h = doc(hist)
    assert h["model"] == "churn"
    revisions = h["targets"][0]["revisions"]
    assert revisions[0]["current"] and revisions[0]["commit"] == sample.shas["v1"]
    entries = h["journal"]
    assert all(set(e) == ENTRY_KEYS for e in entries)
    assert [(x["commit"], x["status"]) for x in reversed(h["releases"])] == [
        (sample.shas["v1"], "done"),
        (sample.shas["v2"], "done"),
    ]
    assert [(e["action"], e["outcome"], e["reason"]) for e in reversed(entries)] == [
        ("rollout", "done", f"release {sample.shas['v1'][:8]}"),
        ("rollout", "done", "ship v2"),
        ("rollback", "done", "bad numbers"),
    ]

    text = mrc("history", "churn", config=config, state=state)
    assert text.returncode == EXIT_OK
    assert "bad numbers" in text.stdout


def test_release_of_a_failing_commit_fails_before_the_target(
    local: tuple[Path, Path], sample: ServedRepo
) -> None:
    config, state = local
    proc = mrc("release", "churn", sample.shas["broken"], "--yes", "--json",
               config=config, state=state)  # fmt: skip
    assert proc.returncode == EXIT_FAILED
    result = doc(proc)
    assert result["outcome"] == "failed"
    assert result["steps"] == [{"step": "tests", "result": "failed", "message": result["message"]}]
    assert "tests failed" in result["message"]


def test_confirmation_usage_and_lookup_errors(local: tuple[Path, Path], sample: ServedRepo) -> None:
    config, state = local
    # stdin is not a terminal and --yes is missing: refuse, change nothing
    noyes = mrc("release", "churn", sample.shas["v1"], config=config, state=state)
    assert noyes.returncode == EXIT_USAGE
    assert "--yes" in noyes.stderr
    # nothing was deployed yet: no revision to roll back to
    assert mrc("rollback", "churn", config=config, state=state).returncode == EXIT_NOT_FOUND
    assert mrc("release", "nosuch", "HEAD", "--yes", config=config, state=state).returncode == (
        EXIT_NOT_FOUND
    )
    unknown_commit = mrc("release", "churn", "deadbeef", "--yes", config=config, state=state)
    assert unknown_commit.returncode == EXIT_NOT_FOUND
    assert "deadbeef" in unknown_commit.stderr
    assert mrc("history", "churn", "--target", "nope", config=config, state=state).returncode == (
        EXIT_NOT_FOUND
    )
    # read-only mode refuses mutating commands with "permission denied"
    ro = mrc("--read-only", "release", "churn", "HEAD", "--yes", config=config, state=state)
    assert ro.returncode == EXIT_PERMISSION
    assert "read-only" in ro.stderr
    # argparse errors and invalid configuration are usage errors
    assert mrc("release", config=config, state=state).returncode == EXIT_USAGE
    broken = config.parent / "broken.toml"
    broken.write_text("[[model]]\nname = 1\n")
    bad = mrc("status", config=broken, state=state)
    assert bad.returncode == EXIT_USAGE
    assert "broken.toml" in bad.stderr
    # nothing reached the journal
    hist = doc(mrc("history", "churn", "--json", config=config, state=state))
    assert hist["journal"] == []


def start_mrc(*args: str, config: Path, state: Path) -> subprocess.Popen[str]:
    """Start ``python -m tui.cli`` in the background (stdout/stderr piped)."""
    env = {**os.environ, "MRC_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "--config", str(config), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def interrupt_after(proc: subprocess.Popen[str], marker: str) -> tuple[str, str]:
    """Read stderr until ``marker``, send SIGINT (Ctrl-C), return (stdout, rest of stderr)."""
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            break
    else:
        raise AssertionError("".join(seen))
    time.sleep(1.0)  # let the test command get going
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return out, "".join(seen) + err


def test_ctrl_c_cancels_a_release_and_a_test_run(
    local: tuple[Path, Path], sample: ServedRepo
) -> None:
    config, state = local
    started = time.monotonic()
    proc = start_mrc("release", "churn", sample.shas["slow"], "--yes", "--json",
                     config=config, state=state)  # fmt: skip
    out, err = interrupt_after(proc, "==> tests")
    assert proc.returncode == EXIT_CANCELLED, err
    result = doc(subprocess.CompletedProcess([], 0, out, err))
    assert result["outcome"] == "cancelled"
    assert result["steps"] == [{"step": "tests", "result": "cancelled", "message": ""}]
    hist = doc(mrc("history", "churn", "--json", config=config, state=state))
    release = hist["releases"][0]
    assert release["status"] == "cancelled"
    assert [(st["step"], st["status"]) for st in release["steps"]] == [("tests", "cancelled")]
    assert hist["journal"] == []  # nothing reached the target

    proc = start_mrc("test", "churn", sample.shas["slow"], config=config, state=state)
    out, err = interrupt_after(proc, "started")
    assert proc.returncode == EXIT_CANCELLED, err
    assert ": cancelled: " in out
    assert time.monotonic() - started < 60  # the two-minute tests were stopped


def test_doctor_reports_each_backend(local: tuple[Path, Path]) -> None:
    config, state = local
    proc = mrc("doctor", "--json", config=config, state=state)
    # the model server is not running, so its /metrics endpoint does not answer
    assert proc.returncode == EXIT_UNAVAILABLE, proc.stderr
    result = doc(proc)
    assert result["ok"] is False
    by_backend = {c["backend"]: c for c in result["checks"]}
    assert set(by_backend) == {"git", "local", "scrape"}
    assert by_backend["git"]["ok"] and by_backend["git"]["detail"].startswith("HEAD ")
    assert by_backend["local"]["ok"]
    assert not by_backend["scrape"]["ok"]
    assert all(set(c) == {"backend", "name", "ok", "detail"} for c in result["checks"])


def test_production_release_needs_the_model_name_typed(tmp_path: Path, sample: ServedRepo) -> None:
    """On a terminal, a production target asks for the model name; a wrong answer changes
    nothing (exit 2), the right one releases. Rollback stays a plain y/N."""
    from core import config as config_mod
    from core.services.workspace import Workspace
    from tui.cli.output import Streams
    from tui.cli.release import cmd_release
    from tui.cli.rollback import cmd_rollback
    from tui.cli.runner import run_command

    path = write_config(tmp_path, sample.path, free_port(), production=True, duration="1s")
    ws = Workspace(config_mod.load_file(path), state_dir=tmp_path / "state")

    def run(body: Any, answer: str) -> tuple[int, Streams]:
        streams = Streams(io.StringIO(), io.StringIO(), io.StringIO(answer))
        code = run_command(body, argparse.Namespace(), streams=streams, workspace=ws)
        return code, streams

    def release(sha: str) -> Any:
        return lambda w, s, c: cmd_release(w, s, "churn", sha, interactive=True)

    def rollback(w: Any, s: Streams, c: Any) -> int:
        return cmd_rollback(w, s, "churn", interactive=True)

    try:
        code, streams = run(release(sample.shas["v1"]), "y\n")
        assert code == EXIT_USAGE
        assert "Type the model name (churn) to confirm" in streams.err.getvalue()
        assert "PRODUCTION" in streams.err.getvalue()
        assert ws.journal.releases("churn") == []
        code, streams = run(release(sample.shas["v1"]), "churn\n")
        assert code == EXIT_OK, streams.err.getvalue()
        code, streams = run(release(sample.shas["v2"]), "churn\n")
        assert code == EXIT_OK, streams.err.getvalue()
        assert [x.status for x in ws.journal.releases("churn")] == ["done", "done"]

        code, streams = run(rollback, "n\n")
        assert code == EXIT_USAGE
        assert "revision 2" in streams.err.getvalue() and "[y/N]" in streams.err.getvalue()
        assert [e.action for e in ws.journal.entries("churn")] == ["rollout", "rollout"]
        code, streams = run(rollback, "y\n")
        assert code == EXIT_OK, streams.err.getvalue()
        assert ws.journal.entries("churn")[0].action == "rollback"
        assert served(ws.target("churn").port)["version"] == "v1"  # type: ignore[attr-defined]
    finally:
        ws.close()


# ---------------------------------------------------------------------- Kubernetes


@pytest.fixture
def k8s_model(
    k8s_cluster, k8s_namespace: str, tmp_path: Path, sample: ServedRepo
) -> tuple[Path, Path, str]:
    """A Deployment with revisions 1 (v1) and 2 (v2); returns (config, state, namespace)."""
    rollout_to(k8s_cluster, k8s_namespace, "registry.local/churn:v1", "ship v1")
    rollout_to(k8s_cluster, k8s_namespace, "registry.local/churn:v2", "ship v2")
    config = k8s_config(tmp_path, sample.path, k8s_cluster, k8s_namespace)
    return config, tmp_path / "state", k8s_namespace


@pytest.mark.k8s
def test_rollback_on_the_real_control_plane(k8s_cluster, k8s_model) -> None:
    config, state, ns = k8s_model
    status = mrc("status", "--json", config=config, state=state)
    assert status.returncode == EXIT_OK, status.stderr
    row = doc(status)["targets"][0]
    assert (row["kind"], row["revision"], row["image"]) == ("kubernetes", 2,
                                                             "registry.local/churn:v2")  # fmt: skip
    assert row["production"] is True

    # production: rollback is one confirmation, "y" on a terminal; scripts name the model
    back = mrc("rollback", "churn", "--confirm", "churn", "--json", "--reason", "p95 up",
               config=config, state=state)  # fmt: skip
    assert back.returncode == EXIT_OK, back.stderr
    rb = doc(back)
    assert (rb["from_revision"], rb["to_revision"], rb["result"]) == (2, 1, "done")
    assert (rb["from_image"], rb["to_image"]) == ("registry.local/churn:v2",
                                                  "registry.local/churn:v1")  # fmt: skip
    assert live_image(k8s_cluster, ns) == "registry.local/churn:v1"
    # kubectl agrees: revision 1 became revision 3
    history = k8s_cluster.kubectl("-n", ns, "rollout", "history", "deployment/churn").stdout
    assert "3 " in history and "ship v1" in history

    hist = doc(mrc("history", "churn", "--json", config=config, state=state))
    revisions = hist["targets"][0]["revisions"]
    assert revisions[0]["current"] and revisions[0]["revision"] == 3
    assert revisions[0]["image"] == "registry.local/churn:v1"
    assert [(e["action"], e["outcome"], e["reason"], e["from_revision"], e["to_revision"])
            for e in hist["journal"]] == [("rollback", "done", "p95 up", "2", "3")]  # fmt: skip

    doctor = mrc("doctor", "--json", config=config, state=state)
    assert doctor.returncode == EXIT_OK, doctor.stdout + doctor.stderr
    checks = {c["backend"]: c for c in doc(doctor)["checks"]}
    assert checks["kubernetes"]["ok"] and "server v1." in checks["kubernetes"]["detail"]

    missing = mrc("rollback", "churn", "--to", "99", "--confirm", "churn", config=config,
                  state=state)  # fmt: skip
    assert missing.returncode == EXIT_NOT_FOUND
    assert "99" in missing.stderr


@pytest.mark.k8s
def test_rollback_no_wait_exits_once_the_api_server_accepted_it(k8s_cluster, k8s_model) -> None:
    """``--no-wait`` returns after the patch (``waited`` false); else the wait is announced."""
    config, state, ns = k8s_model
    quick = mrc("rollback", "churn", "--confirm", "churn", "--no-wait", "--json",
                config=config, state=state)  # fmt: skip
    assert quick.returncode == EXIT_OK, quick.stderr
    rb = doc(quick)
    assert (rb["from_revision"], rb["to_revision"], rb["result"]) == (2, 1, "done")
    assert rb["waited"] is False
    assert "not waiting for the rollout to complete (--no-wait)" in quick.stderr
    assert "successfully rolled out" not in quick.stderr
    # the API server has the rollback: kubectl reads the restored template at once
    assert live_image(k8s_cluster, ns) == "registry.local/churn:v1"
    hist = doc(mrc("history", "churn", "--json", config=config, state=state))
    assert [(e["action"], e["outcome"], e["from_revision"], e["to_revision"])
            for e in hist["journal"]] == [("rollback", "done", "2", "1")]  # fmt: skip

    k8s_cluster.kubectl("-n", ns, "rollout", "status", "deployment/churn", "--timeout=60s")
    waited = mrc("rollback", "churn", "--confirm", "churn", "--json", config=config, state=state)
    assert waited.returncode == EXIT_OK, waited.stderr
    assert doc(waited)["waited"] is True
    assert "waiting for the rollout to complete (--no-wait to skip)" in waited.stderr
    assert "successfully rolled out" in waited.stderr
    assert live_image(k8s_cluster, ns) == "registry.local/churn:v2"


@pytest.mark.k8s
def test_rollback_denied_by_rbac_and_unreachable_cluster(
    k8s_cluster, k8s_model, tmp_path: Path, sample: ServedRepo
) -> None:
    _, state, ns = k8s_model
    (tmp_path / "viewer").mkdir()
    viewer = k8s_config(tmp_path / "viewer", sample.path, k8s_cluster, ns,
                        kubeconfig=k8s_cluster.restricted_kubeconfig,
                        context=k8s_cluster.restricted_context)  # fmt: skip
    denied = mrc("rollback", "churn", "--confirm", "churn", config=viewer, state=state)
    assert denied.returncode == EXIT_PERMISSION, denied.stderr
    assert live_image(k8s_cluster, ns) == "registry.local/churn:v2"  # unchanged

    # a kubeconfig whose server does not answer
    dead = tmp_path / "dead.kubeconfig"
    text = Path(k8s_cluster.kubeconfig).read_text()
    dead.write_text(text.replace(k8s_cluster.server, f"https://127.0.0.1:{free_port()}"))
    (tmp_path / "dead").mkdir()
    unreachable = k8s_config(tmp_path / "dead", sample.path, k8s_cluster, ns, kubeconfig=dead)
    down = mrc("rollback", "churn", "--confirm", "churn", config=unreachable, state=state,
               timeout=120)  # fmt: skip
    assert down.returncode == EXIT_UNAVAILABLE, down.stderr
    st = mrc("status", "--json", config=unreachable, state=state)
    assert st.returncode == EXIT_UNAVAILABLE
    assert doc(st)["targets"][0]["phase"] == "disconnected"
