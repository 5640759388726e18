"""The journal: test runs, releases and the audit trail, in one SQLite file.

The file (``journal.sqlite3`` under the state directory) is opened in WAL
mode with a busy timeout, so several consoles and CLI processes can write at
once without losing rows: every write is one ``BEGIN IMMEDIATE`` transaction.
Each thread gets its own connection. The schema is versioned with
``PRAGMA user_version`` and upgraded in order by :data:`MIGRATIONS` when the
file is opened.

Audit rows follow the intent/outcome discipline: :meth:`Journal.begin`
writes (and commits) an ``intent`` row before a mutating action touches
anything, :meth:`Journal.finish` records ``done`` or ``failed`` after. A row
whose process died in between stays ``intent`` until :meth:`Journal.mark_orphans`
turns it into ``unknown`` ("outcome unknown — verify").
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import audit, paths
from core.domain import (
    JournalEntry,
    Marker,
    Outcome,
    Release,
    ReleaseStep,
    RunStatus,
    TestFailure,
    TestRun,
)
from core.errors import MrcError, NotFound

#: Actions that change what is live on a target (the source of chart markers).
RELEASE_ACTIONS = ("rollout", "rollback")

_ORPHAN_ERROR = (
    "the process that started it (pid {pid} on {host}) exited before recording an outcome"
)

# Each migration moves the schema from version N-1 to N; never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the tables.
    (
        """
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time TEXT NOT NULL,
            user TEXT NOT NULL,
            ssh_client TEXT NOT NULL DEFAULT '',
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            model TEXT NOT NULL,
            target TEXT NOT NULL,
            action TEXT NOT NULL,
            from_revision TEXT NOT NULL DEFAULT '',
            to_revision TEXT NOT NULL DEFAULT '',
            reason TEXT NOT NULL DEFAULT '',
            outcome TEXT NOT NULL,
            error TEXT NOT NULL DEFAULT '',
            finished_at TEXT
        )
        """,
        """
        CREATE TABLE test_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            model TEXT NOT NULL,
            commit_sha TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            passed INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0,
            metrics TEXT NOT NULL DEFAULT '{}',
            failures TEXT NOT NULL DEFAULT '[]',
            output_path TEXT,
            message TEXT NOT NULL DEFAULT '',
            exit_code INTEGER,
            host TEXT NOT NULL DEFAULT '',
            pid INTEGER NOT NULL DEFAULT 0
        )
        """,
        """
        CREATE TABLE releases (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            model TEXT NOT NULL,
            commit_sha TEXT NOT NULL,
            target TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            user TEXT NOT NULL DEFAULT '',
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT '',
            host TEXT NOT NULL DEFAULT '',
            pid INTEGER NOT NULL DEFAULT 0
        )
        """,
        """
        CREATE TABLE release_steps (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            release_id INTEGER NOT NULL REFERENCES releases(id),
            step TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT '',
            started_at TEXT NOT NULL,
            finished_at TEXT
        )
        """,
    ),
    # 2: free-form details on audit rows (images, commits, revision numbers) and the
    # indexes the screens query by.
    (
        "ALTER TABLE audit ADD COLUMN details TEXT NOT NULL DEFAULT '{}'",
        "CREATE INDEX audit_model_target_time ON audit (model, target, time)",
        "CREATE INDEX audit_outcome ON audit (outcome)",
        "CREATE INDEX test_runs_model_commit ON test_runs (model, commit_sha)",
        "CREATE INDEX release_steps_release ON release_steps (release_id)",
    ),
    # 3: process start time next to the pid, so a reused pid is not taken for the
    # process that wrote the row.
    (
        "ALTER TABLE audit ADD COLUMN pid_start TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE test_runs ADD COLUMN pid_start TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE releases ADD COLUMN pid_start TEXT NOT NULL DEFAULT ''",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


class JournalError(MrcError):
    """The journal file cannot be opened or is newer than this program."""


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime | None) -> str | None:
    """Return a fixed-width UTC ISO string, which sorts like the time it names."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _json_object(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _refuse_symlinks(path: Path) -> None:
    """Raise OSError(ELOOP) when ``path`` or its ``-wal``/``-shm`` companion is a symbolic link.

    SQLite opens those companions by name next to the database and would
    follow a link planted there.
    """
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if candidate.is_symlink():
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(candidate))


class Journal:
    """The SQLite journal. Safe to share between threads and processes."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float = 30.0,
        close_orphans: bool = True,
    ):
        """Open (creating it mode 0600 if needed) and migrate the journal at ``path``.

        ``path`` None uses ``journal.sqlite3`` in the state directory. With
        ``close_orphans`` the rows of dead processes are closed at once (see
        :meth:`mark_orphans`). Its directory is made private (see
        :func:`core.paths.ensure_dir`) and a file left readable by others is
        made 0600. Raises JournalError when the file cannot be opened, when it
        (or its ``-wal``/``-shm`` file) is a symbolic link, or when its schema
        is newer than this program knows.
        """
        self.path = Path(path) if path is not None else paths.journal_path()
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        # The thread and process each of _connections was opened for (same order): a
        # connection of a thread that has ended is handed to the next new thread,
        # so short-lived worker threads do not each leave an open connection behind.
        self._owners: list[tuple[threading.Thread, int]] = []
        try:
            paths.ensure_dir(self.path.parent)
            _refuse_symlinks(self.path)
            # Create the file private to the user before SQLite does (its WAL and
            # shared-memory files inherit the database file's mode). O_NOFOLLOW:
            # a symbolic link planted in its place is refused, never followed.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                info = os.fstat(fd)
                if info.st_uid == os.getuid() and info.st_mode & 0o077:
                    os.fchmod(fd, 0o600)  # a file left readable by others
            finally:
                os.close(fd)
        except OSError as error:
            reason = error.strerror
            if error.errno == errno.ELOOP:
                link = error.filename or self.path
                reason = f"{link} is a symbolic link (refused: the journal never follows one)"
            raise JournalError(f"cannot open the journal {self.path}: {reason}") from None
        self._migrate()
        if close_orphans:
            self.mark_orphans()

    # ------------------------------------------------------------ plumbing

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid == os.getpid():
            return connection
        me, pid = threading.current_thread(), os.getpid()
        with self._lock:
            for index, (owner, owner_pid) in enumerate(self._owners):
                if owner_pid == pid and not owner.is_alive():
                    self._owners[index] = (me, pid)
                    connection = self._connections[index]
                    self._local.connection = connection
                    self._local.pid = pid
                    return connection
        try:
            connection = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # transactions are explicit
                check_same_thread=False,  # only close() uses it from another thread
            )
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as error:
            raise JournalError(f"cannot open the journal {self.path}: {error}") from None
        self._local.connection = connection
        self._local.pid = os.getpid()
        with self._lock:
            self._connections.append(connection)
            self._owners.append((me, pid))
        return connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; waits (up to the busy timeout) for other writers."""
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _read(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._write() as connection:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"the journal {self.path} has schema version {version}, newer than this "
                    f"program's {SCHEMA_VERSION}: upgrade mrc or set MRC_STATE_DIR elsewhere"
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[number - 1]:
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {number}")

    def schema_version(self) -> int:
        """Return the schema version of the open file."""
        return int(self._read("PRAGMA user_version")[0][0])

    def close(self) -> None:
        """Close every connection this object opened (in any thread)."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._owners = []
        for connection in connections:
            try:
                connection.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ audit trail

    def begin(
        self,
        model: str,
        target: str,
        action: str,
        from_revision: str = "",
        to_revision: str = "",
        reason: str = "",
        details: Mapping[str, Any] | None = None,
        *,
        actor: audit.Actor | None = None,
    ) -> int:
        """Write an ``intent`` row (committed before returning) and return its id.

        ``actor`` defaults to this process (:func:`core.audit.whoami`).
        """
        who = actor or audit.whoami()
        with self._write() as connection:
            cursor = connection.execute(
                "INSERT INTO audit (time, user, ssh_client, host, pid, pid_start, model, target,"
                " action, from_revision, to_revision, reason, outcome, details)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _ts(_now()),
                    who.user,
                    who.ssh_client,
                    who.host,
                    who.pid,
                    audit.process_start_ticks(who.pid) if who.pid == os.getpid() else "",
                    model,
                    target,
                    action,
                    str(from_revision),
                    str(to_revision),
                    reason,
                    Outcome.INTENT.value,
                    json.dumps(dict(details or {}), default=str),
                ),
            )
            return int(cursor.lastrowid or 0)

    def finish(
        self,
        entry_id: int,
        outcome: Outcome | str,
        error: str = "",
        *,
        to_revision: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the outcome of the action ``entry_id`` (done, failed or unknown).

        ``to_revision`` replaces the row's value when given (a rollout learns its
        revision number at the end); ``details`` are merged into the row's.
        Raises NotFound for an unknown id, ValueError for outcome ``intent``.
        """
        outcome = Outcome(outcome)
        if outcome is Outcome.INTENT:
            raise ValueError("finish() records an outcome, not an intent")
        with self._write() as connection:
            row = connection.execute(
                "SELECT details, to_revision FROM audit WHERE id = ?", (entry_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no journal entry {entry_id}")
            merged = _json_object(row["details"])
            merged.update(details or {})
            connection.execute(
                "UPDATE audit SET outcome = ?, error = ?, finished_at = ?, to_revision = ?,"
                " details = ? WHERE id = ?",
                (
                    outcome.value,
                    error,
                    _ts(_now()),
                    row["to_revision"] if to_revision is None else str(to_revision),
                    json.dumps(merged, default=str),
                    entry_id,
                ),
            )

    @staticmethod
    def _entry(row: sqlite3.Row) -> JournalEntry:
        time = _dt(row["time"])
        assert time is not None
        return JournalEntry(
            id=row["id"],
            time=time,
            user=row["user"],
            ssh_client=row["ssh_client"],
            model=row["model"],
            target=row["target"],
            action=row["action"],
            from_revision=row["from_revision"],
            to_revision=row["to_revision"],
            reason=row["reason"],
            outcome=Outcome(row["outcome"]),
            error=row["error"],
            finished_at=_dt(row["finished_at"]),
            pid=row["pid"],
            host=row["host"],
            details=_json_object(row["details"]),
        )

    def entry(self, entry_id: int) -> JournalEntry:
        """Return one audit row; raises NotFound when there is none."""
        rows = self._read("SELECT * FROM audit WHERE id = ?", (entry_id,))
        if not rows:
            raise NotFound(f"no journal entry {entry_id}")
        return self._entry(rows[0])

    def entries(
        self,
        model: str | None = None,
        target: str | None = None,
        limit: int = 200,
        *,
        action: str | None = None,
    ) -> list[JournalEntry]:
        """Return audit rows, newest first, optionally of one model/target/action."""
        where, params = self._filters(model=model, target=target, action=action)
        rows = self._read(
            f"SELECT * FROM audit {where} ORDER BY time DESC, id DESC LIMIT ?",
            [*params, limit],
        )
        return [self._entry(row) for row in rows]

    @staticmethod
    def _filters(**columns: str | None) -> tuple[str, list[Any]]:
        clauses = [f"{name} = ?" for name, value in columns.items() if value is not None]
        params = [value for value in columns.values() if value is not None]
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), params

    def mark_orphans(self) -> int:
        """Close the rows of processes that died on this host; return how many changed.

        Audit ``intent`` rows become ``unknown``; running or queued test runs
        become ``error``; running releases and their running steps become
        ``unknown``. Rows written on other hosts are left alone (they still
        show as "outcome unknown" since their outcome is not known here).
        """
        host = audit.whoami().host
        changed = 0
        now = _ts(_now())

        def dead(row: sqlite3.Row) -> bool:
            return not audit.process_alive(int(row["pid"]), row["pid_start"])

        with self._write() as connection:
            for row in connection.execute(
                "SELECT id, pid, pid_start FROM audit WHERE outcome = ? AND host = ?",
                (Outcome.INTENT.value, host),
            ).fetchall():
                if dead(row):
                    connection.execute(
                        "UPDATE audit SET outcome = ?, error = ?, finished_at = ? WHERE id = ?",
                        (
                            Outcome.UNKNOWN.value,
                            _ORPHAN_ERROR.format(pid=row["pid"], host=host),
                            now,
                            row["id"],
                        ),
                    )
                    changed += 1
            for row in connection.execute(
                "SELECT id, pid, pid_start FROM test_runs WHERE status IN (?, ?) AND host = ?",
                (RunStatus.QUEUED.value, RunStatus.RUNNING.value, host),
            ).fetchall():
                if dead(row):
                    connection.execute(
                        "UPDATE test_runs SET status = ?, message = ?, finished_at = ?"
                        " WHERE id = ?",
                        (
                            RunStatus.ERROR.value,
                            "interrupted: " + _ORPHAN_ERROR.format(pid=row["pid"], host=host),
                            now,
                            row["id"],
                        ),
                    )
                    changed += 1
            for row in connection.execute(
                "SELECT id, pid, pid_start FROM releases WHERE status = 'running' AND host = ?",
                (host,),
            ).fetchall():
                if dead(row):
                    message = _ORPHAN_ERROR.format(pid=row["pid"], host=host)
                    connection.execute(
                        "UPDATE releases SET status = 'unknown', message = ?, finished_at = ?"
                        " WHERE id = ?",
                        (message, now, row["id"]),
                    )
                    connection.execute(
                        "UPDATE release_steps SET status = 'unknown', message = ?,"
                        " finished_at = ? WHERE release_id = ? AND status = 'running'",
                        (message, now, row["id"]),
                    )
                    changed += 1
        return changed

    def changes_of(self, model: str) -> tuple[int, int]:
        """Return (audit rows of ``model``, how many of them have finished).

        Changes whenever an action on one of the model's targets is recorded
        or ends: a cheap test of whether what runs there may have changed.
        """
        row = self._read(
            "SELECT COUNT(*), COUNT(finished_at) FROM audit WHERE model = ?", (model,)
        )[0]
        return int(row[0]), int(row[1])

    def markers(
        self, model: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[Marker]:
        """Return a marker per rollout/rollback of ``model`` started in [since, until], oldest
        first. Failed and unfinished ones are included, their label says so."""
        rows = self._read(
            "SELECT * FROM audit WHERE model = ? AND action IN (?, ?)"
            " AND time >= ? AND time <= ? ORDER BY time, id",
            (
                model,
                *RELEASE_ACTIONS,
                _ts(since) if since else "",
                _ts(until) if until else "9999",
            ),
        )
        markers = []
        for row in rows:
            entry = self._entry(row)
            label = entry.action
            if entry.to_revision:
                label += f" → {entry.to_revision}"
            if entry.outcome is Outcome.FAILED:
                label += " (failed)"
            elif entry.outcome_unknown:
                label += " (outcome unknown)"
            markers.append(
                Marker(time=entry.time, label=label, kind=entry.action, target=entry.target)
            )
        return markers

    # ------------------------------------------------------------ test runs

    def record_test_run(self, run: TestRun) -> int:
        """Insert ``run`` (its ``id`` is ignored) and return the new id.

        The row remembers this process, so :meth:`mark_orphans` can close it
        if the process dies while it is queued or running.
        """
        who = audit.whoami()
        with self._write() as connection:
            cursor = connection.execute(
                "INSERT INTO test_runs (model, commit_sha, status, started_at, finished_at,"
                " passed, failed, errors, skipped, metrics, failures, output_path, message,"
                " exit_code, host, pid, pid_start)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *self._run_values(run),
                    who.host,
                    who.pid,
                    audit.process_start_ticks(who.pid),
                ),
            )
            return int(cursor.lastrowid or 0)

    def update_test_run(self, run: TestRun) -> None:
        """Store every field of ``run`` under ``run.id``; raises NotFound if there is no such
        row and ValueError when ``run.id`` is None."""
        if run.id is None:
            raise ValueError("update_test_run needs a run with an id")
        with self._write() as connection:
            cursor = connection.execute(
                "UPDATE test_runs SET model = ?, commit_sha = ?, status = ?, started_at = ?,"
                " finished_at = ?, passed = ?, failed = ?, errors = ?, skipped = ?, metrics = ?,"
                " failures = ?, output_path = ?, message = ?, exit_code = ? WHERE id = ?",
                (*self._run_values(run), run.id),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no test run {run.id}")

    @staticmethod
    def _run_values(run: TestRun) -> tuple[Any, ...]:
        failures = [
            {"name": f.name, "message": f.message, "kind": f.kind, "details": f.details}
            for f in run.failures
        ]
        return (
            run.model,
            run.commit,
            RunStatus(run.status).value,
            _ts(run.started_at),
            _ts(run.finished_at),
            run.passed,
            run.failed,
            run.errors,
            run.skipped,
            json.dumps(run.metrics),
            json.dumps(failures),
            run.output_path,
            run.message,
            run.exit_code,
        )

    @staticmethod
    def _run(row: sqlite3.Row) -> TestRun:
        failures = []
        try:
            raw_failures = json.loads(row["failures"] or "[]")
        except ValueError:
            raw_failures = []
        for item in raw_failures if isinstance(raw_failures, list) else []:
            if isinstance(item, dict):
                failures.append(
                    TestFailure(
                        name=str(item.get("name", "")),
                        message=str(item.get("message", "")),
                        kind=str(item.get("kind", "failure")),
                        details=str(item.get("details", "")),
                    )
                )
        metrics = {
            key: float(value)
            for key, value in _json_object(row["metrics"]).items()
            if isinstance(value, int | float)
        }
        return TestRun(
            id=row["id"],
            model=row["model"],
            commit=row["commit_sha"],
            status=RunStatus(row["status"]),
            started_at=_dt(row["started_at"]),
            finished_at=_dt(row["finished_at"]),
            passed=row["passed"],
            failed=row["failed"],
            errors=row["errors"],
            skipped=row["skipped"],
            metrics=metrics,
            failures=failures,
            output_path=row["output_path"],
            message=row["message"],
            exit_code=row["exit_code"],
        )

    def test_run(self, run_id: int) -> TestRun:
        """Return one test run; raises NotFound when there is none."""
        rows = self._read("SELECT * FROM test_runs WHERE id = ?", (run_id,))
        if not rows:
            raise NotFound(f"no test run {run_id}")
        return self._run(rows[0])

    def test_runs(
        self, model: str | None = None, commit: str | None = None, limit: int = 200
    ) -> list[TestRun]:
        """Return test runs, newest first, optionally of one model and/or commit."""
        where, params = self._filters(model=model, commit_sha=commit)
        rows = self._read(
            f"SELECT * FROM test_runs {where} ORDER BY id DESC LIMIT ?", [*params, limit]
        )
        return [self._run(row) for row in rows]

    # ------------------------------------------------------------ releases

    def start_release(self, model: str, target: str, commit: str, reason: str = "") -> int:
        """Write a running release row and return its id."""
        who = audit.whoami()
        with self._write() as connection:
            cursor = connection.execute(
                "INSERT INTO releases (model, commit_sha, target, reason, user, started_at,"
                " status, host, pid, pid_start) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                (
                    model,
                    commit,
                    target,
                    reason,
                    who.user,
                    _ts(_now()),
                    who.host,
                    who.pid,
                    audit.process_start_ticks(who.pid),
                ),
            )
            return int(cursor.lastrowid or 0)

    def start_step(self, release_id: int, step: str) -> int:
        """Write a running step row of release ``release_id``; return its id.

        Raises NotFound when the release does not exist.
        """
        with self._write() as connection:
            if not connection.execute(
                "SELECT 1 FROM releases WHERE id = ?", (release_id,)
            ).fetchone():
                raise NotFound(f"no release {release_id}")
            cursor = connection.execute(
                "INSERT INTO release_steps (release_id, step, status, started_at)"
                " VALUES (?, ?, 'running', ?)",
                (release_id, step, _ts(_now())),
            )
            return int(cursor.lastrowid or 0)

    def finish_step(self, step_id: int, status: str, message: str = "") -> None:
        """Close step ``step_id`` with ``status`` (done, failed, skipped, cancelled).

        Raises NotFound when the step does not exist.
        """
        with self._write() as connection:
            cursor = connection.execute(
                "UPDATE release_steps SET status = ?, message = ?, finished_at = ? WHERE id = ?",
                (status, message, _ts(_now()), step_id),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no release step {step_id}")

    def finish_release(self, release_id: int, status: str, message: str = "") -> None:
        """Close release ``release_id`` with its outcome; raises NotFound when it does not
        exist."""
        with self._write() as connection:
            cursor = connection.execute(
                "UPDATE releases SET status = ?, message = ?, finished_at = ? WHERE id = ?",
                (status, message, _ts(_now()), release_id),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no release {release_id}")

    def _release(self, row: sqlite3.Row) -> Release:
        steps = tuple(
            ReleaseStep(
                id=step["id"],
                step=step["step"],
                status=step["status"],
                message=step["message"],
                started_at=_dt(step["started_at"]),
                finished_at=_dt(step["finished_at"]),
            )
            for step in self._read(
                "SELECT * FROM release_steps WHERE release_id = ? ORDER BY id", (row["id"],)
            )
        )
        started = _dt(row["started_at"])
        assert started is not None
        return Release(
            id=row["id"],
            model=row["model"],
            commit=row["commit_sha"],
            target=row["target"],
            status=row["status"],
            started_at=started,
            finished_at=_dt(row["finished_at"]),
            reason=row["reason"],
            user=row["user"],
            message=row["message"],
            steps=steps,
        )

    def release(self, release_id: int) -> Release:
        """Return one release with its steps; raises NotFound when there is none."""
        rows = self._read("SELECT * FROM releases WHERE id = ?", (release_id,))
        if not rows:
            raise NotFound(f"no release {release_id}")
        return self._release(rows[0])

    def releases(
        self, model: str | None = None, target: str | None = None, limit: int = 50
    ) -> list[Release]:
        """Return releases with their steps, newest first."""
        where, params = self._filters(model=model, target=target)
        rows = self._read(
            f"SELECT * FROM releases {where} ORDER BY id DESC LIMIT ?", [*params, limit]
        )
        return [self._release(row) for row in rows]
