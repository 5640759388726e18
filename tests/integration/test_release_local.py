"""Releases to the local target with real processes, a real git repository and the real journal.

The sample repository's server counts requests and errors on its own (a
background ticker stands in for traffic) and exposes them on /metrics, so the
guard reads real scraped numbers. Commits:

* ``v1``, ``v2``: healthy, tests pass;
* ``broken``: the tests fail;
* ``erroring``: tests pass but half the requests fail, which the guard catches;
* ``slow``: the tests take two minutes (for cancelling).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core import config as config_mod
from core.domain import Artifact, Phase
from core.errors import Conflict
from core.journal import Journal
from core.services import guard as g
from core.services import release as r
from core.services.workspace import Workspace
from core.targets.local import free_port
from tests.support.repos import BASE_TIME, commit_files, init_repo, pytest_command

pytestmark = pytest.mark.integration

SERVER = textwrap.dedent(
    """\
    import json, os, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    VERSION = open("VERSION").read().strip()
    ERROR_RATE = float(open("ERROR_RATE").read())
    counts = {"requests": 0, "errors": 0}
    lock = threading.Lock()

    def traffic():
        while True:
            time.sleep(0.05)
            with lock:
                counts["requests"] += 10
                counts["errors"] += round(10 * ERROR_RATE)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/healthz":
                body, ctype = b"ok", "text/plain"
            elif self.path == "/metrics":
                with lock:
                    body = (
                        "# TYPE model_requests_total counter\\n"
                        f"model_requests_total {counts['requests']}\\n"
                        "# TYPE model_errors_total counter\\n"
                        f"model_errors_total {counts['errors']}\\n"
                    ).encode()
                ctype = "text/plain; version=0.0.4"
            else:
                body = json.dumps({"version": VERSION, "commit": os.environ["MRC_COMMIT"]}).encode()
                ctype = "application/json"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    threading.Thread(target=traffic, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)

TESTS = textwrap.dedent(
    """\
    import json, os, pathlib, time

    ROOT = pathlib.Path(__file__).resolve().parents[1]

    def test_version_file_is_sane():
        version = (ROOT / "VERSION").read_text().strip()
        path = os.environ.get("MRC_METRICS_FILE")
        if path:
            with open(path, "w") as out:
                json.dump({"accuracy": 0.5 if version == "broken" else 0.93}, out)
        assert version != "broken", "the model file is broken"
        if version == "slow":
            time.sleep(120)
    """
)


@dataclass
class ServedRepo:
    """The sample repository: path and the sha of each named commit."""

    path: Path
    shas: dict[str, str]


def make_served_repo(path: Path) -> ServedRepo:
    """Create the sample repository at ``path`` (commits v1, v2, broken, erroring, slow)."""
    init_repo(path)
    shas = {}
    steps = [
        ("v1", "0"),
        ("v2", "0"),
        ("broken", "0"),
        ("erroring", "0.5"),
        ("slow", "0"),
    ]
    for i, (version, error_rate) in enumerate(steps):
        files = {"VERSION": version + "\n", "ERROR_RATE": error_rate + "\n"}
        if i == 0:
            files.update({"server.py": SERVER, "tests/test_model.py": TESTS})
        shas[version] = commit_files(path, files, f"model {version}", when=BASE_TIME + 60 * i)
    return ServedRepo(path, shas)


def write_config(
    directory: Path,
    repo: Path,
    port: int,
    *,
    auto_rollback: bool = True,
    duration: str = "6s",
    production: bool = False,
    extra_targets: str = "",
    error_rate: str = "sum(rate(model_errors_total[2s])) / sum(rate(model_requests_total[2s]))",
) -> Path:
    """Write an mrc.toml for the sample repo served by a local target on ``port``; return it."""
    text = textwrap.dedent(
        f"""\
        [[model]]
        name = "churn"
        repo = "{repo}"
        test_command = "{pytest_command()}"
        test_timeout = "2m"
        quality = {{ accuracy = 0.9 }}

          [[model.target]]
          name = "local"
          kind = "local"
          command = "{{python}} server.py {{port}}"
          port = {port}
          health_path = "/healthz"
          production = {"true" if production else "false"}
          keep = 3
        {extra_targets}
          [model.metrics]
          source = "scrape"
          url = "http://127.0.0.1:{port}/metrics"
          refresh = "250ms"
          error_rate = "{error_rate}"

          [model.guard]
          duration = "{duration}"
          auto_rollback = {"true" if auto_rollback else "false"}
          max_error_rate = 0.05
        """
    )
    path = directory / "mrc.toml"
    path.write_text(text)
    return path


def served(port: int) -> dict:
    """Return what the local target serves on its stable port."""
    return httpx.get(f"http://127.0.0.1:{port}/version", timeout=5, trust_env=False).json()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> ServedRepo:
    return make_served_repo(tmp_path_factory.mktemp("repo") / "churn")


@pytest.fixture
def workspace(tmp_path: Path, sample: ServedRepo) -> Iterator[tuple[Workspace, int]]:
    port = free_port()
    cfg = config_mod.load_file(write_config(tmp_path, sample.path, port))
    ws = Workspace(cfg, state_dir=tmp_path / "state")
    yield ws, port
    ws.close()  # stops the local target's processes
    if ws._journal is not None:
        ws.journal.close()


def release(ws: Workspace, commit: str, **kw: object) -> list[r.ReleaseEvent]:
    return list(r.ReleasePipeline(ws, poll=0.1).run("churn", commit, **kw))  # type: ignore[arg-type]


def test_failing_tests_stop_before_anything_reaches_the_target(
    workspace: tuple[Workspace, int], sample: ServedRepo
) -> None:
    ws, _ = workspace
    events = release(ws, sample.shas["broken"][:10])
    final = events[-1]
    assert final.outcome == r.FAILED
    assert "tests failed" in final.message
    rel = ws.journal.releases("churn")[0]
    assert [(s.step, s.status) for s in rel.steps] == [("tests", "failed")]
    assert rel.commit == sample.shas["broken"]
    assert ws.journal.entries("churn") == []  # nothing was rolled out
    assert ws.target("churn").history() == []
    # the test output was streamed
    assert any("the model file is broken" in e.line for e in events if e.line)


def test_passing_release_is_served_and_a_guard_breach_rolls_back(
    workspace: tuple[Workspace, int], sample: ServedRepo
) -> None:
    ws, port = workspace
    ok = release(ws, sample.shas["v2"], reason="ship v2")
    assert ok[-1].outcome == r.DONE, ok[-1].message
    assert served(port) == {"version": "v2", "commit": sample.shas["v2"]}

    bad = release(ws, sample.shas["erroring"], reason="ship erroring")
    final = bad[-1]
    assert final.outcome == r.ROLLED_BACK, final.message
    assert final.message.startswith("guard: error_rate breached: ")
    assert served(port)["version"] == "v2"  # the rollback is live

    # The journal tells the whole story, in order.
    releases = list(reversed(ws.journal.releases("churn")))
    assert [(x.commit, x.status) for x in releases] == [
        (sample.shas["v2"], "done"),
        (sample.shas["erroring"], "rolled_back"),
    ]
    assert [(s.step, s.status) for s in releases[1].steps] == [
        ("tests", "done"), ("build", "skipped"), ("push", "skipped"), ("rollout", "done"),
        ("wait", "done"), ("verify", "failed"),
    ]  # fmt: skip
    audit = list(reversed(ws.journal.entries("churn")))
    assert [(e.action, e.outcome.value) for e in audit] == [
        ("rollout", "done"),
        ("rollout", "done"),
        ("rollback", "done"),
    ]
    assert audit[2].reason.startswith("guard: error_rate breached: ")
    assert audit[2].reason.endswith(" > 0.05")
    assert audit[1].reason == "ship erroring"
    assert ws.guard_state("churn", "local").kind == g.ROLLED_BACK  # what the screens show
    history = ws.target("churn").history()
    assert history[0].current and history[0].commit == sample.shas["v2"]
    guard_events = [e.guard for e in bad if e.kind == r.STEP_PROGRESS and e.guard is not None]
    assert [e.kind for e in guard_events if e.kind in (g.BREACH, g.ROLLED_BACK)] == [
        g.BREACH,
        g.ROLLED_BACK,
    ]


def test_two_consoles_on_the_same_model_conflict_and_both_are_journalled(
    workspace: tuple[Workspace, int], sample: ServedRepo
) -> None:
    """A second console on the same state sees the first one's change and cannot overwrite it."""
    ws, port = workspace
    other = Workspace(ws.config, state_dir=ws.state_dir)
    try:
        first = release(ws, sample.shas["v1"])
        assert first[-1].outcome == r.DONE, first[-1].message
        seen = other.target("churn").status()
        assert seen.commit == sample.shas["v1"]  # console 2 sees console 1's rollout
        with pytest.raises(Conflict):
            list(
                other.run_rollout(
                    other.target("churn"), Artifact(commit=sample.shas["v2"]), reason="console 2"
                )
            )
        assert served(port)["version"] == "v1"  # not overwritten
        entries = list(reversed(ws.journal.entries("churn")))
        assert [(e.action, e.outcome.value) for e in entries] == [
            ("rollout", "done"),
            ("rollout", "failed"),
        ]
        assert entries[1].reason == "console 2"
        assert entries[1].error
        # console 2's row records console 1's revision as the one it found live
        assert entries[1].from_revision == entries[0].to_revision != ""
    finally:
        other.close()


KILLER = textwrap.dedent(
    """\
    import sys
    from core import config as config_mod
    from core.domain import Artifact
    from core.services.workspace import Workspace

    cfg = config_mod.load_file(sys.argv[1])
    ws = Workspace(cfg, state_dir=sys.argv[2])
    target = ws.target("churn")
    for progress in ws.run_rollout(target, Artifact(commit=sys.argv[3]), reason="killed"):
        print("progress", progress.message, flush=True)
    print("finished", flush=True)
    """
)


def test_console_killed_mid_rollout_leaves_outcome_unknown_beside_the_live_state(
    workspace: tuple[Workspace, int], sample: ServedRepo
) -> None:
    ws, _ = workspace
    assert ws.config.source is not None
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLER, str(ws.config.source), str(ws.state_dir), sample.shas["v1"]],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first progress: the intent row is written
        assert line.startswith("progress"), line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # The next start marks the orphans: the entry says "outcome unknown".
    journal = Journal(ws.journal.path)
    try:
        journal.mark_orphans()  # what the console does at start (opening may have done it)
        newest = journal.entries("churn")[0]
        assert (newest.action, newest.reason) == ("rollout", "killed")
        assert newest.outcome_unknown and newest.outcome.value == "unknown"
        assert str(proc.pid) in newest.error
    finally:
        journal.close()
    # ... and the live state beside it can be read (the killed console's servers died with it).
    state = ws.target("churn").status()
    assert state.phase in (Phase.STOPPED, Phase.UNKNOWN, Phase.COMPLETE)
    assert state.commit in ("", sample.shas["v1"])


# -- verdicts without data -------------------------------------------------------


def mrc_cli(*args: str, config: Path, state: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tui.cli --config CONFIG ARGS`` as a script would, with its own state."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MRC_STATE_DIR": str(state), "PYTHONPATH": str(root)}
    env.pop("MRC_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "--config", str(config), *args],
        input="",
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=180,
    )


NO_SUCH_METRIC = "sum(rate(model_no_such_total[2s]))"


def test_a_guard_without_data_does_not_report_the_release_verified(
    tmp_path: Path, sample: ServedRepo
) -> None:
    """`mrc release` as a script runs it: the guard's query matches nothing for the whole
    window, so the release is live but inconclusive (exit 7), never verified."""
    port = free_port()
    config = write_config(tmp_path, sample.path, port, error_rate=NO_SUCH_METRIC)
    state = tmp_path / "state"
    proc = mrc_cli("release", "churn", sample.shas["v1"], "--yes", "--json",
                   config=config, state=state)  # fmt: skip
    result = json.loads(proc.stdout)
    assert proc.returncode == 7, proc.stderr
    assert result["outcome"] == "inconclusive"
    assert result["steps"][-1]["step"] == "verify"
    assert result["steps"][-1]["result"] == "inconclusive"  # as the journal says, not "failed"
    assert result["message"].startswith("guard: inconclusive (no data for error_rate in 6s: ")
    assert "not verified" in result["message"]
    journal = Journal(state / "journal.sqlite3")
    try:
        [rel] = journal.releases("churn")
        assert rel.status == "inconclusive"
        assert [(s.step, s.status) for s in rel.steps][-1] == ("verify", "inconclusive")
    finally:
        journal.close()


def test_no_data_on_production_with_auto_rollback_rolls_back_through_the_journal(
    tmp_path: Path, sample: ServedRepo
) -> None:
    port = free_port()
    good = Workspace(
        config_mod.load_file(write_config(tmp_path, sample.path, port, production=True)),
        state_dir=tmp_path / "state",
    )
    try:
        first = release(good, sample.shas["v1"])
        assert first[-1].outcome == r.DONE, first[-1].message
    finally:
        good.close()
    blind_dir = tmp_path / "blind"
    blind_dir.mkdir()
    cfg = write_config(blind_dir, sample.path, port, production=True, error_rate=NO_SUCH_METRIC)
    ws = Workspace(config_mod.load_file(cfg), state_dir=tmp_path / "state")
    try:
        for _ in ws.target("churn").start():
            pass  # the v1 the first console left behind serves again
        events = release(ws, sample.shas["v2"])
        final = events[-1]
        assert final.outcome == r.ROLLED_BACK, final.message
        assert final.message.startswith("guard: inconclusive (no data for error_rate")
        assert served(port)["version"] == "v1"
        rollback = ws.journal.entries("churn")[0]
        assert rollback.action == "rollback"
        assert rollback.reason.startswith("guard: inconclusive (no data for error_rate")
    finally:
        ws.close()


def test_readme_order_release_of_the_shift_breaches_on_drift_with_no_screen_open(
    tmp_path: Path,
) -> None:
    """The README's demo order: the console starts the sandbox (which starts collecting
    metrics), and the operator presses `d` on v1.3.0 before ever opening the Drift
    screen. The guard gathers its own training reference and finds the drift: a breach
    (an alert, as the demo has automatic rollback off), never "no breach"."""
    from core.demo import build_sandbox

    sandbox = build_sandbox(tmp_path / "demo")
    ws = Workspace(config_mod.load_file(sandbox.config), state_dir=sandbox.state_dir)
    background = sandbox.start_background(ws, rate=50)
    try:
        events = list(r.ReleasePipeline(ws, poll=0.1).run("churn", sandbox.shifting))
        final = events[-1]
        assert final.outcome == r.ALERTED, final.message
        assert final.message.startswith("guard: drift breached: ")
        checks = [e.guard for e in events if e.guard is not None and e.guard.kind == g.CHECK]
        assert not any("reference window has 0 samples" in c.message for c in checks)
        assert ws.guard_state("churn", "local").kind == g.ALERT
    finally:
        background.stop()
        ws.close()
