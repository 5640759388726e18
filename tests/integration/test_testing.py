"""TestRunner against a real sample model repository, real pytest and the real journal."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from core.domain import OutputLine, RunStatus, TestRun
from core.journal import Journal
from core.sanitize import clean_line
from core.testing import (
    RunFinished,
    RunQueued,
    RunStarted,
    TestEvent,
    TestRunner,
    read_metrics,
    with_junit_report,
)
from tests.support.repos import ModelRepo, git, make_model_repo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> ModelRepo:
    return make_model_repo(tmp_path_factory.mktemp("model") / "repo")


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    with Journal(tmp_path / "journal.sqlite3") as journal:
        yield journal


@pytest.fixture
def runner(journal: Journal, tmp_path: Path) -> TestRunner:
    return TestRunner(journal, tmp_path / "runs", kill_grace=1.0)


def collect(events: Iterable[TestEvent]) -> tuple[list[TestEvent], TestRun]:
    items = list(events)
    assert isinstance(items[-1], RunFinished)
    assert sum(isinstance(e, RunFinished) for e in items) == 1
    return items, items[-1].run


def lines(events: list[TestEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, OutputLine)]


def surviving(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2 :].split()[0]
        if marker.encode() in cmdline and state != b"Z":
            found.append(int(entry))
    return found


# ------------------------------------------------------------------ results


def test_passing_commit(runner: TestRunner, journal: Journal, model_repo: ModelRepo) -> None:
    events, run = collect(
        runner.run("iris", model_repo.path, "v1", model_repo.command, timeout=120)
    )
    assert isinstance(events[0], RunStarted)
    assert events[0].run.status == RunStatus.RUNNING
    assert run.status == RunStatus.PASSED, run.message
    assert run.commit == model_repo.good  # the tag was resolved to the full sha
    assert (run.passed, run.failed, run.errors, run.skipped) == (4, 0, 0, 0)
    assert run.exit_code == 0
    assert run.metrics == {"accuracy": ModelRepo.GOOD_ACCURACY, "samples": 20.0}
    assert "mrc: warning: metric 'note' ignored: \"text\" is not a number" in lines(events)
    assert any("4 passed" in text for text in lines(events))
    assert run.duration is not None and run.duration > 0
    (stored,) = journal.test_runs("iris", model_repo.good)
    assert stored.id == run.id
    assert (stored.status, stored.passed, stored.metrics) == (run.status, 4, run.metrics)
    log = Path(stored.output_path or "").read_text()
    assert "4 passed" in log
    assert Path(runner.output_dir / f"{run.id}.junit.xml").exists()
    # the temporary worktree is gone and the user's checkout untouched
    assert len(git(model_repo.path, "worktree", "list").splitlines()) == 1
    assert git(model_repo.path, "rev-parse", "HEAD") == model_repo.bad
    assert git(model_repo.path, "status", "--porcelain") == ""


def test_failing_commit(runner: TestRunner, journal: Journal, model_repo: ModelRepo) -> None:
    _events, run = collect(
        runner.run("iris", model_repo.path, model_repo.bad[:9], model_repo.command)
    )
    assert run.status == RunStatus.FAILED
    assert run.commit == model_repo.bad
    assert (run.passed, run.failed, run.errors, run.skipped) == (2, 2, 0, 0)
    assert run.exit_code == 1
    assert run.message == "2 failed, 2 passed"
    assert run.metrics["accuracy"] == pytest.approx(ModelRepo.BAD_ACCURACY)
    by_name = {f.name: f for f in run.failures}
    assert set(by_name) == {
        "tests.test_model.test_accuracy_and_metrics",
        "tests.test_model.test_predict_middle",
    }
    assert (
        "accuracy 0.60 below 0.9" in by_name["tests.test_model.test_accuracy_and_metrics"].message
    )
    assert "0.7 must be classified as 1" in by_name["tests.test_model.test_predict_middle"].message
    assert all(f.kind == "failure" for f in run.failures)
    stored = journal.test_run(run.id or 0)
    assert stored.status == RunStatus.FAILED
    assert [f.message for f in stored.failures] == [f.message for f in run.failures]
    assert journal.test_runs("iris", model_repo.bad, limit=1) == [stored]


def test_nonexistent_commit_fails_fast(
    runner: TestRunner, journal: Journal, model_repo: ModelRepo
) -> None:
    started = time.monotonic()
    events, run = collect(runner.run("iris", model_repo.path, "abc123", "true"))
    assert time.monotonic() - started < 2
    assert len(events) == 1
    assert run.status == RunStatus.ERROR
    assert run.message == f"commit 'abc123' not found in {model_repo.path}"
    assert journal.test_runs(model="iris")[0].message == run.message


def test_missing_repository_is_an_error(runner: TestRunner, tmp_path: Path) -> None:
    _, run = collect(runner.run("iris", tmp_path / "nowhere", "HEAD", "true"))
    assert run.status == RunStatus.ERROR
    assert "does not exist" in run.message


def test_command_that_cannot_run(runner: TestRunner, model_repo: ModelRepo) -> None:
    _events, run = collect(runner.run("iris", model_repo.path, "HEAD", "no-such-program-xyz"))
    assert run.status == RunStatus.ERROR
    assert run.exit_code == 127
    assert run.message.startswith("command could not run (exit 127)")
    assert "not found" in run.message


def test_nonzero_exit_without_report_is_error(runner: TestRunner, model_repo: ModelRepo) -> None:
    events, run = collect(
        runner.run("iris", model_repo.path, "HEAD", "echo out; echo err >&2; exit 3")
    )
    assert run.status == RunStatus.ERROR
    assert run.message == "command exited with 3 without a JUnit report: err"
    # the two pipes are read concurrently: order is kept within each stream only
    assert sorted((e.text, e.stream) for e in events if isinstance(e, OutputLine)) == [
        ("err", "stderr"),
        ("out", "stdout"),
    ]


def test_command_sees_commit_and_worktree(runner: TestRunner, model_repo: ModelRepo) -> None:
    events, run = collect(
        runner.run(
            "iris",
            model_repo.path,
            "v1",
            'echo "$MRC_COMMIT $MRC_MODEL"; git log -1 --format=%H; cat README.md',
        )
    )
    assert run.status == RunStatus.PASSED
    out = lines(events)
    assert out[0] == f"{model_repo.good} iris"
    assert out[1] == model_repo.good
    assert "A threshold classifier." in out


def test_invalid_utf8_and_long_output_lines(runner: TestRunner, model_repo: ModelRepo) -> None:
    command = "printf 'bad \\377\\376 bytes\\n'; head -c 200000 /dev/zero | tr '\\0' x; echo"
    events, run = collect(runner.run("iris", model_repo.path, "HEAD", command))
    assert run.status == RunStatus.PASSED
    out = lines(events)
    assert out[0] == "bad \ufffd\ufffd bytes"
    assert "".join(out[1:]) == "x" * 200_000
    assert max(len(t) for t in out) <= 65536


def test_hostile_output_is_passed_on_as_data(runner: TestRunner, model_repo: ModelRepo) -> None:
    command = (
        "printf '[bold]x[/bold] [@click=app.quit]q[/]\\n'; "
        "printf 'a\\033[31mred\\033[0m \\033]0;title\\007b\\n'; "
        "printf '\\327\\251\\327\\234\\327\\225\\327\\235\\n'"
    )
    events, run = collect(runner.run("iris", model_repo.path, "HEAD", command))
    assert run.status == RunStatus.PASSED
    out = lines(events)
    assert out == [
        "[bold]x[/bold] [@click=app.quit]q[/]",
        "a\x1b[31mred\x1b[0m \x1b]0;title\x07b",
        "שלום",
    ]
    assert [clean_line(t) for t in out] == [out[0], "a␛red␛ ␛b", out[2]]
    log = Path(run.output_path or "").read_text()
    assert "[@click=app.quit]" in log


def test_output_log_is_bounded(journal: Journal, tmp_path: Path, model_repo: ModelRepo) -> None:
    runner = TestRunner(journal, tmp_path / "runs", max_output_bytes=50_000)
    command = "seq 1 30000"
    events, run = collect(runner.run("iris", model_repo.path, "HEAD", command))
    assert len(lines(events)) == 30000  # every line is streamed
    log = Path(run.output_path or "").read_text()
    assert len(log.encode()) < 52_000
    assert log.startswith("1\n2\n")
    assert "[... output truncated:" in log
    assert log.endswith("29999\n30000\n")


# ------------------------------------------------------------------ stopping


def test_timeout_kills_the_process_group(runner: TestRunner, model_repo: ModelRepo) -> None:
    marker = "986.4321"
    started = time.monotonic()
    _, run = collect(
        runner.run("iris", model_repo.path, "HEAD", f"sleep {marker} & sleep {marker}", timeout=1)
    )
    assert run.status == RunStatus.TIMEOUT
    assert run.message == "timed out after 1 s"
    assert time.monotonic() - started < 10
    assert surviving(marker) == []


def test_cancel_kills_children_and_grandchildren(
    runner: TestRunner, journal: Journal, model_repo: ModelRepo
) -> None:
    marker = "987.6543"
    # a child shell that ignores SIGTERM (needs SIGKILL) and a grandchild sleep
    command = (
        f"sh -c 'trap \"\" TERM; sleep {marker} & sleep {marker}; wait' & "
        f"sleep {marker} & echo ready; wait"
    )
    handle = runner.submit("iris", model_repo.path, "HEAD", command)
    events: list[TestEvent] = []
    for event in handle.events():
        events.append(event)
        if isinstance(event, OutputLine) and event.text == "ready":
            deadline = time.monotonic() + 5
            while len(surviving(marker)) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(surviving(marker)) >= 3
            handle.cancel()
    run = events[-1].run
    assert isinstance(events[-1], RunFinished)
    assert run.status == RunStatus.CANCELLED
    assert surviving(marker) == []
    assert journal.test_run(run.id or 0).status == RunStatus.CANCELLED
    assert runner.queue("iris") == []


def test_closing_events_early_kills_the_run(runner: TestRunner, model_repo: ModelRepo) -> None:
    marker = "988.1234"
    events = runner.run("iris", model_repo.path, "HEAD", f"echo go; sleep {marker}")
    for event in events:
        if isinstance(event, OutputLine):
            break
    events.close()  # type: ignore[attr-defined]
    assert surviving(marker) == []
    assert runner.queue("iris") == []


# ------------------------------------------------------------------ queue


def test_one_run_per_model_in_fifo_order(
    runner: TestRunner, journal: Journal, model_repo: ModelRepo
) -> None:
    first = runner.submit("iris", model_repo.path, "HEAD", "sleep 0.5; echo first")
    second = runner.submit("iris", model_repo.path, "HEAD", "echo second")
    third = runner.submit("iris", model_repo.path, "HEAD", "echo third")
    other = runner.submit("wine", model_repo.path, "HEAD", "echo other")
    assert (first.position, second.position, third.position, other.position) == (0, 1, 2, 0)
    assert [r.id for r in runner.queue("iris")] == [first.run.id, second.run.id, third.run.id]
    assert journal.test_run(second.run.id or 0).status == RunStatus.QUEUED

    second_events: list[TestEvent] = []
    waiter = threading.Thread(target=lambda: second_events.extend(second.events()))
    waiter.start()
    time.sleep(0.3)
    assert second_events and isinstance(second_events[0], RunQueued)
    assert second_events[0].position == 1
    assert not any(isinstance(e, RunStarted) for e in second_events)

    # another model is not held up by the queue of the first
    _, other_run = collect(other.events())
    assert other_run.status == RunStatus.PASSED

    assert runner.cancel(third.run.id or 0)  # cancelled while waiting: ends without running
    assert not runner.cancel(987654)
    assert third.position is None
    assert third.run.status == RunStatus.CANCELLED
    assert journal.test_run(third.run.id or 0).status == RunStatus.CANCELLED
    assert [r.id for r in runner.queue("iris")] == [first.run.id, second.run.id]

    _, first_run = collect(first.events())
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    second_run = second_events[-1].run
    assert isinstance(second_events[-1], RunFinished)
    assert lines(second_events) == ["second"]
    assert first_run.finished_at is not None and second_run.started_at is not None
    assert second_run.started_at >= first_run.finished_at
    assert runner.queue() == []
    assert collect(third.events())[1].status == RunStatus.CANCELLED
    with pytest.raises(RuntimeError):
        next(iter(third.events()))


# ------------------------------------------------------------------ helpers


@pytest.mark.parametrize(
    ("command", "appended"),
    [
        ("pytest", True),
        ("pytest -q tests", True),
        ("python -m pytest -x", True),
        ("/opt/venv/bin/python3.11 -X dev -m pytest", True),
        ("PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 .venv/bin/pytest -q", True),
        ("py.test", True),
        ("pytest --junitxml=out.xml", False),
        ("pytest --junit-xml out.xml", False),
        ("pytest -q && echo done", False),
        ("pytest | tee log", False),
        ("make test", False),
        ("tox -e py311", False),
        ("pytest-benchmark", False),
        ("echo pytest", False),
    ],
)
def test_junit_option_rule(command: str, appended: bool) -> None:
    result = with_junit_report(command)
    if appended:
        assert result == command + ' --junitxml="$MRC_JUNIT_XML"'
    else:
        assert result == command


def test_read_metrics(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    assert read_metrics(path) == ({}, [])
    path.write_text('{"accuracy": 0.9, "n": 3, "flag": true, "name": "x", "bad": NaN}')
    metrics, warnings = read_metrics(path)
    assert metrics == {"accuracy": 0.9, "n": 3.0}
    assert len(warnings) == 3 and all("is not a number" in w for w in warnings)
    path.write_text("[1, 2]")
    assert read_metrics(path)[0] == {} and "JSON object" in read_metrics(path)[1][0]
    path.write_text("{broken")
    assert "not valid JSON" in read_metrics(path)[1][0]
