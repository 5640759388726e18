"""Plain data shared by every part of the console.

These dataclasses are the vocabulary between backends, the journal, the
release pipeline, the TUI and the scripting CLI. They hold data only: no I/O,
no behaviour beyond small derived properties. Times are timezone-aware UTC
``datetime`` objects unless a field says otherwise.

The types live in one module per concern (:mod:`~core.domain.source`,
:mod:`~core.domain.runs`, :mod:`~core.domain.progress`,
:mod:`~core.domain.targets`, :mod:`~core.domain.metrics`,
:mod:`~core.domain.journal`). Import them from this package: a module is
loaded on the first use of one of its names, so a program builds only the
vocabulary it uses (the console's first frame needs commits, test runs and
targets, not drift or the journal).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types as mypy sees them; at run time see __getattr__
    from core.domain.journal import JournalEntry as JournalEntry
    from core.domain.journal import Outcome as Outcome
    from core.domain.journal import Release as Release
    from core.domain.journal import ReleaseStep as ReleaseStep
    from core.domain.metrics import Alert as Alert
    from core.domain.metrics import DriftBand as DriftBand
    from core.domain.metrics import DriftScore as DriftScore
    from core.domain.metrics import Histogram as Histogram
    from core.domain.metrics import Marker as Marker
    from core.domain.metrics import Series as Series
    from core.domain.progress import Progress as Progress
    from core.domain.runs import OutputLine as OutputLine
    from core.domain.runs import RunStatus as RunStatus
    from core.domain.runs import TestFailure as TestFailure
    from core.domain.runs import TestRun as TestRun
    from core.domain.source import Commit as Commit
    from core.domain.source import CommitDetail as CommitDetail
    from core.domain.source import FileStat as FileStat
    from core.domain.targets import Artifact as Artifact
    from core.domain.targets import Condition as Condition
    from core.domain.targets import Image as Image
    from core.domain.targets import Permission as Permission
    from core.domain.targets import Phase as Phase
    from core.domain.targets import PodInfo as PodInfo
    from core.domain.targets import Revision as Revision
    from core.domain.targets import RollbackPreview as RollbackPreview
    from core.domain.targets import RolloutState as RolloutState
    from core.domain.targets import TargetDetail as TargetDetail
    from core.domain.targets import TargetEvent as TargetEvent

#: The module (of this package) that defines each name the package exports.
_HOME: dict[str, str] = {
    "Alert": "metrics",
    "Artifact": "targets",
    "Commit": "source",
    "CommitDetail": "source",
    "Condition": "targets",
    "DriftBand": "metrics",
    "DriftScore": "metrics",
    "FileStat": "source",
    "Histogram": "metrics",
    "Image": "targets",
    "JournalEntry": "journal",
    "Marker": "metrics",
    "Outcome": "journal",
    "OutputLine": "runs",
    "Permission": "targets",
    "Phase": "targets",
    "PodInfo": "targets",
    "Progress": "progress",
    "Release": "journal",
    "ReleaseStep": "journal",
    "Revision": "targets",
    "RollbackPreview": "targets",
    "RolloutState": "targets",
    "RunStatus": "runs",
    "Series": "metrics",
    "TargetDetail": "targets",
    "TargetEvent": "targets",
    "TestFailure": "runs",
    "TestRun": "runs",
}


def __getattr__(name: str) -> Any:
    """Return the exported type ``name``, importing its module on first use.

    Raises AttributeError for a name the package does not export.
    """
    try:
        module = _HOME[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Return the module's names, the exported types included."""
    return sorted({*globals(), *_HOME})
