"""Journalling of mutating actions, with a small in-memory target."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.cancel import CancelToken
from core.domain import Artifact, Outcome, Phase, Progress, RolloutState
from core.errors import BackendUnavailable, Cancelled, Conflict, OperationFailed
from core.journal import Journal
from core.services import actions


class FakeTarget:
    """Revisions in a list; each call can be told to fail. Records what the journal held
    at the moment the target was touched."""

    kind = "local"

    def __init__(self, journal: Journal, *, status_error: Exception | None = None) -> None:
        self.model = "churn"
        self.name = "edge"
        self.journal = journal
        self.revisions: list[tuple[int, str]] = [(1, "img:1"), (2, "img:2")]
        self.live = 2
        self.status_error = status_error
        self.fail_with: BaseException | None = None
        self.paused = False
        self.seen_at_call: list[Outcome] = []

    def _touch(self) -> None:
        self.seen_at_call.append(self.journal.entries(limit=1)[0].outcome)

    def status(self) -> RolloutState:
        if self.status_error is not None:
            raise self.status_error
        image = dict(self.revisions)[self.live]
        return RolloutState(
            self.model, self.name, self.kind, Phase.COMPLETE, revision=self.live, image=image
        )

    def rollout(
        self,
        artifact: Artifact,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: object = None,
    ) -> Iterator[Progress]:
        self._touch()
        yield Progress("start", artifact.image)
        if cancel is not None:
            cancel.raise_if_cancelled()
        if self.fail_with is not None:
            raise self.fail_with
        number = self.revisions[-1][0] + 1
        self.revisions.append((number, artifact.image))
        self.live = number
        yield Progress("live", f"revision {number}", fraction=1.0)

    def rollback(
        self,
        to_revision: int | None = None,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: object = None,
    ) -> Iterator[Progress]:
        self._touch()
        if self.fail_with is not None:
            raise self.fail_with
        target = to_revision if to_revision is not None else self.live - 1
        self.live = target
        yield Progress("live", f"revision {target}")

    def pause(self, *, expected: object = None) -> None:
        self._touch()
        if self.fail_with is not None:
            raise self.fail_with
        self.paused = True

    def resume(self, *, expected: object = None) -> None:
        self._touch()
        self.paused = False

    def restart(self, *, expected: object = None) -> None:
        self._touch()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite3") as opened:
        yield opened


def test_rollout_writes_intent_before_and_done_after(journal: Journal) -> None:
    target = FakeTarget(journal)
    artifact = Artifact(commit="a" * 40, image="img:3")
    progress = list(actions.run_rollout(journal, target, artifact, reason="new model"))
    assert [p.step for p in progress] == ["start", "live"]
    assert target.seen_at_call == [Outcome.INTENT]
    (entry,) = journal.entries()
    assert (entry.action, entry.outcome, entry.reason) == ("rollout", Outcome.DONE, "new model")
    assert (entry.from_revision, entry.to_revision) == ("2", "3")
    assert entry.details["from_image"] == "img:2" and entry.details["image"] == "img:3"
    assert entry.details["commit"] == "a" * 40
    assert entry.finished_at is not None and entry.finished_at >= entry.time


def test_rollout_failure_is_recorded_and_reraised(journal: Journal) -> None:
    target = FakeTarget(journal)
    target.fail_with = OperationFailed("readiness probe failed: HTTP 500")
    with pytest.raises(OperationFailed, match="readiness probe"):
        list(actions.run_rollout(journal, target, Artifact(image="img:3")))
    (entry,) = journal.entries()
    assert entry.outcome is Outcome.FAILED
    assert entry.error == "readiness probe failed: HTTP 500"


def test_cancelled_rollout_is_recorded_as_failed_cancelled(journal: Journal) -> None:
    target = FakeTarget(journal)
    cancel = CancelToken()
    iterator = actions.run_rollout(journal, target, Artifact(image="img:3"), cancel=cancel)
    assert next(iterator).step == "start"
    cancel.cancel()
    with pytest.raises(Cancelled):
        next(iterator)
    (entry,) = journal.entries()
    assert (entry.outcome, entry.error) == (Outcome.FAILED, "cancelled")
    assert target.live == 2 and entry.details["live_revision"] == "2"


class SwitchFirstTarget(FakeTarget):
    """Applies the rollout, then yields and follows it (as a Kubernetes Deployment does)."""

    def rollout(
        self,
        artifact: Artifact,
        *,
        reason: str = "",
        cancel: CancelToken | None = None,
        expected: object = None,
    ) -> Iterator[Progress]:
        self._touch()
        number = self.revisions[-1][0] + 1
        self.revisions.append((number, artifact.image))
        self.live = number
        yield Progress("rollout", f"revision {number} applied")
        if cancel is not None:
            cancel.raise_if_cancelled()
        yield Progress("rollout", "available", fraction=1.0)


def test_cancelled_after_the_change_was_sent_is_unknown_with_what_is_live(
    journal: Journal,
) -> None:
    target = SwitchFirstTarget(journal)
    cancel = CancelToken()
    iterator = actions.run_rollout(journal, target, Artifact(image="img:3"), cancel=cancel)
    next(iterator)
    cancel.cancel()
    with pytest.raises(Cancelled):
        next(iterator)
    (entry,) = journal.entries()
    assert entry.outcome is Outcome.UNKNOWN and entry.outcome_unknown
    assert entry.error == actions.CANCELLED_AFTER_SEND
    assert entry.details["live_revision"] == "3" and entry.details["live_image"] == "img:3"
    assert entry.details["from_image"] == "img:2"


def test_cancelled_after_sending_with_an_unreadable_target_is_unknown(journal: Journal) -> None:
    target = FakeTarget(journal)
    cancel = CancelToken()
    iterator = actions.run_rollout(journal, target, Artifact(image="img:3"), cancel=cancel)
    next(iterator)
    target.status_error = BackendUnavailable("API server timed out")
    cancel.cancel()
    with pytest.raises(Cancelled):
        next(iterator)
    (entry,) = journal.entries()
    assert entry.outcome is Outcome.UNKNOWN
    assert entry.details["live_status_error"] == "API server timed out"


def test_cancelled_before_the_target_yielded_is_failed_cancelled(journal: Journal) -> None:
    target = FakeTarget(journal)
    target.fail_with = Cancelled("cancelled while preparing")
    with pytest.raises(Cancelled):
        list(actions.run_rollback(journal, target, 1))
    (entry,) = journal.entries()
    assert (entry.outcome, entry.error) == (Outcome.FAILED, "cancelled")


def test_simple_action_cancelled_before_the_call_sends_nothing(journal: Journal) -> None:
    target = FakeTarget(journal)
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        actions.run_simple(journal, target, "restart", cancel=cancel)
    assert journal.entries() == [] and target.seen_at_call == []


def test_cancelled_before_start_touches_nothing(journal: Journal) -> None:
    target = FakeTarget(journal)
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        list(actions.run_rollout(journal, target, Artifact(image="x"), cancel=cancel))
    assert journal.entries() == [] and target.seen_at_call == []


def test_abandoned_iteration_leaves_outcome_unknown(journal: Journal) -> None:
    target = FakeTarget(journal)
    iterator = actions.run_rollout(journal, target, Artifact(image="img:3"))
    next(iterator)
    iterator.close()
    (entry,) = journal.entries()
    assert entry.outcome is Outcome.UNKNOWN and entry.outcome_unknown
    assert entry.error == actions.ABANDONED
    assert entry.details["live_revision"] == "2"  # what was live when it was dropped


def test_rollback_records_requested_and_reached_revision(journal: Journal) -> None:
    target = FakeTarget(journal)
    list(actions.run_rollback(journal, target, None, reason="latency spike"))
    list(actions.run_rollback(journal, target, 2))
    newest, first = journal.entries()
    assert (first.from_revision, first.to_revision, first.outcome) == ("2", "1", Outcome.DONE)
    assert first.details["requested"] == "previous" and first.details["image"] == "img:1"
    assert (newest.from_revision, newest.to_revision) == ("1", "2")
    assert target.seen_at_call == [Outcome.INTENT, Outcome.INTENT]


def test_rollback_conflict_is_recorded(journal: Journal) -> None:
    target = FakeTarget(journal)
    target.fail_with = Conflict("deployment changed by somebody else")
    with pytest.raises(Conflict):
        list(actions.run_rollback(journal, target, 1))
    (entry,) = journal.entries()
    assert entry.outcome is Outcome.FAILED and "somebody else" in entry.error
    assert entry.to_revision == "1"


def test_status_failure_does_not_stop_the_action(journal: Journal) -> None:
    target = FakeTarget(journal, status_error=BackendUnavailable("engine timed out"))
    list(actions.run_rollout(journal, target, Artifact(image="img:3")))
    (entry,) = journal.entries()
    assert entry.outcome is Outcome.DONE and entry.from_revision == ""
    assert entry.details["from_status_error"] == "engine timed out"
    assert target.live == 3


@pytest.mark.parametrize("action", ["pause", "resume", "restart"])
def test_simple_actions(journal: Journal, action: str) -> None:
    target = FakeTarget(journal)
    actions.run_simple(journal, target, action, reason="incident 42")
    (entry,) = journal.entries()
    assert (entry.action, entry.outcome, entry.reason) == (action, Outcome.DONE, "incident 42")
    assert target.seen_at_call == [Outcome.INTENT]
    assert target.paused is (action == "pause")


def test_simple_action_failure(journal: Journal) -> None:
    target = FakeTarget(journal)
    target.fail_with = OperationFailed("pause is not supported by docker targets")
    with pytest.raises(OperationFailed):
        actions.run_simple(journal, target, "pause")
    (entry,) = journal.entries()
    assert entry.outcome is Outcome.FAILED and "not supported" in entry.error


def test_unknown_simple_action(journal: Journal) -> None:
    with pytest.raises(ValueError):
        actions.run_simple(journal, FakeTarget(journal), "delete")
    assert journal.entries() == []


def test_keyboard_interrupt_leaves_outcome_unknown(journal: Journal) -> None:
    target = FakeTarget(journal)
    target.fail_with = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        list(actions.run_rollback(journal, target))
    (entry,) = journal.entries()
    assert entry.outcome is Outcome.UNKNOWN and "KeyboardInterrupt" in entry.error


def test_markers_and_last_entry_follow_the_actions(journal: Journal) -> None:
    target = FakeTarget(journal)
    list(actions.run_rollout(journal, target, Artifact(image="img:3")))
    list(actions.run_rollback(journal, target))
    markers = journal.markers("churn")
    assert [(m.kind, m.label) for m in markers] == [
        ("rollout", "rollout → 3"),
        ("rollback", "rollback → 2"),
    ]
    newest = journal.entries()[0]
    assert (newest.action, newest.outcome, newest.to_revision) == ("rollback", Outcome.DONE, "2")
