"""Turn outside text into inert, literal terminal text.

Commit subjects, test output, container logs and Kubernetes events may contain
Textual markup (``[@click=app.quit]``), ANSI or OSC escape sequences, invalid
UTF-8 or absurdly long lines. Everything from outside reaches a widget through
:func:`literal`, which returns a :class:`rich.text.Text` (never parsed as
markup) built from :func:`core.sanitize.clean_line` (control sequences
stripped, length bounded).
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.text import Text

from core.sanitize import clean_line


def literal(value: object, style: str = "", max_len: int = 2000) -> Text:
    """Return ``value`` as a plain Text: no markup, no escapes, at most ``max_len`` cells."""
    raw = value if isinstance(value, str | bytes) else str(value)
    return Text(clean_line(raw, max_len=max_len), style=style, no_wrap=True, end="")


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """Return a compact age like ``42s``, ``5m``, ``3h``, ``12d`` (``-`` when unknown)."""
    if when is None:
        return "-"
    now = now or datetime.now(UTC)
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def short_time(when: datetime | None) -> str:
    """Return ``YYYY-MM-DD HH:MM`` in UTC, or ``-``."""
    if when is None:
        return "-"
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
