"""Exceptions raised by ``core``.

Every error carries a message written for the operator: it says what failed
and, where possible, what to do about it. Callers show ``str(error)`` as is.
"""

from __future__ import annotations


class MrcError(Exception):
    """Base class of every error ``core`` raises on purpose."""


class ConfigError(MrcError):
    """The configuration file is missing, unreadable or invalid.

    ``problems`` holds one human-readable line per problem found.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration {path}:\n{lines}")


class BackendUnavailable(MrcError):
    """A backend (git, Docker, Kubernetes, Prometheus, a process) cannot be reached."""


class InvalidResponse(BackendUnavailable):
    """A backend answered, but not with what its API promises.

    Raised by the metrics sources for a wrong JSON shape, an HTML page where
    an API answer belongs, a non-numeric value, NaN or an infinity where a
    count is required, a negative count or cumulative buckets that decrease.
    A subclass of :class:`BackendUnavailable`: whoever handles an unreachable
    backend handles a garbled one the same way (the data is not usable).
    An empty answer is not an error: it is "no data".
    """


class NotFound(MrcError):
    """A commit, revision, deployment, image or model that does not exist."""


class Conflict(MrcError):
    """A write raced with somebody else's change and was not applied."""


class PermissionDenied(MrcError):
    """The backend refused the action for the current credentials."""


class InvalidQuery(MrcError):
    """A metrics query was rejected by the metrics backend."""


class OperationFailed(MrcError):
    """A long operation (test run, build, push, rollout) ran and failed."""


class Cancelled(MrcError):
    """The operation was cancelled by the user."""


class ReadOnly(MrcError):
    """A mutating action was requested in read-only mode."""
