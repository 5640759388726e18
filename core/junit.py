"""Parse JUnit XML reports (pytest ``--junitxml`` and compatible tools).

Counts come from the ``<testcase>`` elements (the suite attributes are used
only when a report lists no test case). A test case is failed when it holds a
``<failure>``, an error when it holds an ``<error>`` (pytest reports setup,
teardown and collection errors this way), skipped when it holds
``<skipped>`` (including pytest's xfail) and passed otherwise.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from core.domain import TestFailure
from core.errors import MrcError

#: Reports larger than this are refused (a runaway test writing XML forever).
MAX_REPORT_BYTES = 50_000_000
#: Failure details longer than this are cut.
MAX_DETAILS_CHARS = 20_000


class InvalidReport(MrcError):
    """The JUnit XML file is malformed, too large, or not a JUnit report."""


@dataclass
class JUnitReport:
    """Counts and failures of one JUnit report. ``failures`` holds failures and errors."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[TestFailure] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Number of test cases in the report."""
        return self.passed + self.failed + self.errors + self.skipped


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _int_attr(element: ET.Element, name: str) -> int:
    try:
        return max(int(float(element.get(name, "0") or 0)), 0)
    except ValueError:
        return 0


def _case_name(case: ET.Element) -> str:
    name = case.get("name", "") or "<unnamed>"
    classname = case.get("classname", "")
    return f"{classname}.{name}" if classname else name


def _failure(case: ET.Element, child: ET.Element, kind: str) -> TestFailure:
    text = (child.text or "").strip()
    message = (child.get("message") or "").strip()
    if not message:
        message = text.splitlines()[0] if text else kind
    if len(text) > MAX_DETAILS_CHARS:
        text = text[:MAX_DETAILS_CHARS] + "\n[details truncated]"
    return TestFailure(name=_case_name(case), message=message, kind=kind, details=text)


def parse_junit_xml(data: bytes | str) -> JUnitReport:
    """Return the counts and failures of the JUnit XML document ``data``.

    Accepts a ``<testsuites>`` root (any nesting of ``<testsuite>``) or a
    single ``<testsuite>`` root. Raises :class:`InvalidReport` for malformed
    XML or another root element.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InvalidReport(f"malformed JUnit XML: {exc}") from exc
    if _local(root.tag) not in ("testsuites", "testsuite"):
        raise InvalidReport(f"not a JUnit report: root element is <{_local(root.tag)}>")
    report = JUnitReport()
    cases = [el for el in root.iter() if _local(el.tag) == "testcase"]
    for case in cases:
        children = {_local(child.tag): child for child in reversed(list(case))}
        if "failure" in children:
            report.failed += 1
            report.failures.append(_failure(case, children["failure"], "failure"))
        elif "error" in children:
            report.errors += 1
            report.failures.append(_failure(case, children["error"], "error"))
        elif "skipped" in children:
            report.skipped += 1
        else:
            report.passed += 1
    if not cases:
        suites = [el for el in root.iter() if _local(el.tag) == "testsuite"] or [root]
        leaves = [s for s in suites if not any(_local(c.tag) == "testsuite" for c in s)]
        for suite in leaves:
            failed = _int_attr(suite, "failures")
            errors = _int_attr(suite, "errors")
            skipped = _int_attr(suite, "skipped") + _int_attr(suite, "disabled")
            report.failed += failed
            report.errors += errors
            report.skipped += skipped
            report.passed += max(_int_attr(suite, "tests") - failed - errors - skipped, 0)
    return report


def parse_junit_file(path: str | Path) -> JUnitReport:
    """Return the report stored in file ``path``.

    Raises :class:`InvalidReport` when it is malformed or larger than
    :data:`MAX_REPORT_BYTES`, ``OSError`` when it cannot be read.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_REPORT_BYTES:
        raise InvalidReport(f"JUnit report {path} is too large ({size} bytes)")
    return parse_junit_xml(path.read_bytes())
