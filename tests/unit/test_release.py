"""The release pipeline's step logic, with fake backends and the real SQLite journal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core.cancel import CancelToken
from core.config import GuardConfig, LocalTargetConfig, ModelConfig
from core.domain import (
    Artifact,
    OutputLine,
    Phase,
    Progress,
    RolloutState,
    RunStatus,
    Series,
    TestRun,
)
from core.errors import Conflict, ReadOnly
from core.journal import Journal
from core.metrics.base import SourceHealth
from core.services import guard as g
from core.services import release as r
from core.targets.kinds import KINDS

SHA = "a" * 40


@dataclass
class Finished:
    run: TestRun


class FakeRunner:
    def __init__(self, run: TestRun, lines: list[str]) -> None:
        self._run = run
        self.lines = lines

    def run(self, sha: str, cancel: CancelToken | None = None) -> Iterator[Any]:
        for line in self.lines:
            yield OutputLine(line)
        yield Finished(self._run)


class FakeBuilder:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def build(self, repo: Any, sha: str, name: str, model: str, **kw: Any) -> Iterator[Progress]:
        self.log.append(f"build {name}:{sha[:8]}")
        yield Progress("build", "Step 1/1")

    def push(self, ref: str, cancel: CancelToken | None = None) -> Iterator[Progress]:
        self.log.append(f"push {ref}")
        yield Progress("push", "pushed")


@dataclass
class FakeTarget:
    model: str = "churn"
    name: str = "edge"
    kind: str = "docker"
    phase: Phase = Phase.COMPLETE

    def status(self) -> RolloutState:
        return RolloutState(self.model, self.name, self.kind, self.phase, revision=2, ready=1,
                            desired=1)  # fmt: skip


class Source:
    def __init__(self, value: float | None) -> None:
        self.value = value

    def instant_query(self, query: str, at: Any = None) -> list[Series]:
        return [] if self.value is None else [Series(query, ((0.0, self.value),))]

    def health(self) -> SourceHealth:
        return SourceHealth()


@dataclass
class FakeWorkspace:
    journal: Journal
    run: TestRun
    target_obj: FakeTarget = field(default_factory=FakeTarget)
    quality: dict[str, float] = field(default_factory=dict)
    image: str = "reg:5000/churn"
    read_only: bool = False
    rollout_error: Exception | None = None
    guard_value: float | None = None
    guard_no_data: bool = False  # a guard is configured but its query answers nothing
    on_inconclusive: str = ""
    production: bool = False
    auto_rollback: bool = True
    log: list[str] = field(default_factory=list)
    on_rollout: Any = None
    guard_events: list[g.GuardEvent] = field(default_factory=list)

    def model(self, name: str) -> ModelConfig:
        return ModelConfig(name=name, repo=Path("/nowhere"), image=self.image,
                           quality=self.quality)  # fmt: skip

    def target(self, model: str, name: str | None = None) -> FakeTarget:
        return self.target_obj

    def target_config(self, model: str, name: str | None = None) -> LocalTargetConfig:
        t = self.target_obj
        return LocalTargetConfig(name=t.name, kind=t.kind, production=self.production)

    def is_read_only(self, model: str, target: str) -> bool:
        return self.read_only

    @property
    def config(self) -> Any:
        """What core.services.action_table reads: the console-wide read-only mode."""
        return SimpleNamespace(read_only=self.read_only)

    def resolve_commit(self, model: str, rev: str) -> str:
        return SHA

    def run_tests(self, model: str, sha: str, cancel: CancelToken | None = None) -> Iterator[Any]:
        self.log.append("tests")
        return FakeRunner(self.run, ["collected 4 items", "4 passed"]).run(sha, cancel)

    def image_builder(self, model: str) -> FakeBuilder:
        return FakeBuilder(self.log)

    def repository(self, model: str) -> object:
        return object()

    def run_rollout(
        self,
        target: Any,
        artifact: Artifact,
        *,
        reason: str,
        cancel: CancelToken,
        expected: Any = None,
    ) -> Iterator[Progress]:
        entry = self.journal.begin("churn", target.name, "rollout", "1", artifact.describe(),
                                   reason)  # fmt: skip
        self.log.append(f"rollout {artifact.describe()}")
        try:
            yield Progress("rollout", "starting")
            if self.on_rollout:
                self.on_rollout(cancel)
            cancel.raise_if_cancelled()
            if self.rollout_error:
                raise self.rollout_error
            yield Progress("rollout", "live")
        except BaseException as exc:
            self.journal.finish(entry, "failed", str(exc))
            raise
        self.journal.finish(entry, "done")

    def note_guard(self, event: g.GuardEvent) -> None:
        self.guard_events.append(event)

    def guard(self, model: str) -> g.Guard | None:
        if self.guard_value is None and not self.guard_no_data:
            return None

        def rollback(journal: Any, target: Any, to: Any, *, reason: str, cancel: Any):
            self.log.append(f"rollback: {reason}")
            yield Progress("rollback", "done")

        return g.Guard(
            Source(self.guard_value),  # type: ignore[arg-type]
            g.GuardSettings(
                duration=0.0,
                auto_rollback=self.auto_rollback,
                max_error_rate=0.05,
                interval=0.01,
                on_inconclusive=self.on_inconclusive,
            ),
            queries={"error_rate": "err"},
            rollback=rollback,
        )


def passed_run(metrics: dict[str, float] | None = None) -> TestRun:
    now = datetime.now(UTC)
    return TestRun(None, "churn", SHA, RunStatus.PASSED, now, now, passed=4,
                   metrics=metrics or {})  # fmt: skip


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite3")
    yield j
    j.close()


def release_all(ws: FakeWorkspace, **kw: Any) -> list[r.ReleaseEvent]:
    return list(r.ReleasePipeline(ws, poll=0.01, wait_timeout=1).run("churn", "HEAD", **kw))


def steps_of(journal: Journal) -> list[tuple[str, str]]:
    rel = journal.releases("churn")[0]
    return [(s.step, s.status) for s in rel.steps]


def test_failing_tests_stop_before_the_build(journal: Journal) -> None:
    run = passed_run()
    run.status, run.passed, run.failed, run.message = RunStatus.FAILED, 2, 2, "2 failed"
    ws = FakeWorkspace(journal, run)
    events = release_all(ws)
    assert events[-1].kind == r.RELEASE_FINISHED
    assert events[-1].outcome == r.FAILED
    assert "tests failed (2 passed, 2 failed" in events[-1].message
    assert ws.log == ["tests"]  # no build, push or rollout
    assert steps_of(journal) == [("tests", "failed")]
    rel = journal.releases("churn")[0]
    assert rel.status == "failed" and rel.commit == SHA
    assert [e.line for e in events if e.line] == ["collected 4 items", "4 passed"]


def test_quality_minimum_not_met_stops_with_a_clear_message(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run({"accuracy": 0.7}), quality={"accuracy": 0.8})
    events = release_all(ws)
    assert events[-1].outcome == r.FAILED
    assert events[-1].message == "quality gate failed: accuracy = 0.7 is below the minimum 0.8"
    assert ws.log == ["tests"]


def test_quality_metric_missing_is_not_met() -> None:
    assert r.quality_problems({"auc": 0.9}, {}) == [
        "auc was not reported by the tests (minimum 0.9)"
    ]
    assert r.quality_problems({"auc": 0.9}, {"auc": 0.95}) == []


def test_passing_release_runs_every_step_in_order(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run({"accuracy": 0.9}), quality={"accuracy": 0.8})
    events = release_all(ws, reason="weekly retrain")
    assert events[-1].outcome == r.DONE, events[-1].message
    assert ws.log == [
        "tests",
        f"build reg:5000/churn:{SHA[:8]}",
        f"push reg:5000/churn:{SHA[:8]}",
        f"rollout reg:5000/churn:{SHA[:8]}",
    ]
    assert steps_of(journal) == [
        ("tests", "done"), ("build", "done"), ("push", "done"), ("rollout", "done"),
        ("wait", "done"), ("verify", "done"),
    ]  # fmt: skip
    started = [e.step for e in events if e.kind == r.STEP_STARTED]
    assert started == list(r.STEPS)
    rel = journal.releases("churn")[0]
    assert (rel.status, rel.reason) == ("done", "weekly retrain")
    audit = journal.entries("churn")
    assert [(e.action, e.outcome.value) for e in audit] == [("rollout", "done")]


def test_local_target_skips_build_and_push(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run(), target_obj=FakeTarget(name="local", kind="local"))
    events = release_all(ws)
    assert events[-1].outcome == r.DONE
    assert ws.log == ["tests", f"rollout commit {SHA[:8]}"]
    assert steps_of(journal)[1:3] == [("build", "skipped"), ("push", "skipped")]


def test_guard_breach_rolls_back_and_the_release_says_so(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run(), guard_value=0.5)
    events = release_all(ws)
    assert events[-1].outcome == r.ROLLED_BACK
    assert ws.log[-1] == "rollback: guard: error_rate breached: 0.5 > 0.05"
    assert steps_of(journal)[-1] == ("verify", "failed")
    assert journal.releases("churn")[0].status == r.ROLLED_BACK
    guard_kinds = [e.guard.kind for e in events if e.guard is not None]
    assert g.BREACH in guard_kinds and guard_kinds[-1] == g.ROLLED_BACK


def test_guard_breach_without_auto_rollback_alerts(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run(), guard_value=0.5, auto_rollback=False)
    events = release_all(ws)
    assert events[-1].outcome == r.ALERTED
    assert not any(line.startswith("rollback") for line in ws.log)


def test_rollout_conflict_fails_the_release_and_keeps_the_error(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run(), rollout_error=Conflict("changed meanwhile"))
    events = release_all(ws)
    assert events[-1].outcome == r.FAILED
    assert isinstance(events[-1].error, Conflict)
    assert steps_of(journal)[-1] == ("rollout", "failed")
    assert [e.kind for e in events][-2:] == [r.STEP_FAILED, r.RELEASE_FINISHED]


def test_wait_step_fails_when_the_rollout_does_not_complete(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run(), target_obj=FakeTarget(phase=Phase.PROGRESSING))
    events = release_all(ws)
    assert events[-1].outcome == r.FAILED
    assert "not complete after 1s" in events[-1].message
    assert steps_of(journal)[-1] == ("wait", "failed")


def test_cancel_during_the_rollout_leaves_a_record(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run(), on_rollout=lambda cancel: cancel.cancel())
    token = CancelToken()
    events = list(r.ReleasePipeline(ws).run("churn", "HEAD", cancel=token))
    assert events[-1].outcome == r.CANCELLED
    assert steps_of(journal)[-1] == ("rollout", "cancelled")
    assert journal.releases("churn")[0].status == "cancelled"
    assert [(e.action, e.outcome.value) for e in journal.entries("churn")] == [
        ("rollout", "failed")
    ]


def test_closing_the_generator_mid_release_records_cancelled(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run())
    gen = r.ReleasePipeline(ws).run("churn", "HEAD")
    for event in gen:
        if event.kind == r.STEP_STARTED and event.step == "push":
            break
    gen.close()
    assert journal.releases("churn")[0].status == "cancelled"
    assert steps_of(journal)[-1] == ("push", "cancelled")


def test_read_only_refuses_before_anything_is_journalled(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run(), read_only=True)
    with pytest.raises(ReadOnly):
        release_all(ws)
    assert journal.releases("churn") == []


def test_guard_settings_from_model_config() -> None:
    model = ModelConfig(
        name="m", repo=Path("."), guard=GuardConfig(duration=60, auto_rollback=True),
        targets=(LocalTargetConfig(name="local", kind="local", command="x"),),
    )  # fmt: skip
    s = g.GuardSettings.from_config(model.guard)
    assert s.auto_rollback and s.duration == 60 and s.limits() == {}


def test_cancel_between_steps_keeps_finished_steps_done(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run())
    token = CancelToken()
    gen = r.ReleasePipeline(ws).run("churn", "HEAD", cancel=token)
    events = []
    for event in gen:
        events.append(event)
        if event.kind == r.STEP_FINISHED and event.step == "build":
            token.cancel()
    assert events[-1].outcome == r.CANCELLED
    assert steps_of(journal) == [("tests", "done"), ("build", "done")]
    assert journal.releases("churn")[0].status == "cancelled"
    assert not any(line.startswith("push") for line in ws.log)


def test_the_target_kinds_artifact_rule_decides_what_is_built_and_installed(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.test_kinds import BUNDLE

    monkeypatch.setitem(KINDS, "bundle", BUNDLE)  # type: ignore[arg-type]
    ws = FakeWorkspace(journal, passed_run(), target_obj=FakeTarget(name="shelf", kind="bundle"))
    events = release_all(ws)
    assert events[-1].outcome == r.DONE, events[-1].message
    assert ws.log == ["tests", f"rollout bundle/{SHA[:4]}"]
    skipped = [(e.step, e.message) for e in events if e.kind == r.STEP_SKIPPED]
    assert skipped == [
        ("build", "build skipped: bundles are uploaded, not built"),
        ("push", "push skipped: bundles are uploaded, not built"),
    ]


def test_an_image_target_without_an_image_skips_build_and_push_with_the_reason(
    journal: Journal,
) -> None:
    ws = FakeWorkspace(journal, passed_run(), image="")
    events = release_all(ws)
    skipped = [e.message for e in events if e.kind == r.STEP_SKIPPED]
    assert skipped == [
        "build skipped: the model has no image configured",
        "push skipped: the model has no image configured",
    ]
    assert ws.log == ["tests", f"rollout commit {SHA[:8]}"]


def test_verify_reports_each_guard_event_to_the_workspace(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run(), guard_value=0.5)
    events = release_all(ws)
    progress = [e for e in events if e.kind == r.STEP_PROGRESS]
    assert [e.guard for e in progress if e.guard is not None] == ws.guard_events
    assert events[-1].guard == ws.guard_events[-1]  # the verdict that ended the release
    assert ws.guard_events[-1].kind == g.ROLLED_BACK


def test_a_guard_without_data_does_not_report_the_release_verified(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run(), guard_no_data=True, auto_rollback=False)
    events = release_all(ws)
    final = events[-1]
    assert final.outcome == r.INCONCLUSIVE
    assert final.message.startswith("guard: inconclusive (no data for error_rate")
    assert "not verified" in final.message
    assert final.guard is not None and final.guard.action == g.ALERT_OPERATOR
    assert steps_of(journal)[-1] == ("verify", "inconclusive")
    assert journal.releases("churn")[0].status == "inconclusive"
    assert not any(line.startswith("rollback") for line in ws.log)


def test_inconclusive_on_production_with_auto_rollback_rolls_back(journal: Journal) -> None:
    ws = FakeWorkspace(journal, passed_run(), guard_no_data=True, production=True)
    events = release_all(ws)
    assert events[-1].outcome == r.ROLLED_BACK
    assert "inconclusive" in events[-1].message
    assert ws.log[-1].startswith("rollback: guard: inconclusive (no data for error_rate")
    assert journal.releases("churn")[0].status == r.ROLLED_BACK


def test_inconclusive_accepted_is_recorded_and_still_not_verified(journal: Journal) -> None:
    ws = FakeWorkspace(
        journal, passed_run(), guard_no_data=True, production=True, on_inconclusive="accept"
    )
    events = release_all(ws)
    assert events[-1].outcome == r.INCONCLUSIVE
    assert "accepted" in events[-1].message
    assert events[-1].guard is not None and events[-1].guard.action == g.ACCEPT
    assert not any(line.startswith("rollback") for line in ws.log)
