"""The local target with real server processes: rollout, failed health check, rollback, lifetime."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from core import procs
from core.cancel import CancelToken
from core.domain import Artifact, Phase
from core.errors import BackendUnavailable, Cancelled, Conflict, NotFound, OperationFailed
from core.targets import local
from core.targets.base import Target
from core.targets.expected import ExpectedState
from core.targets.local import LocalTarget, free_port
from tests.services.common import processes_mentioning, wait_until
from tests.support.repos import BASE_TIME, commit_files, init_repo

SERVER = textwrap.dedent(
    """\
    import json, os, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    VERSION = open("VERSION").read().strip()
    if VERSION == "crash":
        sys.exit("model file is corrupt")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/healthz":
                status = 500 if VERSION == "sick" else 200
                body = b"ok"
            else:
                status = 200
                body = json.dumps({"version": VERSION, "commit": os.environ["MRC_COMMIT"],
                                   "pid": os.getpid()}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    print("booting version", VERSION, flush=True)
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = init_repo(tmp_path_factory.mktemp("repo") / "model")
    shas = {}
    for i, version in enumerate(["1", "2", "sick", "crash", "4"]):
        files = {"VERSION": version + "\n"}
        if i == 0:
            files["server.py"] = SERVER
        shas[version] = commit_files(path, files, f"version {version}", when=BASE_TIME + i * 60)
    return path, shas


def make_target(repo_path: Path, state: Path, **kw: object) -> LocalTarget:
    options: dict = {"port": free_port(), "health_timeout": 15.0, "keep": 3}
    options.update(kw)
    return LocalTarget(
        "churn",
        "local",
        repo_path,
        "{python} server.py {port}",
        state_dir=state,
        **options,
    )


@pytest.fixture
def target(repo: tuple[Path, dict[str, str]], tmp_path: Path):
    t = make_target(repo[0], tmp_path / "state")
    yield t
    t.close()


def served(t: LocalTarget) -> dict:
    response = httpx.get(f"http://127.0.0.1:{t.port}/version", timeout=5)
    response.raise_for_status()
    return response.json()


def deploy(t: LocalTarget, sha: str) -> list[str]:
    return [p.step for p in t.rollout(Artifact(commit=sha), reason="test")]


def pid_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not procs.group_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_is_a_target(target: LocalTarget) -> None:
    assert isinstance(target, Target)
    assert target.kind == "local"
    assert target.status().phase is Phase.STOPPED
    assert target.history() == []


def test_rollout_serves_the_commit_on_the_stable_port(target: LocalTarget, repo) -> None:
    _, shas = repo
    steps = deploy(target, shas["1"][:10])
    assert steps[-1] == "done" and "verify" in steps
    assert served(target)["version"] == "1"
    assert served(target)["commit"] == shas["1"]
    state = target.status()
    assert state.phase is Phase.COMPLETE and state.revision == 1 and state.ready == 1
    assert state.commit == shas["1"]
    (rev,) = target.history()
    assert rev.current and rev.commit == shas["1"] and rev.change_cause == "test"
    assert (Path(rev.extra["artifact"]) / "VERSION").read_text() == "1\n"


def test_second_rollout_switches_and_retires_the_old_server(target: LocalTarget, repo) -> None:
    _, shas = repo
    deploy(target, shas["1"])
    old_pid = served(target)["pid"]
    deploy(target, shas["2"])
    assert served(target)["version"] == "2"
    assert pid_gone(old_pid)
    history = target.history()
    assert [(r.number, r.commit, r.current) for r in history] == [
        (2, shas["2"], True),
        (1, shas["1"], False),
    ]
    assert target.status().revision == 2


def test_a_change_is_done_at_the_switch_and_the_old_server_drains_until_close(
    repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old server stops DRAIN seconds after the switch, not before the change returns;
    closing the target meanwhile stops it at once."""
    monkeypatch.setattr(local, "DRAIN", 600.0)
    path, shas = repo
    t = make_target(path, tmp_path / "state")
    try:
        deploy(t, shas["1"])
        old_pid = served(t)["pid"]
        steps = [(p.step, p.message) for p in t.rollout(Artifact(commit=shas["2"]))]
        assert ("retire", "revision 1 stops in 600 s (requests in flight)") in steps
        assert steps[-1][0] == "done"
        assert served(t)["version"] == "2"
        stat = procs.proc_stat(old_pid)
        assert stat is not None and stat.live  # still draining
        assert t.status().revision == 2
    finally:
        t.close()
    assert pid_gone(old_pid)


def test_unhealthy_revision_is_killed_and_the_old_one_keeps_serving(repo, tmp_path: Path) -> None:
    path, shas = repo
    t = make_target(path, tmp_path / "state", health_timeout=1.0)
    try:
        deploy(t, shas["1"])
        with pytest.raises(OperationFailed) as failed:
            deploy(t, shas["sick"])
        assert "/healthz answered 500" in str(failed.value)
        assert "booting version sick" in str(failed.value)  # the log tail
        assert served(t)["version"] == "1"
        assert t.status().phase is Phase.COMPLETE
        assert [r.commit for r in t.history()] == [shas["1"]]
        assert [p for p in t.detail().pods if "revision" in p.name and "Running" in p.phase]
        assert len([p for p in t.detail().pods if p.name.startswith("revision")]) == 1
        t.health_timeout = 30.0  # a crash is reported as soon as the process exits
        with pytest.raises(OperationFailed) as crashed:
            deploy(t, shas["crash"])
        assert "exited with code 1" in str(crashed.value)
        assert "model file is corrupt" in str(crashed.value)
        assert served(t)["version"] == "1"
    finally:
        t.close()


def test_a_taken_stable_port_fails_the_first_rollout_and_leaves_nothing_running(
    repo, tmp_path: Path
) -> None:
    """The forwarder starts while the server does; when it cannot listen, neither is kept."""
    path, shas = repo
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        t = make_target(path, tmp_path / "state", port=taken.getsockname()[1])
        try:
            with pytest.raises(OperationFailed, match="is not available"):
                deploy(t, shas["1"])
            assert t._all_procs() == []
            assert t.status().phase is Phase.STOPPED
            assert processes_mentioning(str(t.state_dir)) == []  # guards, forwarder
        finally:
            t.close()


def test_cancel_during_health_wait_keeps_the_old_one(repo, tmp_path: Path) -> None:
    path, shas = repo
    t = make_target(path, tmp_path / "state", health_timeout=30.0)
    try:
        deploy(t, shas["1"])
        token = CancelToken()
        steps = t.rollout(Artifact(commit=shas["sick"]), cancel=token)
        for progress in steps:
            if progress.step == "verify":
                token.cancel()
                break
        with pytest.raises(Cancelled):
            next(steps)
        assert served(t)["version"] == "1"
        assert t.history()[0].commit == shas["1"]
        # A caller that drops the operation half-way leaves nothing running either.
        dropped = t.rollout(Artifact(commit=shas["sick"]))
        assert [next(dropped).step for _ in range(3)][-1] == "verify"
        dropped.close()
        assert [p.name for p in t.detail().pods if p.name.startswith("revision")] == [
            n for n in (p.name for p in t.detail().pods) if n.startswith("revision 1 ")
        ]
        deploy(t, shas["2"])  # and the target is free for the next change
        assert served(t)["version"] == "2"
    finally:
        t.close()


def test_rollback_to_previous_and_to_a_chosen_revision(target: LocalTarget, repo) -> None:
    _, shas = repo
    for version in ("1", "2", "4"):
        deploy(target, shas[version])
    preview = target.preview_rollback()
    assert (preview.from_revision, preview.to_revision) == (3, 2)
    assert preview.to_commit == shas["2"] and not preview.noop
    assert shas["2"] in preview.diff

    steps = [p.step for p in target.rollback(reason="drift")]
    assert steps[-1] == "done"
    assert served(target)["version"] == "2"
    history = target.history()
    # The rolled-back revision comes back under a new number, as kubectl does it.
    assert [(r.number, r.commit) for r in history] == [
        (4, shas["2"]),
        (3, shas["4"]),
        (1, shas["1"]),
    ]
    assert history[0].current and history[0].change_cause == "drift"
    assert history[0].extra["rolled_back_from"] == 2

    stale = target.preview_rollback()
    assert stale.from_revision == 4
    list(target.rollback(1))
    with pytest.raises(Conflict):
        list(target.rollback(expected=stale))
    assert served(target)["version"] == "1"
    assert served(target)["version"] == "1"
    assert target.status().revision == 5
    assert target.preview_rollback(5).noop
    assert [p.step for p in target.rollback(5)] == ["done"]
    with pytest.raises(NotFound):
        target.preview_rollback(99)
    with pytest.raises(NotFound):
        list(target.rollback(2))


def test_history_keeps_only_keep_revisions_and_their_artifacts(repo, tmp_path: Path) -> None:
    path, shas = repo
    t = make_target(path, tmp_path / "state", keep=2)
    try:
        for version in ("1", "2", "4"):
            deploy(t, shas[version])
        assert [r.commit for r in t.history()] == [shas["4"], shas["2"]]
        artifacts = tmp_path / "state" / "artifacts"
        kept = sorted([shas["4"], shas["2"]])
        # A server still draining keeps its tree until it has stopped.
        wait_until(lambda: sorted(p.name for p in artifacts.iterdir()) == kept, 10, "pruning")
        with pytest.raises(NotFound):
            deploy(t, "no-such-commit")
    finally:
        t.close()


def test_artifacts_come_from_the_repository_by_short_sha_or_tag(repo, tmp_path: Path) -> None:
    path, shas = repo
    t = make_target(path, tmp_path / "state")
    try:
        assert t.resolve(shas["2"][:8]) == shas["2"]
        exported = t.export(shas["2"])
        assert exported == t.artifact_dir(shas["2"])
        assert (exported / "VERSION").read_text() == "2\n"
        assert sorted(p.name for p in exported.iterdir()) == ["VERSION", "server.py"]
        assert t.export(shas["2"]) == exported  # cached
        with pytest.raises(NotFound, match="not found"):
            t.resolve("no-such-commit")
    finally:
        t.close()


def test_a_repository_path_without_git_is_backend_unavailable(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for path, message in ((plain, "is not a git repository"), (tmp_path / "gone", "does not")):
        t = make_target(path, tmp_path / f"state-{path.name}")
        try:
            with pytest.raises(BackendUnavailable, match=message):
                deploy(t, "HEAD")
        finally:
            t.close()


def test_restart_replaces_the_process_of_the_live_revision(target: LocalTarget, repo) -> None:
    _, shas = repo
    deploy(target, shas["1"])
    before = served(target)["pid"]
    target.restart()
    after = served(target)
    assert after["version"] == "1" and after["pid"] != before
    assert target.status().revision == 1
    assert pid_gone(before)


def test_stop_all_leaves_no_process_and_start_brings_the_revision_back(
    target: LocalTarget, repo
) -> None:
    _, shas = repo
    deploy(target, shas["1"])
    groups = [p.pid for p in target._all_procs()]
    assert len(groups) == 2  # server + forwarder
    target.stop_all()
    assert all(pid_gone(pid, 0.5) for pid in groups)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{target.port}/version", timeout=2)
    assert target.status().phase is Phase.STOPPED
    steps = [p.step for p in target.start()]
    assert "verify" in steps
    assert served(target)["version"] == "1"
    assert target.status().revision == 1


def test_rollout_refuses_when_the_live_revision_changed_since_it_was_shown(
    target: LocalTarget, repo
) -> None:
    _, shas = repo
    deploy(target, shas["1"])
    seen = target.status()  # what the operator's screen shows: revision 1
    deploy(target, shas["2"])  # someone else's change meanwhile
    with pytest.raises(Conflict, match=r"changed since it was shown \(revision 1 -> 2"):
        list(target.rollout(Artifact(commit=shas["4"]), expected=seen))
    assert served(target)["version"] == "2"
    assert [r.number for r in target.history()] == [2, 1]
    # What is live now is what the operator sees next: that rollout goes ahead.
    list(target.rollout(Artifact(commit=shas["4"]), expected=target.status()))
    assert served(target)["version"] == "4"


def test_restart_refuses_when_the_live_revision_changed_since_it_was_shown(
    target: LocalTarget, repo
) -> None:
    _, shas = repo
    deploy(target, shas["1"])
    seen = ExpectedState(revision=1, commit=shas["1"])
    deploy(target, shas["2"])
    pid = served(target)["pid"]
    with pytest.raises(Conflict, match="restart refused"):
        target.restart(expected=seen)
    assert served(target) == {"version": "2", "commit": shas["2"], "pid": pid}
    target.restart(expected=ExpectedState(revision=2, commit=shas["2"]))
    assert served(target)["pid"] != pid


def test_pause_is_unsupported_and_permissions_say_so(target: LocalTarget) -> None:
    with pytest.raises(OperationFailed):
        target.pause()
    perms = target.permissions()
    assert perms["rollback"].allowed and perms["rollout"].allowed
    assert not perms["pause"].allowed and perms["pause"].reason


def test_a_second_console_on_the_same_state_dir_is_refused(repo, tmp_path: Path) -> None:
    path, shas = repo
    first = make_target(path, tmp_path / "state")
    second = make_target(path, tmp_path / "state", port=first.port)
    try:
        deploy(first, shas["1"])
        with pytest.raises(Conflict):
            deploy(second, shas["2"])
        assert second.history()[0].commit == shas["1"]  # reading is fine
        state = second.status()
        assert state.phase is Phase.COMPLETE and "another console" in state.message
        second.close()
        assert served(first)["version"] == "1"  # closing the reader leaves the owner alone
        assert served(first)["version"] == "1"
    finally:
        second.close()
        first.close()


def test_stale_processes_of_a_dead_console_are_cleaned_but_strangers_spared(
    repo, tmp_path: Path
) -> None:
    path, _ = repo
    state = tmp_path / "state"
    state.mkdir()
    leftover = procs.spawn_guarded(["sleep", "60"], tag=str(state.resolve()))
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    (state / "state.json").write_text(
        json.dumps(
            {
                "next": 1,
                "current": None,
                "revisions": [],
                "processes": [
                    {"role": "server", "pid": leftover.pid},
                    {"role": "server", "pid": stranger.pid},
                ],
            }
        )
    )
    t = make_target(path, state)
    try:
        with pytest.raises(OperationFailed):
            list(t.start())  # claims the dir, then finds nothing deployed
        leftover.wait(5)
        assert stranger.poll() is None
    finally:
        t.close()
        stranger.kill()
        stranger.wait()


CHILD = textwrap.dedent(
    """\
    import json, sys, time
    from core import procs
    from core.domain import Artifact
    from core.targets.local import LocalTarget

    repo, sha, state, port, handlers = sys.argv[1:6]
    if handlers == "1":
        procs.install_exit_handlers()
    t = LocalTarget("churn", "local", repo, "{python} server.py {port}", state_dir=state,
                    port=int(port), health_timeout=10)
    for _ in t.rollout(Artifact(commit=sha)):
        pass
    pids = [p.pid for p in t._all_procs()] + [t.live_port()]
    print(json.dumps(pids), flush=True)
    time.sleep(120)
    """
)


@pytest.mark.parametrize(
    ("sig", "handlers"),
    [(signal.SIGHUP, "1"), (signal.SIGHUP, "0"), (signal.SIGKILL, "0")],
    ids=["sighup-with-handlers", "sighup-default", "sigkill"],
)
def test_servers_die_with_their_console(repo, tmp_path: Path, sig: int, handlers: str) -> None:
    path, shas = repo
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(path),
            shas["1"],
            str(tmp_path / "s"),
            str(port),
            handlers,
        ],
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        *groups, server_port = json.loads(line)
        assert httpx.get(f"http://127.0.0.1:{port}/version", timeout=5).json()["version"] == "1"
        os.kill(child.pid, sig)
        assert child.wait(10) == -sig
        assert all(pid_gone(pid) for pid in groups)
        for p in (port, server_port):
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.1:{p}/healthz", timeout=2)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_watch_reports_the_switch_and_the_new_state(target: LocalTarget, repo) -> None:
    _, shas = repo
    token = CancelToken()
    seen: list = []

    def consume() -> None:
        for event in target.watch(token):
            seen.append(event)

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        deploy(target, shas["1"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(e.kind == "state" and e.reason == "complete" for e in seen):
                break
            time.sleep(0.05)
    finally:
        token.cancel()
        thread.join(5)
    assert not thread.is_alive()
    reasons = [e.reason for e in seen]
    assert "stopped" in reasons  # the state before the rollout
    assert "Switched" in reasons and "complete" in reasons


def test_clients_of_the_stable_port_see_no_error_across_switches(target: LocalTarget, repo) -> None:
    _, shas = repo
    deploy(target, shas["1"])
    stop = threading.Event()
    answers: list[str] = []
    failures: list[str] = []

    def client() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                try:
                    response = http.get(f"http://127.0.0.1:{target.port}/version")
                    response.raise_for_status()
                    answers.append(response.json()["version"])
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                time.sleep(0.005)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        deploy(target, shas["2"])
        list(target.rollback())
        deploy(target, shas["4"])
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(10)
    assert failures == []
    versions = [v for i, v in enumerate(answers) if i == 0 or answers[i - 1] != v]
    assert versions == ["1", "2", "1", "4"]
