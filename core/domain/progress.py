"""The steps a long operation (build, push, rollout, release) reports as it goes.

Part of :mod:`core.domain` (import the names from there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Progress:
    """A step of a long operation (build, push, rollout, release).

    ``fraction`` is in [0, 1] when the amount of work is known, else None.
    ``detail`` carries a sub-item, e.g. a layer id during a push.
    ``result`` is set on the final item of an operation that produces a value
    (e.g. the built :class:`Image`), else None.
    """

    step: str
    message: str = ""
    fraction: float | None = None
    detail: str = ""
    level: str = "info"  # "info", "warning" or "error"
    result: Any = None
