"""Commits of a model repository: the commit, its per-file stat and its full detail.

Part of :mod:`core.domain` (import the names from there).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Commit:
    """One commit of a model repository."""

    sha: str
    author: str
    email: str
    date: datetime
    subject: str
    parents: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    branches: tuple[str, ...] = ()

    @property
    def short(self) -> str:
        """The abbreviated (8 character) sha."""
        return self.sha[:8]


@dataclass(frozen=True, slots=True)
class FileStat:
    """Lines added and removed in one file of a commit."""

    path: str
    insertions: int
    deletions: int


@dataclass(frozen=True, slots=True)
class CommitDetail:
    """A commit with its full message, per-file stat and unified diff."""

    commit: Commit
    message: str
    stats: tuple[FileStat, ...]
    diff: str
    diff_truncated: bool = False
