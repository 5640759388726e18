"""Sample git repositories for tests, built with the real ``git`` command.

Every helper uses a fixed author, committer and clock so that commit shas are
the same on every machine (snapshot tests rely on it). Nothing here reads the
user's git configuration: ``HOME`` and ``GIT_CONFIG_*`` are pointed away.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: First commit time of every sample repository (2026-01-01T00:00:00Z).
BASE_TIME = 1767225600

#: Commit subjects that must be displayed literally and stay inert.
HOSTILE_SUBJECTS: tuple[bytes, ...] = (
    b"[bold]markup[/bold] and [@click=app.quit]click me[/]",
    b"ansi \x1b[31mred\x1b[0m and osc \x1b]0;pwned title\x07 done",
    b"long " + b"x" * 10_000,
    b"invalid utf-8 \xff\xfe\xc3 bytes",
    "rtl \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 text".encode(),
)


def git_env(when: int = BASE_TIME, author: str = "Ada Lovelace") -> dict[str, str]:
    """Return an environment for deterministic git commands at unix time ``when``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    email = author.split()[0].lower() + "@example.com"
    env.update(
        GIT_AUTHOR_NAME=author,
        GIT_AUTHOR_EMAIL=email,
        GIT_COMMITTER_NAME=author,
        GIT_COMMITTER_EMAIL=email,
        GIT_AUTHOR_DATE=f"@{when} +0000",
        GIT_COMMITTER_DATE=f"@{when} +0000",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    return env


def git(repo: Path | str, *args: str, when: int = BASE_TIME, author: str = "Ada Lovelace") -> str:
    """Run ``git -C repo args`` deterministically; return stdout, raise CalledProcessError."""
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        env=git_env(when, author),
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def init_repo(path: Path | str, branch: str = "main") -> Path:
    """Create an empty repository at ``path`` (made if missing); return its path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    return path


def commit_files(
    repo: Path | str,
    files: dict[str, str | bytes],
    message: str | bytes,
    *,
    when: int,
    author: str = "Ada Lovelace",
) -> str:
    """Write ``files`` (path -> content), commit them with ``message``; return the sha."""
    repo = Path(repo)
    for name, content in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        git(repo, "add", "--", name)
    raw = message if isinstance(message, bytes) else message.encode()
    msg_file = repo / ".git" / "SAMPLE_MSG"
    msg_file.write_bytes(raw)
    git(repo, "commit", "-q", "--allow-empty", "--cleanup=verbatim", "-F", str(msg_file),
        when=when, author=author)  # fmt: skip
    msg_file.unlink()
    sha = git(repo, "rev-parse", "HEAD")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        sha = _rewrite_message(repo, sha, raw, when)
    return sha


def _rewrite_message(repo: Path, sha: str, raw: bytes, when: int) -> str:
    """Replace the message of HEAD commit ``sha`` by the exact bytes ``raw``; return the new sha.

    ``git commit`` re-encodes a message that is not UTF-8 as if it were
    Latin-1; tests of invalid UTF-8 need the bytes stored unchanged.
    """
    body = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "commit", sha], check=True, capture_output=True,
        env=git_env(when),
    ).stdout  # fmt: skip
    header = body.split(b"\n\n", 1)[0]
    new = subprocess.run(
        ["git", "-C", str(repo), "hash-object", "-t", "commit", "-w", "--stdin"],
        input=header + b"\n\n" + raw, check=True, capture_output=True, env=git_env(when),
    ).stdout.decode().strip()  # fmt: skip
    git(repo, "update-ref", "HEAD", new, sha)
    return new


@dataclass
class HistoryRepo:
    """A linear repository made by :func:`make_history_repo`.

    ``shas`` are oldest first; ``tags`` maps tag name -> sha; ``branches``
    maps extra branch name -> sha.
    """

    path: Path
    shas: list[str]
    tags: dict[str, str] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)


AUTHORS = ("Ada Lovelace", "Grace Hopper", "Alan Turing")


def make_history_repo(path: Path | str, commits: int = 12) -> HistoryRepo:
    """Make a linear history of ``commits`` commits one hour apart.

    Commit ``i`` (0-based) has subject ``"change i: ..."``, author
    ``AUTHORS[i % 3]`` and edits ``data/file{i % 4}.txt``. Tag ``v1.0`` is on
    commit 2 (annotated) and ``v1.1`` on commit ``commits - 2`` (lightweight);
    branch ``feature`` points at commit ``commits - 3``. Return a
    :class:`HistoryRepo`.
    """
    path = init_repo(path)
    shas = []
    for i in range(commits):
        shas.append(
            commit_files(
                path,
                {f"data/file{i % 4}.txt": f"line for change {i}\n" * (i + 1)},
                f"change {i}: update file{i % 4}\n\nBody of change {i}.\n",
                when=BASE_TIME + i * 3600,
                author=AUTHORS[i % len(AUTHORS)],
            )
        )
    repo = HistoryRepo(path=path, shas=shas)
    if commits >= 3:
        git(path, "tag", "-a", "v1.0", "-m", "release 1.0", shas[2], when=BASE_TIME + 7200)
        repo.tags["v1.0"] = shas[2]
        git(path, "branch", "feature", shas[commits - 3])
        repo.branches["feature"] = shas[commits - 3]
    if commits >= 2:
        git(path, "tag", "v1.1", shas[commits - 2])
        repo.tags["v1.1"] = shas[commits - 2]
    return repo


def make_hostile_repo(path: Path | str) -> HistoryRepo:
    """Make one commit per entry of :data:`HOSTILE_SUBJECTS` (in that order); return it."""
    path = init_repo(path)
    shas = [
        commit_files(path, {"f.txt": f"{i}\n"}, subject + b"\n", when=BASE_TIME + i * 60)
        for i, subject in enumerate(HOSTILE_SUBJECTS)
    ]
    return HistoryRepo(path=path, shas=shas)


# --------------------------------------------------------------------------
# A small model repository whose tests pass at one commit and fail at a later one

_MODEL_V1 = '''\
"""A tiny threshold classifier."""

THRESHOLD = 0.5


def predict(x: float) -> int:
    """Return 1 when x is above the threshold, else 0."""
    return 1 if x > THRESHOLD else 0
'''

_MODEL_V2 = _MODEL_V1.replace("THRESHOLD = 0.5", "THRESHOLD = 0.9  # retuned")

_TESTS = """\
import json
import os

from model import predict

SAMPLES = [(i / 20, 1 if i / 20 > 0.5 else 0) for i in range(20)]


def _accuracy():
    return sum(predict(x) == y for x, y in SAMPLES) / len(SAMPLES)


def test_accuracy_and_metrics():
    accuracy = _accuracy()
    path = os.environ.get("MRC_METRICS_FILE")
    if path:
        with open(path, "w") as out:
            json.dump({"accuracy": accuracy, "samples": len(SAMPLES), "note": "text"}, out)
    print("accuracy", accuracy)
    assert accuracy >= 0.9, f"accuracy {accuracy:.2f} below 0.9"


def test_predict_high():
    assert predict(0.95) == 1


def test_predict_low():
    assert predict(0.1) == 0


def test_predict_middle():
    assert predict(0.7) == 1, "0.7 must be classified as 1"
"""


@dataclass
class ModelRepo:
    """The repository made by :func:`make_model_repo`.

    At ``good`` all 4 tests pass and accuracy is 1.0; at ``bad`` two tests
    fail (accuracy 0.6, and ``test_predict_middle``). ``command`` runs the
    tests with this interpreter's pytest. ``tags`` maps tag name -> sha.
    """

    path: Path
    good: str
    bad: str
    command: str
    tags: dict[str, str] = field(default_factory=dict)

    GOOD_ACCURACY = 1.0
    BAD_ACCURACY = 0.6


def pytest_command(*extra: str) -> str:
    """Return a shell command running this interpreter's pytest quietly, without plugins.

    Plugin autoloading is off so the run is fast and independent of what is
    installed in this environment.
    """
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    return "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 " + " ".join(argv)


def make_model_repo(path: Path | str) -> ModelRepo:
    """Make the sample model repository at ``path`` (3 commits); return a :class:`ModelRepo`.

    Commit 1 adds the model and tests (pass), commit 2 edits the README
    (pass, tagged ``v1``), commit 3 retunes the threshold (two tests fail).
    The tests write ``{"accuracy": ..., "samples": 20, "note": "text"}`` to
    ``$MRC_METRICS_FILE`` when set.
    """
    path = init_repo(path)
    commit_files(
        path,
        {"model.py": _MODEL_V1, "tests/test_model.py": _TESTS, "README.md": "# model\n"},
        "Add threshold model and tests\n",
        when=BASE_TIME,
    )
    good = commit_files(
        path, {"README.md": "# model\n\nA threshold classifier.\n"}, "Describe the model\n",
        when=BASE_TIME + 3600,
    )  # fmt: skip
    git(path, "tag", "v1", good)
    bad = commit_files(
        path, {"model.py": _MODEL_V2}, "Retune threshold to 0.9\n", when=BASE_TIME + 7200,
        author="Grace Hopper",
    )  # fmt: skip
    return ModelRepo(path=path, good=good, bad=bad, command=pytest_command(), tags={"v1": good})
