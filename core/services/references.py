"""What drift is judged against, gathered from the workspace (no screen needed).

:class:`TrainingReferences` reads a model's training histograms from its
repository at the commit its first reachable target runs; :class:`ReleaseMarkers`
lists its rollouts and rollbacks from the journal and the targets' revision
histories. Both are the loaders a :class:`~core.metrics.scoring.DriftScorer`
is built with, and both cache the slow part (target calls) for
:data:`SLOW_SECONDS`, so the guard, the Drift screen and the CLI share them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.domain import Marker
from core.errors import MrcError
from core.metrics.reference import InvalidReference, Reference, loads

if TYPE_CHECKING:
    from core.services.workspace import Workspace

#: Seconds between two reads of the targets (deployed commit, revision history).
SLOW_SECONDS = 30.0
#: Seconds before the deployed commit is read again while the targets run none (a
#: release is likely on its way: the first one, or one starting with the console).
NOTHING_DEPLOYED_SECONDS = 1.0
#: A target revision created this close to a journal marker is that marker.
_SAME_RELEASE_SECONDS = 120.0


class TrainingReferences:
    """The training reference of ``model``: ``drift.reference_path`` at the deployed commit.

    Calling it returns ``(Reference, "")`` or ``(None, why it is missing)``.
    The deployed commit is re-read as soon as the journal records or closes
    an action on the model (a release made through this workspace is judged
    against its own commit at once), and otherwise every :data:`SLOW_SECONDS`
    (every :data:`NOTHING_DEPLOYED_SECONDS` while the targets answer that
    they run none); the file is read again only when that commit changes.
    When the deployed commit cannot be told, the reference read before (if
    any) is kept. Thread-safe.
    """

    def __init__(
        self, workspace: Workspace, model: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.workspace = workspace
        self.model = model
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._interval = SLOW_SECONDS
        self._journal_seen: tuple[int, int] | None = None  # Journal.changes_of at that check
        self._commit = ""
        self._reference: Reference | None = None
        self._why = "no training reference histograms loaded"

    def __call__(self) -> tuple[Reference | None, str]:
        changes = self.workspace.journal.changes_of(self.model)
        with self._lock:
            now = self._clock()
            due = self._checked_at is None or now - self._checked_at >= self._interval
            if due or changes != self._journal_seen:
                self._checked_at, self._journal_seen = now, changes
                self._load()
            return self._reference, self._why

    def _deployed_commit(self) -> str:
        for target in self.workspace.targets(self.model):
            commit = target.status().commit
            if commit:
                return str(commit)
        return ""

    def _load(self) -> None:
        path = self.workspace.model(self.model).drift.reference_path
        if not path:
            self._reference, self._why = None, "drift.reference_path is not configured"
            return
        self._interval = SLOW_SECONDS
        try:
            commit = self._deployed_commit()
        except MrcError as exc:
            self._why = f"cannot tell the deployed commit: {exc}"
            return  # keep the reference read before, if any
        if not commit:
            self._reference, self._why = None, "no target runs a known commit"
            self._commit = ""
            self._interval = NOTHING_DEPLOYED_SECONDS
            return
        if commit == self._commit and self._reference is not None:
            return
        try:
            text = self.workspace.repository(self.model).file_at(commit, path).decode("utf-8")
            self._reference = loads(text, f"{path} at {commit[:8]}")
            self._commit, self._why = commit, ""
        except (MrcError, InvalidReference, UnicodeDecodeError) as exc:
            self._reference, self._why, self._commit = None, str(exc), ""


class ReleaseMarkers:
    """The release markers of ``model``: the journal's rollouts and rollbacks, plus revisions
    in the targets' histories the journal does not know (e.g. made by another tool).

    Calling it returns the markers (journal first, any order). The journal's
    markers are read again whenever :meth:`Journal.changes_of` changes (an
    action on the model recorded or ended, by any process); the histories
    every :data:`SLOW_SECONDS` (a target that cannot be reached contributes
    nothing). Thread-safe.
    """

    def __init__(
        self, workspace: Workspace, model: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.workspace = workspace
        self.model = model
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._history: list[Marker] = []
        self._journal_seen: tuple[int, int] | None = None  # Journal.changes_of at that read
        self._journal: list[Marker] = []

    def __call__(self) -> list[Marker]:
        journal_rows = self.workspace.journal
        changes = journal_rows.changes_of(self.model)
        with self._lock:
            if changes != self._journal_seen:
                self._journal = list(journal_rows.markers(self.model))
                self._journal_seen = changes
            journal = list(self._journal)
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= SLOW_SECONDS:
                self._checked_at = now
                try:
                    self._history = self._history_markers(journal)
                except MrcError:
                    self._history = []
            return journal + self._history

    def _history_markers(self, journal: list[Marker]) -> list[Marker]:
        out = []
        for target in self.workspace.targets(self.model):
            name = target.name
            for rev in target.history():
                if rev.created is None:
                    continue
                if any(
                    m.target == name
                    and abs((m.time - rev.created).total_seconds()) < _SAME_RELEASE_SECONDS
                    for m in journal
                ):
                    continue
                out.append(
                    Marker(
                        time=rev.created,
                        label=f"revision {rev.number}",
                        kind="rollout",
                        target=name,
                    )
                )
        return out
