"""The one duration grammar of the console: configuration, queries and the guard.

A duration is either

* one or more ``<number><unit>`` parts written together, with units ``ms``,
  ``s``, ``m``, ``h``, ``d`` (24 h) and ``w`` (7 d), e.g. ``"250ms"``,
  ``"30s"``, ``"5m"``, ``"1h30m"``, ``"1.5h"``, ``"2d"``; the parts add up; or
* a bare number, meaning seconds: ``"90"`` (and a TOML number such as
  ``duration = 90``).

Numbers are decimal, without sign or exponent, so a duration is never
negative. Surrounding whitespace is ignored; whitespace between parts is not
allowed. :func:`parse` reads that grammar and :func:`format` writes it back:
``parse(format(x)) == x`` for every finite non-negative float ``x``.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from decimal import Context, Decimal, localcontext
from fractions import Fraction

#: Seconds per unit, exact.
UNITS: dict[str, Fraction] = {
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
    "d": Fraction(86400),
    "w": Fraction(604800),
}
#: Examples quoted in error messages.
EXAMPLES = '"250ms", "30s", "5m", "1h30m", "2d" or a number of seconds'

_NUMBER = r"\d+(?:\.\d+)?"
_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d|w)", re.ASCII)
_BARE = re.compile(_NUMBER, re.ASCII)
# Units format() writes, largest first (weeks are read but never written).
_FORMAT_UNITS = (("d", 86400), ("h", 3600), ("m", 60))


class DurationError(ValueError):
    """A text that is not a duration; the message quotes it and gives examples."""


def parse(text: str) -> float:
    """Return the number of seconds ``text`` denotes (see the module grammar).

    The parts are added exactly and rounded once, so ``"250ms"`` is exactly
    ``0.25`` and ``"1h30m"`` exactly ``5400.0``. Raises :class:`DurationError`
    for anything else: empty text, a number without unit after another part
    (``"1h30"``), an unknown unit, a sign, spaces between parts, or a value
    too large for a float.
    """
    stripped = text.strip()
    if not stripped:
        raise DurationError(f"empty duration (expected e.g. {EXAMPLES})")
    total = Fraction(0)
    if _BARE.fullmatch(stripped):
        total = Fraction(stripped)
    else:
        position = 0
        for match in _PART.finditer(stripped):
            if match.start() != position:
                break
            total += Fraction(match.group(1)) * UNITS[match.group(2)]
            position = match.end()
        if position != len(stripped):
            raise DurationError(f'invalid duration "{text}" (expected e.g. {EXAMPLES})')
    try:
        return float(total)
    except OverflowError:
        raise DurationError(f'duration "{text}" is too long') from None


def format(seconds: float) -> str:
    """Return ``seconds`` in the module grammar, e.g. ``5400.0 -> "1h30m"``, ``0.25 -> "250ms"``.

    Whole seconds are split into days, hours, minutes and seconds; a
    fraction goes into the seconds part, or into milliseconds below one
    second. The text parses back to exactly ``seconds``. Raises
    :class:`DurationError` for a negative, NaN or infinite value.
    """
    if isinstance(seconds, bool) or not math.isfinite(seconds) or seconds < 0:
        raise DurationError(f"not a duration: {seconds!r} seconds")
    # Exact decimal arithmetic: enough digits for any float written out in full.
    with localcontext(Context(prec=1000)):
        exact = Decimal(repr(float(seconds)))  # the shortest decimal that reads back as it
        whole = int(exact)
        fraction = exact - whole
        if whole == 0:
            return f"{_plain(fraction * 1000)}ms" if fraction else "0s"
        parts = []
        rest = whole
        for unit, size in _FORMAT_UNITS:
            count, rest = divmod(rest, size)
            if count:
                parts.append(f"{count}{unit}")
        if rest or fraction:
            parts.append(f"{_plain(rest + fraction)}s")
        return "".join(parts)


def seconds(value: float | int | str | timedelta) -> float:
    """Return ``value`` in seconds: a number is seconds, a string is :func:`parse`\\ d.

    Raises :class:`DurationError` for a string outside the grammar and for a
    negative, NaN or infinite number, TypeError for any other type.
    """
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, str):
        return parse(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a duration, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise DurationError(f"expected a non-negative duration, got {value}")
    return float(value)


def _plain(number: Decimal) -> str:
    """Return ``number`` in positional notation without trailing zeros ("1.5", "250")."""
    text = f"{number:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
