"""The result of a retrain: a commit on a ``retrain/<model>/<UTC timestamp>`` branch.

:func:`commit_result` commits what the command changed in the worktree
(executors that hand the files back); :func:`fetch_result` takes the commit
a remote command pushed (executors that :attr:`publish the branch
<core.retrain.base.Executor.publishes_branch>`). Either way the commit's
message records why and how it was made as git trailers::

    Retrain churn on 6h of data up to 2024-05-01T12:00:00Z

    Retrained by the churn retrain command (local executor) from a1b2c3d4.

    Retrain-Model: churn
    Retrain-Base: a1b2c3d4...
    Retrain-Trigger-Score: 0.888
    Retrain-Trigger-Method: psi
    Retrain-Trigger-Reference: training
    Retrain-Window: 2024-05-01T06:00:00Z/2024-05-01T12:00:00Z
    Retrain-Started-By: alice@bastion
    Retrain-Reason: drift alert
    Retrain-Executor: local
    Retrain-Metric-accuracy: 0.91

and its author is the operator who started it (:func:`core.audit.whoami`),
without any global git configuration. All git work goes through
:class:`core.git.Repository`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from core import audit, durations
from core.errors import Conflict, OperationFailed
from core.git import Repository
from core.retrain.base import BRANCH_PREFIX, RetrainJob

#: Branch names tried after the first one is taken: ``<branch>-2`` ... ``<branch>-<N>``.
MAX_SUFFIX = 100
#: The message of a command that changed nothing.
NOTHING_CHANGED = "the retrain command changed no file; nothing committed"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TRAILER_UNSAFE = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True, slots=True)
class Committed:
    """Where the retrained model landed."""

    commit: str
    """Full sha of the retrained commit."""
    branch: str
    """The branch that points at it."""
    files: tuple[str, ...]
    """The paths it changed, sorted."""
    note: str = ""
    """Something the operator should read ("" when there is nothing to say): the branch
    was taken and another name was used."""


def branch_name(model: str, when: datetime) -> str:
    """Return ``retrain/<model>/<YYYYmmddTHHMMSSZ>`` for a retrain started at ``when`` (UTC).

    Characters a branch name may not hold are replaced by ``-``. Never raises.
    """
    safe = _UNSAFE.sub("-", model).strip(".-") or "model"
    return f"{BRANCH_PREFIX}{safe}/{when.strftime('%Y%m%dT%H%M%SZ')}"


def _trailer(value: str) -> str:
    """Return ``value`` as one trailer line's value (control characters and breaks -> space)."""
    return _TRAILER_UNSAFE.sub(" ", value).strip()


def trailers(job: RetrainJob, executor: str, metrics: dict[str, float]) -> list[tuple[str, str]]:
    """Return the (key, value) trailers that record ``job``, in order; never raises."""
    trigger = job.trigger
    env = job.environment()
    score = "unknown" if trigger.score is None else f"{trigger.score:.6g}"
    pairs = [
        ("Retrain-Model", job.model),
        ("Retrain-Base", job.commit),
        ("Retrain-Trigger-Score", score),
        ("Retrain-Trigger-Method", trigger.method or "unknown"),
        ("Retrain-Trigger-Reference", trigger.reference or "unknown"),
        ("Retrain-Window", f"{env['MRC_RETRAIN_WINDOW_START']}/{env['MRC_RETRAIN_WINDOW_END']}"),
        ("Retrain-Started-By", trigger.started_by),
        ("Retrain-Reason", trigger.reason),
        ("Retrain-Executor", executor),
    ]
    pairs += [
        (f"Retrain-Metric-{_UNSAFE.sub('-', n)}", f"{v:.6g}") for n, v in sorted(metrics.items())
    ]
    return [(key, _trailer(value)) for key, value in pairs if _trailer(value)]


def message(job: RetrainJob, executor: str, metrics: dict[str, float]) -> str:
    """Return the commit message of ``job``'s result: summary, a sentence, the trailers."""
    span = durations.format((job.window_end - job.window_start).total_seconds())
    end = job.environment()["MRC_RETRAIN_WINDOW_END"]
    summary = f"Retrain {job.model} on {span} of data up to {end}"
    body = (
        f"Retrained by the {job.model} retrain command ({executor} executor) from {job.commit[:8]}."
    )
    lines = "\n".join(f"{key}: {value}" for key, value in trailers(job, executor, metrics))
    return f"{_trailer(summary)}\n\n{body}\n\n{lines}\n"


def _place_branch(repo: Repository, branch: str, sha: str) -> tuple[str, str]:
    """Create ``branch`` (or ``branch-2``, ``-3``... when taken) at ``sha``; return (name, note).

    Raises OperationFailed when every name up to :data:`MAX_SUFFIX` is taken,
    MrcError when git fails.
    """
    for n in range(1, MAX_SUFFIX + 1):
        name = branch if n == 1 else f"{branch}-{n}"
        try:
            repo.create_branch(name, sha)
        except Conflict:
            continue
        note = "" if n == 1 else f"branch {branch} already exists: the commit is on {name}"
        return name, note
    raise OperationFailed(
        f"branches {branch} to {branch}-{MAX_SUFFIX} all exist; commit {sha[:8]} is on no branch"
    )


def commit_result(
    repo: Repository, job: RetrainJob, executor: str, metrics: dict[str, float]
) -> Committed:
    """Commit what the command changed in ``job.workdir`` and put ``job.branch`` on it.

    The author is the operator (:func:`core.audit.whoami`). Raises
    OperationFailed (:data:`NOTHING_CHANGED`) when no file changed (no
    commit is made), or when no branch name is free; MrcError when git fails.
    """
    who = audit.whoami()
    user = audit.current_user()
    email = f"{_UNSAFE.sub('-', user).strip('-') or 'mrc'}@{who.host or 'localhost'}"
    made = repo.commit_worktree(
        job.workdir, message(job, executor, metrics), name=_trailer(who.user) or "mrc", email=email
    )
    if made is None:
        raise OperationFailed(NOTHING_CHANGED)
    sha, files = made
    name, note = _place_branch(repo, job.branch, sha)
    return Committed(sha, name, files, note)


def fetch_result(repo: Repository, job: RetrainJob) -> Committed:
    """Fetch ``job.branch`` the command pushed and check it; return it as a local branch.

    The branch must descend from ``job.commit`` and differ from it. Raises
    NotFound when the remote has no such branch (the command did not push),
    OperationFailed when it does not descend from the base commit or changes
    nothing, BackendUnavailable when the remote cannot be reached.
    """
    sha = repo.fetch_branch(job.branch)
    if not repo.is_ancestor(job.commit, sha):
        raise OperationFailed(
            f"branch {job.branch} ({sha[:8]}) does not descend from {job.commit[:8]}, the "
            "commit the retrain started from: not taken"
        )
    files = repo.changed_paths(job.commit, sha)
    if sha == job.commit or not files:
        raise OperationFailed(NOTHING_CHANGED)
    name, note = _place_branch(repo, job.branch, sha)
    return Committed(sha, name, files, note)
