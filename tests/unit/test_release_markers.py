"""Release markers follow the journal: a rollout or rollback shows (and its outcome
changes its label) at the next read, whoever wrote it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core.domain import Outcome
from core.journal import Journal
from core.services.references import ReleaseMarkers


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite3") as opened:
        yield opened


def markers_of(journal: Journal) -> ReleaseMarkers:
    """The markers of model ``churn``, whose targets have no revision history."""
    workspace: Any = SimpleNamespace(journal=journal, targets=lambda model: [])
    return ReleaseMarkers(workspace, "churn")


def test_a_release_shows_at_once_and_its_outcome_changes_its_label(journal: Journal) -> None:
    markers = markers_of(journal)
    assert markers() == []
    entry = journal.begin("churn", "local", "rollout", "2", "3")
    assert [m.label for m in markers()] == ["rollout → 3 (outcome unknown)"]
    journal.finish(entry, Outcome.FAILED, "health check failed")
    assert [m.label for m in markers()] == ["rollout → 3 (failed)"]
    journal.begin("other", "local", "rollback", "3", "2")  # another model's
    assert [m.label for m in markers()] == ["rollout → 3 (failed)"]


def test_a_release_journalled_by_another_process_shows(journal: Journal, tmp_path: Path) -> None:
    markers = markers_of(journal)
    assert markers() == []
    with Journal(tmp_path / "journal.sqlite3", close_orphans=False) as elsewhere:
        entry = elsewhere.begin("churn", "local", "rollback", "3", "2")
        elsewhere.finish(entry, Outcome.DONE, to_revision="2")
    assert [(m.kind, m.label) for m in markers()] == [("rollback", "rollback → 2")]
