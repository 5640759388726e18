"""The SQLite journal: intent/outcome, crashes, concurrent processes, migrations."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core import audit, paths
from core.domain import Outcome, RunStatus, TestFailure, TestRun
from core.errors import NotFound
from core.journal import SCHEMA_VERSION, Journal, JournalError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite3") as opened:
        yield opened


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --------------------------------------------------------------------------
# Audit rows


def test_intent_then_outcome(journal: Journal) -> None:
    entry_id = journal.begin(
        "churn", "prod", "rollout", "4", "", "fix calibration", {"image": "r/churn:1a2b"}
    )
    # Committed before begin() returned: a second connection (another process) sees it.
    with sqlite3.connect(journal.path) as other:
        outcome = other.execute("SELECT outcome FROM audit WHERE id = ?", (entry_id,)).fetchone()
    assert outcome == ("intent",)
    intent = journal.entry(entry_id)
    assert intent.outcome is Outcome.INTENT and intent.outcome_unknown
    assert intent.pid == os.getpid() and intent.user and intent.host
    assert intent.finished_at is None

    journal.finish(entry_id, Outcome.DONE, to_revision="5", details={"commit": "1a2b"})
    done = journal.entry(entry_id)
    assert done.outcome is Outcome.DONE and not done.outcome_unknown
    assert (done.from_revision, done.to_revision, done.reason) == ("4", "5", "fix calibration")
    assert done.details == {"image": "r/churn:1a2b", "commit": "1a2b"}
    assert done.finished_at is not None and done.finished_at >= done.time

    failed_id = journal.begin("churn", "prod", "restart")
    journal.finish(failed_id, "failed", "forbidden: cannot patch deployments")
    failed = journal.entry(failed_id)
    assert (failed.outcome, failed.error) == (Outcome.FAILED, "forbidden: cannot patch deployments")


def test_ssh_client_is_recorded(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    monkeypatch.setenv("SSH_CONNECTION", "203.0.113.9 51234 10.0.0.2 22")
    entry = journal.entry(journal.begin("m", "t", "pause"))
    assert entry.ssh_client == "203.0.113.9"


def test_finish_refuses_unknown_rows_and_intent(journal: Journal) -> None:
    with pytest.raises(NotFound):
        journal.finish(999, Outcome.DONE)
    entry_id = journal.begin("m", "t", "pause")
    with pytest.raises(ValueError):
        journal.finish(entry_id, Outcome.INTENT)


def test_entries_filter_and_order(journal: Journal) -> None:
    ids = [
        journal.begin(model, target, "restart")
        for model, target in [("a", "x"), ("a", "y"), ("b", "x"), ("a", "x")]
    ]
    assert [e.id for e in journal.entries()] == ids[::-1]
    assert [e.id for e in journal.entries(model="a", target="x")] == [ids[3], ids[0]]
    assert [e.id for e in journal.entries(target="x", limit=2)] == [ids[3], ids[2]]
    assert [e.id for e in journal.entries(model="a", action="rollout")] == []


def test_markers(journal: Journal) -> None:
    start = datetime.now(UTC)
    first = journal.begin("m", "t", "rollout", "1", "", "", {"commit": "c2"})
    journal.finish(first, Outcome.DONE, to_revision="2")
    failed = journal.begin("m", "t", "rollout", "2")
    journal.finish(failed, Outcome.FAILED, "image pull backoff")
    journal.finish(journal.begin("m", "t", "restart"), Outcome.DONE)
    journal.finish(journal.begin("m", "other", "rollout"), Outcome.DONE, to_revision="9")
    back = journal.begin("m", "t", "rollback", "3", "1")
    journal.finish(back, Outcome.DONE)
    end = datetime.now(UTC)

    markers = journal.markers("m", since=start)
    assert [(m.kind, m.target, m.label) for m in markers] == [
        ("rollout", "t", "rollout → 2"),
        ("rollout", "t", "rollout (failed)"),
        ("rollout", "other", "rollout → 9"),
        ("rollback", "t", "rollback → 1"),
    ]
    assert journal.markers("m", since=end + timedelta(seconds=1)) == []
    assert journal.markers("other-model") == []


def _open_files(path: Path) -> int:
    """How many of this process's file descriptors are ``path`` or its -wal/-shm files."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(str(path))
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_reads_from_one_short_lived_thread_after_another_keep_the_files_open_once(
    journal: Journal,
) -> None:
    """The Drift screen reads markers from a new worker thread every second: each
    ended thread's connection is reused, not left open (a descriptor leak)."""

    def read() -> None:
        journal.markers("m")

    def in_a_thread() -> None:
        worker = threading.Thread(target=read)
        worker.start()
        worker.join()

    in_a_thread()
    after_one = _open_files(journal.path)
    for _ in range(30):
        in_a_thread()
    assert _open_files(journal.path) == after_one
    read()  # the main thread's own connection still works beside the reused one


# --------------------------------------------------------------------------
# Crashes


CRASHING_WRITER = """
import sys, time
from core.domain import RunStatus, TestRun
from core.journal import Journal
j = Journal(sys.argv[1])
entry = j.begin("churn", "prod", "rollback", "7", "6", "incident")
j.record_test_run(TestRun(None, "churn", "abc123", RunStatus.RUNNING))
release = j.start_release("churn", "prod", "abc123")
j.start_step(release, "build")
print(entry, flush=True)
time.sleep(60)
"""


def test_crashed_writer_becomes_outcome_unknown(journal: Journal) -> None:
    child = run_python(CRASHING_WRITER, str(journal.path))
    try:
        assert child.stdout is not None
        entry_id = int(child.stdout.readline())
        # While the writer lives, its rows are left alone.
        assert journal.mark_orphans() == 0
        assert journal.entry(entry_id).outcome is Outcome.INTENT
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    mine = journal.begin("churn", "prod", "pause")  # this process is alive: untouched

    assert journal.mark_orphans() == 3
    entry = journal.entry(entry_id)
    assert entry.outcome is Outcome.UNKNOWN and entry.outcome_unknown
    assert f"pid {child.pid}" in entry.error and entry.finished_at is not None
    assert journal.entry(mine).outcome is Outcome.INTENT
    (run,) = journal.test_runs(model="churn")
    assert run.status is RunStatus.ERROR and run.message.startswith("interrupted")
    (release,) = journal.releases()
    assert release.status == "unknown" and release.steps[0].status == "unknown"
    assert journal.mark_orphans() == 0  # idempotent


def test_opening_the_journal_closes_rows_of_dead_processes(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    code = (
        "import os, sys\n"
        "from core.journal import Journal\n"
        "print(Journal(sys.argv[1]).begin('m', 't', 'rollout'), flush=True)\n"
        "os._exit(3)\n"
    )
    child = run_python(code, str(path))
    out, err = child.communicate(timeout=30)
    assert child.returncode == 3, err
    with Journal(path, close_orphans=False) as untouched:
        assert untouched.entry(int(out)).outcome is Outcome.INTENT
    with Journal(path) as journal:
        assert journal.entry(int(out)).outcome is Outcome.UNKNOWN


def test_reused_pid_is_not_taken_for_the_writer(journal: Journal) -> None:
    entry_id = journal.begin("m", "t", "restart")
    with sqlite3.connect(journal.path) as db:  # as if an earlier process had our pid
        db.execute("UPDATE audit SET pid_start = '1' WHERE id = ?", (entry_id,))
    assert journal.mark_orphans() == 1
    assert journal.entry(entry_id).outcome is Outcome.UNKNOWN


# --------------------------------------------------------------------------
# Concurrency


CONCURRENT_WRITER = """
import sys
from core.domain import RunStatus, TestRun
from core.journal import Journal
path, tag, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
j = Journal(path)
import os, time
while not os.path.exists(go):
    time.sleep(0.005)
for i in range(count):
    entry = j.begin("m", tag, "rollout", str(i), str(i + 1), f"{tag}-{i}")
    j.finish(entry, "done")
    if i % 10 == 0:
        j.record_test_run(TestRun(None, "m", f"{tag}-{i}", RunStatus.PASSED, passed=i))
"""


def test_two_writer_processes_lose_nothing(tmp_path: Path, journal: Journal) -> None:
    count = 300
    go = tmp_path / "go"
    writers = [
        run_python(CONCURRENT_WRITER, str(journal.path), tag, str(count), str(go))
        for tag in ("p1", "p2")
    ]
    time.sleep(0.3)  # both are past start-up and waiting
    go.touch()
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    for tag in ("p1", "p2"):
        rows = journal.entries(target=tag, limit=10_000)
        assert sorted(e.reason for e in rows) == sorted(f"{tag}-{i}" for i in range(count))
        assert all(e.outcome is Outcome.DONE for e in rows)
    assert len(journal.test_runs(limit=10_000)) == 2 * (count // 10)
    assert len({e.pid for e in journal.entries(limit=10_000)}) == 2


def test_threads_share_one_journal(journal: Journal) -> None:
    def work(tag: str) -> None:
        for i in range(25):
            journal.finish(journal.begin("m", tag, "restart", reason=str(i)), Outcome.DONE)

    threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(journal.entries(limit=1000)) == 100


# --------------------------------------------------------------------------
# Schema and file


V1_SCHEMA = """
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, user TEXT NOT NULL,
    ssh_client TEXT NOT NULL DEFAULT '', host TEXT NOT NULL, pid INTEGER NOT NULL,
    model TEXT NOT NULL, target TEXT NOT NULL, action TEXT NOT NULL,
    from_revision TEXT NOT NULL DEFAULT '', to_revision TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '', outcome TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
    finished_at TEXT);
CREATE TABLE test_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, commit_sha TEXT NOT NULL,
    status TEXT NOT NULL, started_at TEXT, finished_at TEXT,
    passed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0,
    metrics TEXT NOT NULL DEFAULT '{}', failures TEXT NOT NULL DEFAULT '[]', output_path TEXT,
    message TEXT NOT NULL DEFAULT '', exit_code INTEGER, host TEXT NOT NULL DEFAULT '',
    pid INTEGER NOT NULL DEFAULT 0);
CREATE TABLE releases (
    id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, commit_sha TEXT NOT NULL,
    target TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', user TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '', host TEXT NOT NULL DEFAULT '',
    pid INTEGER NOT NULL DEFAULT 0);
CREATE TABLE release_steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT, release_id INTEGER NOT NULL REFERENCES releases(id),
    step TEXT NOT NULL, status TEXT NOT NULL, message TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL, finished_at TEXT);
INSERT INTO audit (time, user, host, pid, model, target, action, from_revision,
    to_revision, reason, outcome, finished_at)
    VALUES ('2026-01-02T03:04:05.000000+00:00', 'ana', 'bastion', 4242, 'churn', 'prod',
            'rollback', '8', '7', 'p95 latency', 'done', '2026-01-02T03:04:09.000000+00:00');
INSERT INTO test_runs (model, commit_sha, status, passed, failed, metrics)
    VALUES ('churn', 'deadbeef', 'passed', 12, 0, '{"accuracy": 0.91}');
PRAGMA user_version = 1;
"""


def test_migration_from_version_1_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
    with Journal(path) as journal:
        assert journal.schema_version() == SCHEMA_VERSION >= 3
        (entry,) = journal.entries()
        assert (entry.user, entry.host, entry.pid) == ("ana", "bastion", 4242)
        assert (entry.action, entry.from_revision, entry.to_revision) == ("rollback", "8", "7")
        assert entry.outcome is Outcome.DONE and entry.details == {}
        assert entry.time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        (run,) = journal.test_runs("churn", "deadbeef")
        assert run.passed == 12 and run.metrics == {"accuracy": 0.91}
        # The new columns work on the old rows.
        journal.finish(entry.id, Outcome.DONE, details={"image": "x"})
        assert journal.entry(entry.id).details == {"image": "x"}
    with sqlite3.connect(path) as db:
        indexes = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
        columns = {row[1] for row in db.execute("PRAGMA table_info(audit)")}
    assert {"audit_model_target_time", "test_runs_model_commit"} <= indexes
    assert {"details", "pid_start"} <= columns
    with Journal(path) as again:  # opening an up-to-date file changes nothing
        assert again.schema_version() == SCHEMA_VERSION and len(again.entries()) == 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(JournalError, match="newer"):
        Journal(path)


def test_wal_mode_and_file_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state" / "mrc"
    monkeypatch.setenv("MRC_STATE_DIR", str(state))
    old_umask = os.umask(0o022)
    try:
        with Journal() as journal:
            assert journal.path == state / paths.JOURNAL_FILE
            journal.begin("m", "t", "pause")
            mode = journal._connection().execute("PRAGMA journal_mode").fetchone()[0]
            assert mode == "wal"
            for suffix in ("", "-wal", "-shm"):
                file = Path(str(journal.path) + suffix)
                assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
            assert stat.S_IMODE(state.stat().st_mode) == 0o700
    finally:
        os.umask(old_umask)


def test_unwritable_location_is_a_journal_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(JournalError):
        Journal(blocker / "journal.sqlite3")


# --------------------------------------------------------------------------
# Test runs and releases


def test_test_run_round_trip(journal: Journal) -> None:
    started = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    run = TestRun(None, "churn", "c0ffee", RunStatus.RUNNING, started_at=started)
    run.id = journal.record_test_run(run)
    run.status = RunStatus.FAILED
    run.finished_at = started + timedelta(seconds=42)
    run.passed, run.failed, run.errors, run.skipped = 10, 2, 1, 3
    run.metrics = {"accuracy": 0.78, "auc": 0.9}
    run.failures = [
        TestFailure("test_model.py::test_calibration", "assert 0.2 < 0.1", "failure", "tb"),
        TestFailure("test_io.py::test_load", "FileNotFoundError", "error"),
    ]
    run.output_path = "/state/runs/1.log"
    run.exit_code = 1
    journal.update_test_run(run)
    stored = journal.test_run(run.id)
    assert stored == run and stored.duration == 42.0

    newer = journal.record_test_run(TestRun(None, "churn", "c0ffee", RunStatus.QUEUED))
    journal.record_test_run(TestRun(None, "churn", "other", RunStatus.PASSED))
    journal.record_test_run(TestRun(None, "iris", "c0ffee", RunStatus.PASSED))
    assert [r.id for r in journal.test_runs(model="churn", commit="c0ffee")] == [newer, run.id]
    assert len(journal.test_runs(model="churn")) == 3 and len(journal.test_runs(limit=2)) == 2
    assert journal.test_runs("churn", "nope") == []
    with pytest.raises(NotFound):
        journal.test_run(12345)
    with pytest.raises(NotFound):
        journal.update_test_run(TestRun(12345, "x", "y", RunStatus.PASSED))


def test_release_rows(journal: Journal) -> None:
    release_id = journal.start_release("churn", "prod", "c0ffee", reason="weekly retrain")
    tests = journal.start_step(release_id, "tests")
    journal.finish_step(tests, "done")
    build = journal.start_step(release_id, "build")
    journal.finish_step(build, "failed", "no space left on device")
    journal.finish_release(release_id, "failed", "build failed")
    other = journal.start_release("iris", "edge", "beef")

    release = journal.release(release_id)
    assert (release.model, release.target, release.commit) == ("churn", "prod", "c0ffee")
    assert (release.status, release.message, release.reason) == (
        "failed",
        "build failed",
        "weekly retrain",
    )
    assert release.finished_at is not None
    assert [(s.step, s.status, s.message) for s in release.steps] == [
        ("tests", "done", ""),
        ("build", "failed", "no space left on device"),
    ]
    assert [r.id for r in journal.releases()] == [other, release_id]
    assert [r.id for r in journal.releases(model="churn")] == [release_id]
    with pytest.raises(NotFound):
        journal.start_step(999, "tests")
    with pytest.raises(NotFound):
        journal.finish_release(999, "done")


def test_existing_world_readable_journal_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    with Journal(path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --------------------------------------------------------------------------
# Locations and identity


def test_state_and_config_locations() -> None:
    home = {"HOME": "/home/ana"}
    assert paths.state_dir(home) == Path("/home/ana/.local/state/mrc")
    assert paths.config_dir(home) == Path("/home/ana/.config/mrc")
    xdg = {**home, "XDG_STATE_HOME": "/x/state", "XDG_CONFIG_HOME": "/x/config"}
    assert paths.state_dir(xdg) == Path("/x/state/mrc")
    assert paths.user_config_file(xdg) == Path("/x/config/mrc/config.toml")
    # Relative XDG values are ignored, as the specification requires.
    assert paths.state_dir({**home, "XDG_STATE_HOME": "rel"}) == Path("/home/ana/.local/state/mrc")
    assert paths.journal_path({**xdg, "MRC_STATE_DIR": "/srv/mrc"}) == Path(
        "/srv/mrc/journal.sqlite3"
    )


def test_ssh_client_address_and_process_liveness() -> None:
    assert audit.ssh_client_address({"SSH_CLIENT": "198.51.100.7 50022 22"}) == "198.51.100.7"
    assert (
        audit.ssh_client_address({"SSH_CONNECTION": "2001:db8::5 50022 2001:db8::1 22"})
        == "2001:db8::5"
    )
    assert audit.ssh_client_address({}) == ""
    me = audit.whoami({})
    assert me.pid == os.getpid() and me.ssh_client == "" and me.user
    ticks = audit.process_start_ticks(os.getpid())
    assert audit.process_alive(os.getpid(), ticks)
    assert not audit.process_alive(os.getpid(), ticks + "0")  # another start time: pid reused
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not audit.process_alive(child.pid)
