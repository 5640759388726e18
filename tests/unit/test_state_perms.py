"""The state directory is private to the user, and the journal never follows a symbolic link."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from core import paths
from core.journal import Journal, JournalError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_state_dir_is_created_0700(tmp_path: Path) -> None:
    state = paths.ensure_dir(tmp_path / "a" / "state")
    assert mode(state) == 0o700


@pytest.mark.parametrize("loose", [0o755, 0o750, 0o701, 0o777])
def test_an_existing_loose_state_dir_is_tightened(tmp_path: Path, loose: int) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(loose)
    paths.ensure_dir(state)
    assert mode(state) == 0o700


def test_opening_the_journal_tightens_its_dir_and_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)
    (state / paths.JOURNAL_FILE).touch()
    (state / paths.JOURNAL_FILE).chmod(0o644)
    Journal(state / paths.JOURNAL_FILE).close()
    assert mode(state) == 0o700
    assert mode(state / paths.JOURNAL_FILE) == 0o600


@pytest.mark.parametrize("name", ["journal.sqlite3", "journal.sqlite3-wal", "journal.sqlite3-shm"])
def test_a_symlinked_journal_file_is_refused(tmp_path: Path, name: str) -> None:
    state = paths.ensure_dir(tmp_path / "state")
    elsewhere = tmp_path / "elsewhere"
    (state / name).symlink_to(elsewhere)
    with pytest.raises(JournalError, match="symbolic link") as caught:
        Journal(state / "journal.sqlite3")
    assert name in str(caught.value)
    assert not elsewhere.exists()
