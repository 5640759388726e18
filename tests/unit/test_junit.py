"""JUnit XML parsing: counts, failures and their messages, malformed reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.junit import InvalidReport, parse_junit_file, parse_junit_xml

PYTEST_STYLE = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests">
  <testsuite name="pytest" errors="1" failures="1" skipped="2" tests="6" time="0.1">
    <testcase classname="tests.test_m" name="test_ok" time="0.001"/>
    <testcase classname="tests.test_m" name="test_bad" time="0.001">
      <failure message="AssertionError: accuracy 0.80 below 0.9">def test_bad():
&gt;       assert accuracy &gt;= 0.9
E       AssertionError: accuracy 0.80 below 0.9</failure>
    </testcase>
    <testcase classname="tests.test_m" name="test_setup" time="0.001">
      <error message="failed on setup with &quot;fixture 'db' not found&quot;">setup trace</error>
    </testcase>
    <testcase classname="tests.test_m" name="test_skip" time="0">
      <skipped type="pytest.skip" message="no gpu">skip reason</skipped>
    </testcase>
    <testcase classname="tests.test_m" name="test_xfail" time="0">
      <skipped type="pytest.xfail" message="known bug"/>
    </testcase>
    <testcase classname="" name="test_plain" time="0">
      <system-out>[bold]not markup[/bold]</system-out>
    </testcase>
  </testsuite>
</testsuites>
"""


def test_counts_and_failures_from_testcases() -> None:
    report = parse_junit_xml(PYTEST_STYLE)
    assert (report.passed, report.failed, report.errors, report.skipped) == (2, 1, 1, 2)
    assert report.total == 6
    failure, error = report.failures
    assert failure.name == "tests.test_m.test_bad"
    assert failure.kind == "failure"
    assert failure.message == "AssertionError: accuracy 0.80 below 0.9"
    assert "assert accuracy >= 0.9" in failure.details
    assert error.name == "tests.test_m.test_setup"
    assert error.kind == "error"
    assert error.message == "failed on setup with \"fixture 'db' not found\""


def test_single_testsuite_root_and_message_from_text() -> None:
    xml = (
        '<testsuite tests="2"><testcase name="a"/>'
        '<testcase classname="K" name="b"><failure>first line\nsecond</failure></testcase>'
        "</testsuite>"
    )
    report = parse_junit_xml(xml.encode())
    assert (report.passed, report.failed) == (1, 1)
    assert report.failures[0].name == "K.b"
    assert report.failures[0].message == "first line"


def test_nested_suites_are_all_counted() -> None:
    xml = (
        "<testsuites><testsuite><testsuite><testcase name='a'/></testsuite>"
        "<testcase name='b'><error message='boom'/></testcase></testsuite></testsuites>"
    )
    report = parse_junit_xml(xml)
    assert (report.passed, report.errors) == (1, 1)
    assert report.failures[0].message == "boom"


def test_suite_attributes_used_when_no_testcase() -> None:
    xml = (
        '<testsuites><testsuite tests="5" failures="1" errors="1" skipped="1"/>'
        '<testsuite tests="3" failures="0" errors="0" skipped="0"/></testsuites>'
    )
    report = parse_junit_xml(xml)
    assert (report.passed, report.failed, report.errors, report.skipped) == (5, 1, 1, 1)
    assert report.failures == []


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("<testsuites><testsuite>", "malformed"),
        ("", "malformed"),
        ("<html><body/></html>", "root element is <html>"),
    ],
)
def test_invalid_reports_are_rejected(data: str, match: str) -> None:
    with pytest.raises(InvalidReport, match=match):
        parse_junit_xml(data)


def test_huge_details_are_cut() -> None:
    xml = f"<testsuite><testcase name='a'><failure message='m'>{'x' * 50_000}</failure>"
    xml += "</testcase></testsuite>"
    details = parse_junit_xml(xml).failures[0].details
    assert len(details) < 21_000 and details.endswith("[details truncated]")


def test_report_written_by_real_pytest(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_pass():\n    pass\n"
        "def test_fail():\n    assert 1 == 2, 'one is not two'\n"
        "@pytest.mark.skip(reason='later')\ndef test_skip():\n    pass\n"
    )
    report_path = tmp_path / "report.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report_path}",
        ],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    report = parse_junit_file(report_path)
    assert (report.passed, report.failed, report.errors, report.skipped) == (1, 1, 0, 1)
    assert report.failures[0].name == "test_sample.test_fail"
    assert "one is not two" in report.failures[0].message
