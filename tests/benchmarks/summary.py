"""One summary table of every benchmark measure recorded in this run.

Benchmarks call :func:`record` with a measured value, the baseline measured
in the same run and the goal ratio; ``python -m tests.benchmarks`` calls
:func:`print_table` once at the end. Nothing here asserts: a goal not met is
reported, not raised.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    """One recorded measure: ``value`` against ``baseline_value``."""

    measure: str
    baseline: str
    value: float
    baseline_value: float
    goal: float
    unit: str = "x"

    @property
    def ratio(self) -> float:
        """Return value / baseline_value (``inf`` when the baseline is 0)."""
        if self.baseline_value == 0:
            return float("inf") if self.value else 1.0
        return self.value / self.baseline_value

    @property
    def met(self) -> bool:
        """Return whether the ratio is within the goal (ratio <= goal)."""
        return self.ratio <= self.goal


_RECORDED: list[Measure] = []


def record(
    measure: str,
    baseline: str,
    value: float,
    baseline_value: float,
    goal: float,
    unit: str = "x",
) -> Measure:
    """Record ``value / baseline_value`` against ``goal``; return the measure.

    ``unit`` is how the ratio is shown ("x" for a plain ratio). Met when the
    ratio is <= ``goal``. Never raises on a zero baseline (ratio ``inf``).
    """
    entry = Measure(measure, baseline, float(value), float(baseline_value), float(goal), unit)
    _RECORDED.append(entry)
    return entry


def recorded() -> list[Measure]:
    """Return a copy of the measures recorded so far, in order."""
    return list(_RECORDED)


def clear() -> None:
    """Forget every recorded measure (for tests of this module)."""
    _RECORDED.clear()


def format_table(measures: list[Measure]) -> str:
    """Return the summary table of ``measures`` as text ("" when empty)."""
    if not measures:
        return ""
    header = ("measure", "baseline", "ratio", "goal", "result")
    rows = [
        (
            m.measure,
            m.baseline,
            f"{m.ratio:.2f}{m.unit}",
            f"<= {m.goal:g}{m.unit}",
            "met" if m.met else "not met",
        )
        for m in measures
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table() -> None:
    """Print the summary table of every recorded measure (nothing if none)."""
    table = format_table(recorded())
    if table:
        print("\n=== summary ===")
        print(table, flush=True)
