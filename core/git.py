"""A model's git repository: paged log, commit detail, refs, worktrees, retrain commits.

Everything runs the ``git`` command itself: ``git rev-parse`` finds and
validates the repository (a few milliseconds, where importing a git library
cost ~90 ms of every command's start), and every history query uses a
bounded, machine-readable output format, so no call ever loads the whole
history into memory:

* :meth:`Repository.page` runs ``git log -n LIMIT --skip SKIP`` (random access,
  e.g. the first page on screen).
* :meth:`Repository.cursor` keeps one ``git log`` process open and reads it
  page by page as the user scrolls (cost proportional to what is read, also
  with a search filter).

Errors are :class:`~core.errors.MrcError` subclasses whose message names the
repository and what to do.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from core.domain import Commit, CommitDetail, FileStat
from core.errors import BackendUnavailable, MrcError, NotFound

log = logging.getLogger(__name__)

#: Page size used when a caller does not give one.
PAGE_SIZE = 200
#: A commit diff larger than this many bytes is cut (``CommitDetail.diff_truncated``).
MAX_DIFF_BYTES = 1_000_000
#: At most this many files are listed in ``CommitDetail.stats``.
MAX_STAT_FILES = 5000
#: The program :meth:`Repository.export` runs in a child interpreter: extract the tar
#: archive on stdin into the directory ``argv[1]`` with tarfile's ``data`` filter.
_EXTRACT = (
    "import sys, tarfile\n"
    "with tarfile.open(fileobj=sys.stdin.buffer, mode='r|') as tar:\n"
    "    tar.extractall(sys.argv[1], filter='data')\n"
)

# One field per token, tokens separated by NUL; -z separates commits by NUL too.
_FIELDS = ("%H", "%P", "%an", "%ae", "%at", "%D", "%s")
_LOG_FORMAT = "format:" + "%x00".join(_FIELDS)
_NFIELDS = len(_FIELDS)
_HEX = re.compile(r"[0-9a-fA-F]{4,64}")
# Options that keep git's output parseable whatever the user's configuration says.
_CONFIG = (
    "-c",
    "core.quotepath=false",
    "-c",
    "log.showSignature=false",
    "-c",
    "color.ui=never",
    "-c",
    "core.pager=cat",
)
_UNREADABLE = (
    "unable to read",
    "could not read",
    "failed to traverse",
    "bad object",
    "corrupt",
    "missing blob",
    "missing tree",
    "missing commit",
    "invalid object",
    "packfile",
    "unable to parse",
    "could not parse",
)


class NotARepository(NotFound):
    """The path does not exist or is not inside a git repository."""


class EmptyRepository(NotFound):
    """The repository has no commit yet."""


class CommitNotFound(NotFound):
    """A commit, tag or branch name that does not resolve to a commit."""


class UnreadableObject(MrcError):
    """Git could not read an object of the repository (corruption, missing pack)."""


@dataclass(frozen=True, slots=True)
class Ref:
    """A tag or branch: ``kind`` is "tag", "branch" or "remote"; ``sha`` is the commit."""

    name: str
    sha: str
    kind: str


def _git_executable() -> str:
    exe = shutil.which("git")
    if exe is None:
        raise BackendUnavailable("git is not installed or not on PATH: install git to read commits")
    return exe


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    # English messages (errors are classified by text), no prompts, no pager.
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0", GIT_PAGER="cat")
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return env


def _parse_decorations(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split a ``%D`` string (with ``--decorate=full``) into (tags, branches)."""
    tags: list[str] = []
    branches: list[str] = []
    if not text:
        return (), ()
    for item in text.split(", "):
        if item.startswith("HEAD -> "):
            item = item[len("HEAD -> ") :]
        if item.startswith("tag: refs/tags/"):
            tags.append(item[len("tag: refs/tags/") :])
        elif item.startswith("refs/heads/"):
            branches.append(item[len("refs/heads/") :])
        elif item.startswith("refs/remotes/") and not item.endswith("/HEAD"):
            branches.append(item[len("refs/remotes/") :])
    return tuple(tags), tuple(branches)


def _commit_from_tokens(tokens: list[str]) -> Commit | None:
    """Build a Commit from the ``_FIELDS`` tokens of one record; None if malformed."""
    sha, parents, author, email, when, decorations, subject = tokens
    sha = sha.lstrip("\n")
    if len(sha) < 40 or not _HEX.fullmatch(sha):
        return None
    try:
        date = datetime.fromtimestamp(int(when), tz=UTC)
    except ValueError:
        date = datetime.fromtimestamp(0, tz=UTC)
    tags, branches = _parse_decorations(decorations)
    return Commit(
        sha=sha,
        author=author,
        email=email,
        date=date,
        subject=subject,
        parents=tuple(parents.split()),
        tags=tags,
        branches=branches,
    )


def _parse_log(out: bytes) -> list[Commit]:
    """Return the commits in ``git log -z --format=_LOG_FORMAT`` output, malformed ones left out."""
    tokens = out.decode("utf-8", errors="replace").split("\0") if out else []
    commits = []
    for i in range(0, len(tokens) - _NFIELDS + 1, _NFIELDS):
        commit = _commit_from_tokens(tokens[i : i + _NFIELDS])
        if commit is not None:
            commits.append(commit)
    return commits


def _matches(commit: Commit, needle: str) -> bool:
    """True when ``needle`` (lower case) is a sha prefix or is in subject/author/email."""
    if _HEX.fullmatch(needle) and commit.sha.startswith(needle):
        return True
    return (
        needle in commit.subject.lower()
        or needle in commit.author.lower()
        or needle in commit.email.lower()
    )


class Repository:
    """A local git repository (work tree or bare).

    Construction raises :class:`NotARepository` when ``path`` does not exist
    or is not in a git repository, and :class:`~core.errors.BackendUnavailable`
    when git is missing. An empty repository opens fine (``is_empty``); the
    history methods then raise :class:`EmptyRepository`. A shallow clone opens
    fine too, with ``is_shallow`` set and ``warning`` explaining that the
    history is cut. Methods are safe to call from several threads.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._exe = _git_executable()
        if not self.path.exists():
            raise NotARepository(f"repository path {self.path} does not exist")
        self._env = _git_env()
        self.root = self.path  # until discovery below, for messages
        self.git_dir, self.common_dir, self.is_bare, top = self._discover()
        self.root = top if top is not None else self.git_dir
        self.is_shallow = (self.common_dir / "shallow").exists()
        self.warning = ""
        if self.is_shallow:
            self.warning = (
                f"{self.root} is a shallow clone: history stops early and older commits "
                "are missing; run `git fetch --unshallow` for the full history"
            )
            log.warning("%s", self.warning)

    def _discover(self) -> tuple[Path, Path, bool, Path | None]:
        """Return (git dir, common dir, bare, top-level work tree or None) of ``self.path``.

        Asks ``git rev-parse`` from ``self.path`` upwards, as git itself finds a
        repository. Raises NotARepository (with git's reason, e.g. an unsafe
        owner) when there is none, BackendUnavailable when git cannot run.
        """
        where = self.path if self.path.is_dir() else self.path.parent
        asked = ["rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir"]
        result = self._run([*asked, "--is-bare-repository"], check=False, where=where)
        lines = result.stdout.decode("utf-8", "replace").splitlines()
        if result.returncode != 0 or len(lines) != 3:
            reason = result.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = reason[-1] if reason else "no repository found"
            what = (
                "is not a git repository (nor inside one)"
                if "not a git repository" in detail.lower()
                else f"cannot be opened as a git repository ({detail})"
            )
            raise NotARepository(
                f"{self.path} {what}: set the model's repository path to a git clone"
            )
        git_dir, common_dir, bare = Path(lines[0]), Path(lines[1]), lines[2] == "true"
        if bare:
            return git_dir, common_dir, True, None
        top = self._run(["rev-parse", "--show-toplevel"], check=False, where=where)
        text = top.stdout.decode("utf-8", "replace").strip()
        if top.returncode != 0 or not text:  # inside the git dir itself: no work tree here
            return git_dir, common_dir, False, git_dir.parent
        return git_dir, common_dir, False, Path(text)

    # ------------------------------------------------------------------ plumbing

    def _argv(self, args: Iterable[str], where: Path | None = None) -> list[str]:
        return [self._exe, "-C", str(where or self.root), *_CONFIG, *args]

    def _run(
        self,
        args: list[str],
        *,
        input: bytes | None = None,
        check: bool = True,
        where: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run git with ``args``; return the completed process (bytes output).

        ``where`` runs it in another directory (a worktree of this repository);
        ``env`` replaces its environment. Raises the matching MrcError subclass
        when ``check`` and git fails.
        """
        # stderr goes to a file so that, with one pipe, reading needs no select loop.
        with tempfile.TemporaryFile() as err:
            try:
                result = subprocess.run(
                    self._argv(args, where),
                    input=input,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    env=self._env if env is None else env,
                    stdin=None if input is not None else subprocess.DEVNULL,
                )
            except OSError as exc:
                raise BackendUnavailable(f"cannot run git in {self.root}: {exc}") from exc
            err.seek(0)
            result.stderr = err.read()
        if check and result.returncode != 0:
            raise self._error(args, result.stderr)
        return result

    def _error(self, args: list[str], stderr: bytes) -> MrcError:
        """Translate a git failure into the MrcError subclass the operator can act on."""
        text = stderr.decode("utf-8", errors="replace").strip()
        lines = [ln for ln in text.splitlines() if ln.strip()]
        last = lines[-1] if lines else "no error output"
        low = text.lower()
        if "does not have any commits" in low or (
            ("'head'" in low or "HEAD" in args) and self.is_empty
        ):
            return EmptyRepository(f"repository {self.root} has no commits yet")
        if any(marker in low for marker in _UNREADABLE):
            return UnreadableObject(
                f"git cannot read objects of {self.root} ({last}); the repository may be "
                "corrupt or incomplete: run `git fsck` there"
            )
        if "unknown revision" in low or "bad revision" in low:
            return CommitNotFound(f"revision not found in {self.root}: {last}")
        return MrcError(f"git {args[0]} failed in {self.root}: {last}")

    @property
    def is_empty(self) -> bool:
        """True when HEAD does not point to a commit and no branch or tag exists."""
        result = self._run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], check=False)
        if result.returncode == 0:
            return False
        refs = self._run(["for-each-ref", "--count=1", "refs/heads", "refs/tags"], check=False)
        return not refs.stdout.strip()

    # ------------------------------------------------------------------ refs

    def resolve(self, ref: str) -> str:
        """Return the full sha of the commit ``ref`` (sha, short sha, tag, branch) names.

        Raises :class:`CommitNotFound` (message quotes ``ref`` and the
        repository) when it names no commit or is ambiguous, and
        :class:`EmptyRepository` for ``HEAD`` of an empty repository.
        """
        text = ref.strip()
        if not text or text.startswith("-") or any(c in text for c in "\n\r\0 "):
            raise CommitNotFound(f"commit {ref!r} not found in {self.root}")
        result = self._run(["rev-parse", "--verify", "--quiet", f"{text}^{{commit}}"], check=False)
        if result.returncode == 0:
            return result.stdout.decode().strip()
        if text == "HEAD" and self.is_empty:
            raise EmptyRepository(f"repository {self.root} has no commits yet")
        if b"ambiguous" in result.stderr:
            raise CommitNotFound(
                f"commit {ref!r} is ambiguous in {self.root}: give more characters of the sha"
            )
        raise CommitNotFound(f"commit {ref!r} not found in {self.root}")

    def head(self) -> str:
        """Return the sha HEAD points to; raise :class:`EmptyRepository` if there is none."""
        return self.resolve("HEAD")

    def tags(self) -> list[Ref]:
        """Return the tags that point (maybe via an annotated tag) to a commit, newest first."""
        fmt = "%(refname)%00%(objectname)%00%(objecttype)%00%(*objectname)%00%(*objecttype)"
        out = self._run(
            ["for-each-ref", "--sort=-creatordate", f"--format={fmt}", "refs/tags"]
        ).stdout
        refs = []
        for line in out.decode("utf-8", errors="replace").splitlines():
            parts = line.split("\0")
            if len(parts) != 5:
                continue
            name, sha, kind, peeled, peeled_kind = parts
            if peeled:
                sha, kind = peeled, peeled_kind
            if kind == "commit":
                refs.append(Ref(name=name.removeprefix("refs/tags/"), sha=sha, kind="tag"))
        return refs

    def branches(self) -> list[Ref]:
        """Return local branches (kind "branch") then remote-tracking ones (kind "remote")."""
        fmt = "%(refname)%00%(objectname)%00%(symref)"
        out = self._run(["for-each-ref", f"--format={fmt}", "refs/heads", "refs/remotes"]).stdout
        refs = []
        for line in out.decode("utf-8", errors="replace").splitlines():
            parts = line.split("\0")
            if len(parts) != 3 or parts[2]:
                continue  # skip symbolic refs such as origin/HEAD
            name, sha = parts[0], parts[1]
            if name.startswith("refs/heads/"):
                refs.append(Ref(name=name.removeprefix("refs/heads/"), sha=sha, kind="branch"))
            else:
                refs.append(Ref(name=name.removeprefix("refs/remotes/"), sha=sha, kind="remote"))
        return refs

    # ------------------------------------------------------------------ history

    def _log_args(self, start: str | None) -> list[str]:
        tip = self.resolve(start) if start else "HEAD"
        return ["log", "-z", f"--format={_LOG_FORMAT}", "--decorate=full", tip, "--"]

    def page(
        self,
        start: str | None = None,
        limit: int = PAGE_SIZE,
        skip: int = 0,
        search: str | None = None,
    ) -> list[Commit]:
        """Return at most ``limit`` commits reachable from ``start`` (default HEAD), newest first.

        The first ``skip`` commits (after filtering) are left out. ``search``
        keeps commits whose sha starts with it or whose subject, author name
        or e-mail contains it (case-insensitive). Each commit carries the tags
        and branches pointing at it. Cost grows with ``skip``; to scroll a
        long history use :meth:`cursor`. Raises :class:`EmptyRepository`,
        :class:`CommitNotFound` (unknown ``start``), :class:`UnreadableObject`.
        """
        if limit <= 0:
            return []
        if search and search.strip():
            with self.cursor(start, search=search, skip=skip) as cursor:
                return cursor.next_page(limit)
        args = self._log_args(start)
        args[1:1] = ["-n", str(limit), f"--skip={max(skip, 0)}"]
        return _parse_log(self._run(args).stdout)

    def cursor(
        self, start: str | None = None, search: str | None = None, skip: int = 0
    ) -> LogCursor:
        """Return a :class:`LogCursor` streaming the history from ``start`` (default HEAD).

        ``search`` and ``skip`` mean the same as in :meth:`page`. Close the
        cursor (or use it as a context manager) to stop its git process.
        Raises like :meth:`page`.
        """
        return LogCursor(self, self._argv(self._log_args(start)), search, skip)

    def tail(
        self, limit: int = PAGE_SIZE, start: str | None = None, *, nice: int = 0
    ) -> tuple[int, list[Commit]]:
        """Return (number of commits reachable from ``start``, the oldest ``limit`` of them).

        The commits come in :meth:`page` order (newest first), so they are the
        rows ``total - len(commits)`` .. ``total - 1`` of the list. Two walks of
        the history run side by side, ``git rev-list --count`` and ``git
        rev-list --reverse`` (of which only the first ``limit`` shas are read),
        then one ``git log`` of those commits: about the time of counting
        alone on a machine with a second core, where one walk that printed
        every sha cost half as much again. ``nice`` > 0 lowers the walks' CPU
        priority (for reading ahead in the background). Raises like
        :meth:`page`.
        """
        tip = self.resolve(start) if start else self.head()
        if limit <= 0:
            return self.count(tip), []
        with tempfile.TemporaryFile() as count_err, tempfile.TemporaryFile() as list_err:
            walks: list[subprocess.Popen[bytes]] = []
            try:
                walks.append(self._stream(["rev-list", "--count", tip, "--"], count_err))
                walks.append(self._stream(["rev-list", "--reverse", tip, "--"], list_err))
                if nice > 0:
                    for walk in walks:
                        with contextlib.suppress(OSError):  # it may have finished already
                            os.setpriority(os.PRIO_PROCESS, walk.pid, nice)
                counting, oldest = walks
                assert counting.stdout is not None and oldest.stdout is not None
                shas = [line.strip().decode("ascii", errors="replace") for line in
                        itertools.islice(oldest.stdout, limit)]  # fmt: skip
                if len(shas) == limit:
                    oldest.kill()  # the rest is the newer history: not needed
                elif oldest.wait() != 0:
                    list_err.seek(0)
                    raise self._error(["rev-list"], list_err.read())
                total_text = counting.stdout.read()
                if counting.wait() != 0:
                    count_err.seek(0)
                    raise self._error(["rev-list", "--count"], count_err.read())
            finally:
                for walk in walks:
                    if walk.poll() is None:
                        walk.kill()
                    if walk.stdout is not None:
                        walk.stdout.close()
                    walk.wait()
        total = int(total_text.strip() or 0)
        shas = [sha for sha in reversed(shas) if sha]
        if not shas:
            return total, []
        out = self._run(
            ["log", "--no-walk=unsorted", "-z", f"--format={_LOG_FORMAT}", "--decorate=full",
             *shas, "--"]
        ).stdout  # fmt: skip
        return total, _parse_log(out)

    def count(self, start: str | None = None) -> int:
        """Return the number of commits reachable from ``start`` (walks the history: slow)."""
        tip = self.resolve(start) if start else self.head()
        return int(self._run(["rev-list", "--count", tip, "--"]).stdout.strip() or 0)

    def detail(
        self, sha: str, max_diff_bytes: int = MAX_DIFF_BYTES, context_lines: int = 3
    ) -> CommitDetail:
        """Return the commit ``sha`` with its full message, per-file stat and unified diff.

        Merge commits are diffed against their first parent. A diff larger
        than ``max_diff_bytes`` is cut at a line end and ``diff_truncated``
        set. Raises :class:`CommitNotFound`, :class:`UnreadableObject`.
        """
        full = self.resolve(sha)
        meta = self._run(
            ["log", "-n", "1", "-z", f"--format={_LOG_FORMAT}%x00%B", "--decorate=full", full]
        ).stdout
        tokens = meta.decode("utf-8", errors="replace").split("\0")
        commit = _commit_from_tokens(tokens[:_NFIELDS]) if len(tokens) > _NFIELDS else None
        if commit is None:
            raise UnreadableObject(f"cannot parse commit {full} of {self.root}")
        message = tokens[_NFIELDS]
        show = ["show", "--format=", "--no-ext-diff", "--no-textconv", "-M"]
        show += ["--diff-merges=first-parent"]
        stat_out = self._run([*show, "--numstat", full]).stdout
        stats = []
        for line in stat_out.decode("utf-8", errors="replace").splitlines():
            parts = line.split("\t", 2)
            if len(parts) != 3:
                continue
            added, removed, path = parts
            stats.append(
                FileStat(
                    path=path,
                    insertions=int(added) if added.isdigit() else 0,
                    deletions=int(removed) if removed.isdigit() else 0,
                )
            )
            if len(stats) >= MAX_STAT_FILES:
                break
        diff, truncated = self._bounded_output(
            [*show, "--patch", f"-U{context_lines}", full], max_diff_bytes
        )
        return CommitDetail(
            commit=commit,
            message=message,
            stats=tuple(stats),
            diff=diff.decode("utf-8", errors="replace"),
            diff_truncated=truncated,
        )

    def _stream(self, args: list[str], err: IO[bytes]) -> subprocess.Popen[bytes]:
        """Start git with ``args``, stdout piped, stderr into ``err``; return the process.

        Raises BackendUnavailable when git cannot be started.
        """
        try:
            return subprocess.Popen(
                self._argv(args),
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=self._env,
            )
        except OSError as exc:
            raise BackendUnavailable(f"cannot run git in {self.root}: {exc}") from exc

    def _bounded_output(self, args: list[str], limit: int) -> tuple[bytes, bool]:
        """Run git, keep at most ``limit`` bytes of stdout (cut at a newline); stop git early."""
        with tempfile.TemporaryFile() as err:
            proc = self._stream(args, err)
            assert proc.stdout is not None
            chunks: list[bytes] = []
            size = 0
            truncated = False
            try:
                while True:
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        truncated = True
                        break
            finally:
                if truncated:
                    proc.kill()
                proc.stdout.close()
                code = proc.wait()
            if not truncated and code != 0:
                err.seek(0)
                raise self._error(args, err.read())
        data = b"".join(chunks)
        if truncated:
            data = data[:limit]
            cut = data.rfind(b"\n")
            data = data[: cut + 1] if cut >= 0 else data
        return data, truncated

    # ------------------------------------------------------------------ deployments

    def deployed_map(self, revisions: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
        """Map full commit sha -> names of the targets running it.

        ``revisions`` are (target name, commit) pairs where the commit may be
        a short sha (or any revision name), as found in an image's
        ``org.opencontainers.image.revision`` label, a Deployment annotation
        or the journal. Commits this repository does not know (or empty ones)
        are left out. Target names keep their first-seen order per commit.
        """
        pairs = [(target, rev.strip()) for target, rev in revisions]
        wanted = sorted(
            {rev for _, rev in pairs if rev and not rev.startswith("-") and not any(
                c.isspace() for c in rev)}
        )  # fmt: skip
        if not wanted:
            return {}
        query = "".join(f"{rev}^{{commit}}\n" for rev in wanted).encode()
        out = self._run(["cat-file", "--batch-check=%(objectname) %(objecttype)"], input=query)
        resolved: dict[str, str] = {}
        for rev, line in zip(
            wanted, out.stdout.decode(errors="replace").splitlines(), strict=False
        ):
            parts = line.split()
            if len(parts) == 2 and parts[1] == "commit":
                resolved[rev] = parts[0]
        result: dict[str, list[str]] = {}
        for target, rev in pairs:
            sha = resolved.get(rev)
            if sha is None:
                continue
            names = result.setdefault(sha, [])
            if target not in names:
                names.append(target)
        return result

    # ------------------------------------------------------------------ contents

    @contextlib.contextmanager
    def worktree(self, sha: str, parent: str | os.PathLike[str] | None = None) -> Iterator[Path]:
        """Check out commit ``sha`` (detached) into a temporary worktree; yield its path.

        The worktree lives in a new directory under ``parent`` (default: the
        system temp dir) and is removed afterwards, also on error; the user's
        own working tree and index are never touched. Hooks are not run.
        Raises :class:`CommitNotFound`, :class:`UnreadableObject`, or
        :class:`~core.errors.MrcError` when git cannot create it.
        """
        full = self.resolve(sha)
        holder = Path(tempfile.mkdtemp(prefix="mrc-worktree-", dir=parent))
        path = holder / f"{full[:12]}-{holder.name.rsplit('-', 1)[-1]}"
        try:
            self._run(
                ["-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", str(path), full]
            )
            yield path
        finally:
            self._run(["worktree", "remove", "--force", "--force", str(path)], check=False)
            shutil.rmtree(holder, ignore_errors=True)
            self._run(["worktree", "prune"], check=False)

    def archive(self, sha: str, dest: str | os.PathLike[str] | None = None) -> bytes | Path:
        """Return a tar archive of the tree of commit ``sha``.

        With ``dest`` the archive is streamed to that file and its Path is
        returned; otherwise the bytes are returned. Raises
        :class:`CommitNotFound`, :class:`UnreadableObject`.
        """
        full = self.resolve(sha)
        args = ["archive", "--format=tar", full]
        if dest is None:
            return self._run(args).stdout
        target = Path(dest)
        with open(target, "wb") as out, tempfile.TemporaryFile() as err:
            code = subprocess.run(
                self._argv(args), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self._env
            ).returncode
            if code != 0:
                err.seek(0)
                raise self._error(args, err.read())
        return target

    def export(self, sha: str, dest: str | os.PathLike[str]) -> Path:
        """Write the tree of commit ``sha`` into directory ``dest`` (created if needed); return it.

        ``git archive`` is streamed into a child interpreter that extracts it
        with :mod:`tarfile`'s ``data`` filter, so no entry lands outside
        ``dest`` and nothing but files, directories and links inside it is
        created. The extraction's many small writes run there, not in a
        thread of this process, where each would wait for the interpreter
        lock behind whatever else runs (a console drawing its screens).
        Raises :class:`CommitNotFound`, :class:`UnreadableObject`,
        :class:`~core.errors.MrcError` when git, the extraction (an entry
        refused by the filter, a file that cannot be written) or the archive
        fails, and OSError when ``dest`` cannot be created. After an error
        ``dest`` may hold part of the tree.
        """
        full = self.resolve(sha)
        args = ["archive", "--format=tar", full]
        target = Path(dest)
        target.mkdir(parents=True, exist_ok=True)
        extract_argv = [sys.executable, "-I", "-S", "-c", _EXTRACT, str(target)]
        with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as extract_err:
            archive = self._stream(args, err)
            assert archive.stdout is not None
            try:
                extract = subprocess.Popen(
                    extract_argv,
                    stdin=archive.stdout,
                    stdout=subprocess.DEVNULL,
                    stderr=extract_err,
                )
            except OSError as exc:
                archive.kill()
                archive.wait()
                raise MrcError(f"cannot export commit {full[:8]} of {self.root}: {exc}") from exc
            finally:
                archive.stdout.close()  # the extraction holds the only read end now
            try:
                extracted = extract.wait() == 0
            except BaseException:
                for proc in (extract, archive):
                    proc.kill()
                    proc.wait()
                raise
            if not extracted:
                archive.kill()
                archive.wait()
                extract_err.seek(0)
                lines = extract_err.read().decode("utf-8", "replace").strip().splitlines()
                reason = lines[-1] if lines else f"the extraction exited with {extract.returncode}"
                raise MrcError(f"cannot export commit {full[:8]} of {self.root}: {reason}")
            if archive.wait() != 0:
                err.seek(0)
                raise self._error(args, err.read())
        return target

    def file_at(self, sha: str, path: str) -> bytes:
        """Return the content of file ``path`` (relative to the repository root) at ``sha``.

        Raises :class:`~core.errors.NotFound` when the file does not exist
        there, :class:`CommitNotFound` for an unknown commit.
        """
        full = self.resolve(sha)
        rel = path.lstrip("/")
        found = self._run(["rev-parse", "--verify", "--quiet", f"{full}:{rel}"], check=False)
        blob = found.stdout.decode().strip()
        if found.returncode != 0 or not blob:
            err = self._error(["rev-parse"], found.stderr)
            if isinstance(err, UnreadableObject):
                raise err
            raise NotFound(f"{rel} does not exist at commit {full[:8]} in {self.root}")
        result = self._run(["cat-file", "blob", blob], check=False)
        if result.returncode != 0:
            raise UnreadableObject(
                f"git cannot read {rel} at commit {full[:8]} of {self.root}; the repository "
                "may be corrupt or incomplete: run `git fsck` there"
            )
        return result.stdout

    # ------------------------------------------------------------------ writes

    def commit_worktree(
        self, tree: Path, message: str, *, name: str, email: str
    ) -> tuple[str, tuple[str, ...]] | None:
        """Commit every change of worktree ``tree`` (``git add -A``) on top of its HEAD.

        Author and committer are ``name <email>``, given with ``-c`` so that no
        global git configuration is needed (``GIT_AUTHOR_*``/``GIT_COMMITTER_*``
        variables of the console are not passed on); hooks and signing are off.
        ``.gitignore`` is honoured. Returns (full sha of the new commit, the
        paths it changed, sorted), or None when nothing changed (no commit is
        made). Raises :class:`~core.errors.MrcError` when git fails.
        """
        self._run(["add", "-A"], where=tree)
        changed = self._run(["diff", "--cached", "--name-only", "-z"], where=tree).stdout
        files = tuple(sorted(p for p in changed.decode("utf-8", "replace").split("\0") if p))
        if not files:
            return None
        env = {
            key: value
            for key, value in self._env.items()
            if not key.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))
        }
        identity = ["-c", f"user.name={name}", "-c", f"user.email={email}"]
        self._run(
            [*identity, "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false",
             "commit", "--quiet", "--no-verify", "--cleanup=whitespace", "-F", "-"],
            input=message.encode("utf-8"),
            where=tree,
            env=env,
        )  # fmt: skip
        sha = self._run(["rev-parse", "--verify", "HEAD^{commit}"], where=tree).stdout
        return sha.decode().strip(), files

    def create_branch(self, name: str, sha: str) -> None:
        """Create local branch ``name`` at commit ``sha`` (never moves an existing one).

        Raises :class:`~core.errors.Conflict` when the branch exists,
        :class:`~core.errors.MrcError` when ``name`` is not a valid branch
        name or git fails.
        """
        from core.errors import Conflict

        valid = self._run(["check-ref-format", "--branch", name], check=False)
        if valid.returncode != 0 or name.startswith("-"):
            raise MrcError(f"{name!r} is not a valid branch name")
        result = self._run(["branch", "--no-track", name, sha], check=False)
        if result.returncode != 0:
            if b"already exists" in result.stderr:
                raise Conflict(f"branch {name} already exists in {self.root}")
            raise self._error(["branch"], result.stderr)

    def branch_sha(self, name: str) -> str:
        """Return the commit local branch ``name`` points at, or "" when there is no such branch."""
        result = self._run(
            ["rev-parse", "--verify", "--quiet", f"refs/heads/{name}^{{commit}}"], check=False
        )
        return result.stdout.decode().strip() if result.returncode == 0 else ""

    def remote_url(self, remote: str = "origin") -> str:
        """Return the URL of ``remote`` as configured ("" when there is no such remote)."""
        result = self._run(["remote", "get-url", remote], check=False)
        return result.stdout.decode("utf-8", "replace").strip() if result.returncode == 0 else ""

    def fetch_branch(self, branch: str, remote: str = "origin") -> str:
        """Fetch ``branch`` of ``remote`` and return the sha it points at; no local ref is left.

        The commits are fetched into a private ref that is deleted again, so
        the caller decides (after checking them) whether a branch points at
        them. Raises :class:`~core.errors.NotFound` when the remote has no
        such branch, :class:`~core.errors.BackendUnavailable` when it cannot
        be reached, :class:`~core.errors.MrcError` when git fails otherwise.
        """
        private = f"refs/mrc/fetched/{branch}"
        result = self._run(
            ["fetch", "--no-tags", "--quiet", "--no-write-fetch-head", remote,
             f"+refs/heads/{branch}:{private}"],
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            text = result.stderr.decode("utf-8", "replace").strip()
            last = text.splitlines()[-1] if text else "no error output"
            low = text.lower()
            if "couldn't find remote ref" in low:
                raise NotFound(f"{remote} has no branch {branch}: the command did not push it")
            if "could not read from remote" in low or "unable to access" in low:
                raise BackendUnavailable(f"cannot fetch {branch} from {remote}: {last}")
            raise MrcError(f"cannot fetch {branch} from {remote}: {last}")
        try:
            return self.resolve(private)
        finally:
            self._run(["update-ref", "-d", private], check=False)

    def changed_paths(self, base: str, head: str) -> tuple[str, ...]:
        """Return the paths that differ between commits ``base`` and ``head``, sorted.

        Raises :class:`CommitNotFound` when either does not name a commit.
        """
        first, second = self.resolve(base), self.resolve(head)
        out = self._run(["diff", "--name-only", "-z", first, second]).stdout
        return tuple(sorted(p for p in out.decode("utf-8", "replace").split("\0") if p))

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Return True when commit ``ancestor`` is ``descendant`` or one of its ancestors.

        Raises :class:`CommitNotFound` when either does not name a commit.
        """
        first, second = self.resolve(ancestor), self.resolve(descendant)
        result = self._run(["merge-base", "--is-ancestor", first, second], check=False)
        if result.returncode in (0, 1):
            return result.returncode == 0
        raise self._error(["merge-base"], result.stderr)


class LogCursor:
    """Reads one ``git log`` process page by page (see :meth:`Repository.cursor`).

    Only the current page is held in memory; git itself blocks on the pipe
    between pages. ``exhausted`` becomes True after the last commit was read.
    """

    def __init__(
        self, repository: Repository, argv: list[str], search: str | None, skip: int
    ) -> None:
        self._repository = repository
        self._needle = search.strip().lower() if search and search.strip() else None
        self._to_skip = max(skip, 0)
        self._lock = threading.Lock()
        self._tokens: deque[bytes] = deque()
        self._partial = b""
        self._eof = False
        self.exhausted = False
        self._err: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=self._err,
                stdin=subprocess.DEVNULL,
                env=repository._env,
            )
        except OSError as exc:
            self._err.close()
            raise BackendUnavailable(f"cannot run git in {repository.root}: {exc}") from exc

    def _fill(self) -> None:
        """Read more output into tokens; on end of output check git's exit status."""
        assert self._proc is not None and self._proc.stdout is not None
        chunk = os.read(self._proc.stdout.fileno(), 65536)
        if chunk:
            parts = (self._partial + chunk).split(b"\0")
            self._partial = parts.pop()
            self._tokens.extend(parts)
            return
        self._eof = True
        if self._partial:
            self._tokens.append(self._partial)
            self._partial = b""
        code = self._proc.wait()
        if code != 0:
            self._err.seek(0)
            raise self._repository._error(["log"], self._err.read())

    def next_page(self, limit: int = PAGE_SIZE) -> list[Commit]:
        """Return up to ``limit`` further commits (fewer only at the end of history).

        Raises :class:`UnreadableObject` or :class:`~core.errors.MrcError` if
        git fails while reading.
        """
        commits: list[Commit] = []
        with self._lock:
            while len(commits) < limit and not self.exhausted:
                if len(self._tokens) < _NFIELDS:
                    if self._eof or self._proc is None:
                        self.exhausted = True
                        self.close()
                        break
                    self._fill()
                    continue
                record = [
                    self._tokens.popleft().decode("utf-8", errors="replace")
                    for _ in range(_NFIELDS)
                ]
                commit = _commit_from_tokens(record)
                if commit is None or (self._needle and not _matches(commit, self._needle)):
                    continue
                if self._to_skip:
                    self._to_skip -= 1
                    continue
                commits.append(commit)
        return commits

    def close(self) -> None:
        """Stop the git process (if still running) and free its resources; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            if proc.stdout is not None:
                proc.stdout.close()
            proc.wait()
        if not self._err.closed:
            self._err.close()

    def __enter__(self) -> LogCursor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
