"""The real ``mrc demo`` in a real terminal (tmux at 80x24): the whole release story.

The first test plays the story a new user follows: every screen, the tests
of a failing commit, the release of the shifting version, drift crossing the
alert band, ``u`` + ``y`` to roll back, drift falling back, then ``q``. The
second runs the console with 16 colours and closes the terminal under it.
After both, no process of the sandbox may be left.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.domain import Outcome
from core.journal import Journal
from tests.e2e.tmux import TmuxSession, processes_mentioning, tmux_available, wait_no_processes

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not tmux_available(), reason="needs tmux"),
]

MRC = str(Path(sys.executable).with_name("mrc"))
#: The demo config's drift alert threshold (core/demo/sandbox.py writes it).
ALERT = 0.25
BANNER = r"^ mrc {n} {name} churn · "
DRIFT_NOW = re.compile(r"drift now: ([0-9]+\.[0-9]+)")


@pytest.fixture
def session() -> Iterator[TmuxSession]:
    tmux = TmuxSession(80, 24)
    try:
        yield tmux
    finally:
        # Captured output is shown only when the test fails: the terminal as last seen.
        print(f"last screen of the tmux pane:\n{tmux.last_screen}")
        tmux.close()


def start_demo(session: TmuxSession, root: Path, env: dict[str, str | None]) -> dict[str, str]:
    """Start ``mrc demo --dir root`` in ``session``; return the sandbox's role -> commit map.

    Waits for the Commits screen to list the history. stderr stays on the pane: Textual draws there.
    """
    session.start([MRC, "demo", "--dir", str(root)], env, cwd=root.parent)
    session.wait_text(BANNER.format(n=1, name="Commits"), "the Commits screen", timeout=60)
    marker = json.loads((root / "sandbox.json").read_text(encoding="utf-8"))
    commits = dict(marker["commits"])
    session.wait_for(lambda s: row_of(s, commits["v1"]), "the commit history", timeout=30)
    return commits


def goto(session: TmuxSession, key: str, name: str) -> str:
    """Press a screen key; return the screen once its banner shows ``name``."""
    session.send(key)
    regex = re.compile(BANNER.format(n=key, name=name), re.MULTILINE)
    session.wait_for(regex.search, f"the {name} screen")
    return session.last_screen


def drift_now(screen: str) -> float | None:
    """Return the Drift screen's current score, None while it has too little data."""
    match = DRIFT_NOW.search(screen)
    return float(match.group(1)) if match else None


def row_of(screen: str, sha: str) -> str:
    """Return the table row of commit ``sha`` ('' if none): a line with its short sha
    as a cell (notifications, which also name it, are not rows)."""
    for line in screen.splitlines():
        if re.search(rf"(^|\s){sha[:8]}\s", line) and "testing" not in line:
            return line
    return ""


def rollback_done(journal: Journal) -> bool:
    """Return True once the newest journal row is a finished rollback."""
    entries = journal.entries("churn", "local", limit=1)
    return bool(entries) and entries[0].action == "rollback" and not entries[0].outcome_unknown


def assert_no_demo_process(root: Path) -> None:
    left = wait_no_processes(str(root), timeout=15)
    assert not left, f"demo processes left after the console ended: {left}"


def test_release_story_in_256_colours(session: TmuxSession, tmp_path: Path) -> None:
    """Browse, test, release the shifting version, watch drift, roll back, quit."""
    root = tmp_path / "demo"
    env: dict[str, str | None] = {
        "TERM": "xterm-256color",
        "COLORTERM": None,
        "TEXTUAL_COLOR_SYSTEM": None,
        "NO_COLOR": None,
        "MRC_STATE_DIR": None,
    }
    commits = start_demo(session, root, env)
    failing, shift, live = commits["failing"], commits["shift"], commits["v3"]

    # Commits: the story's history with tags, the live release marked as deployed.
    # The demo starts its live release in the background: the badge follows within a poll.
    session.wait_for(
        lambda s: "local" in row_of(s, live), "the deployed badge on the live release", 30
    )
    screen = session.last_screen
    assert "v1.3.0 Normalize" in row_of(screen, shift)
    assert "Experiment: drop" in row_of(screen, failing)
    assert "38;5;" in session.capture(escapes=True), "256-colour SGR codes expected"
    assert "38;2;" not in session.capture(escapes=True), "no truecolor without COLORTERM"

    goto(session, "2", "Tests")
    session.wait_text("No test run of churn yet", "the empty Tests screen")
    screen = goto(session, "3", "Rollouts")
    row = session.wait_for(lambda s: row_of(s, live), "the live revision's row")
    assert re.search(r"churn\s+local\s+local\s+2\s", row), screen
    screen = goto(session, "4", "Rollbacks")
    session.wait_text(r"live: revision 2", "the live revision on Rollbacks")
    session.wait_text(r"release v1\.2\.0", "the journal rows on Rollbacks")
    assert "release v1.1.0" in session.last_screen
    goto(session, "5", "Drift")
    session.wait_text(r"drift \(psi\)", "the drift chart")
    before = session.wait_for(drift_now, "a drift score before the release", timeout=45)
    assert before < ALERT, session.last_screen

    # Tests of the experiment: the cursor starts on the newest commit.
    goto(session, "1", "Commits")
    session.send("t")
    session.wait_text(BANNER.format(n=2, name="Tests"), "the Tests screen after t")
    session.wait_for(
        lambda s: re.search(r"\bfailed\b.*2✓ 2✗", row_of(s, failing)) is not None,
        "the failing run's row on the Tests screen",
        60,
    )
    assert re.search(r"2✓ 2✗", row_of(session.last_screen, failing)), session.last_screen

    # Release the shifting version: y confirms (not production: no typed name),
    # then tests -> rollout -> verify.
    goto(session, "1", "Commits")
    session.send("Down", "d")
    session.wait_text(r"Release\?", "the release confirmation", 15)
    session.send("y")
    session.wait_text(f"release of churn at {shift[:8]}", "the release progress view", 15)
    session.wait_text(rf"✓ rollout\s+rolled out commit {shift[:8]}", "the rollout step", 90)
    assert re.search(r"✓ tests\s+4 passed", session.last_screen), session.last_screen
    session.wait_text(r"verify", "the verify step")
    session.send("Escape")

    screen = goto(session, "2", "Tests")
    session.wait_for(lambda s: "passed" in row_of(s, shift), "the release's passing run")
    assert "failed" in row_of(session.last_screen, failing)
    journal = Journal(root / "state" / "journal.sqlite3", close_orphans=False)
    try:
        runs = {run.commit: run for run in journal.test_runs("churn")}
        assert runs[failing].status.value == "failed" and runs[failing].failed == 2
        assert runs[shift].status.value == "passed" and runs[shift].passed == 4

        # Drift rises at the release marker and crosses the alert band.
        goto(session, "5", "Drift")
        session.wait_text(r"rollout", "the release marker")
        high = session.wait_for(
            lambda s: (v := drift_now(s)) is not None and v >= ALERT and v,
            f"drift >= {ALERT} after the release",
            timeout=75,
        )
        assert high >= ALERT
        session.wait_text(r"firing", "the drift alert")
        # The release's verify step sees the same breach and says so in the banner.
        session.wait_text(r"GUARD ALERT churn", "the guard's alert in the banner", 75)

        # One key rolls back; the dialog shows where to, y confirms.
        session.send("u")
        session.wait_text(r"Roll back\?", "the rollback dialog", 15)
        assert re.search(rf"commit\s+{shift[:8]}\s+->\s+{live[:8]}", session.last_screen)
        session.send("y")
        session.wait_for(
            lambda s: rollback_done(journal), "the rollback's journal row to be done", 60
        )
        session.wait_text(r"rollback", "the rollback marker on the drift chart", 10)

        screen = goto(session, "3", "Rollouts")
        row = session.wait_for(lambda s: row_of(s, live), "the rolled-back revision")
        assert re.search(r"churn\s+local\s+local\s+4\b", row), screen

        entries = journal.entries("churn", "local")
        rollout = next(e for e in entries if e.details.get("commit") == shift)
        rollback = entries[0]
        assert rollout.action == "rollout" and rollout.outcome is Outcome.DONE
        assert rollback.action == "rollback" and rollback.outcome is Outcome.DONE
        assert rollback.id > rollout.id
        assert rollback.details.get("commit") == live
        assert rollback.from_revision == rollout.to_revision

        # Drift falls back once the window only holds the previous model's traffic.
        goto(session, "5", "Drift")
        session.wait_text(r"rollback", "the rollback marker")
        low = session.wait_for(
            lambda s: (v := drift_now(s)) is not None and v < ALERT,
            f"drift < {ALERT} after the rollback",
            timeout=75,
        )
        assert low

        session.send("q")
        session.wait_for(lambda s: session.pane_dead(), "the console to exit", 20)
        assert_no_demo_process(root)
        release = journal.releases("churn")[0]
        assert release.commit == shift
        assert [s.step for s in release.steps][:2] == ["tests", "build"]
        assert any(s.step == "rollout" and s.status == "done" for s in release.steps)
    finally:
        journal.close()


def test_sixteen_colours_and_closed_terminal(session: TmuxSession, tmp_path: Path) -> None:
    """With 16 colours every screen still reads; closing the terminal stops every process."""
    root = tmp_path / "demo16"
    env: dict[str, str | None] = {
        "TERM": "xterm-16color",
        "COLORTERM": None,
        "TEXTUAL_COLOR_SYSTEM": "standard",
        "NO_COLOR": None,
        "MRC_STATE_DIR": None,
    }
    commits = start_demo(session, root, env)
    screens = [("1", "Commits"), ("2", "Tests"), ("3", "Rollouts"), ("4", "Rollbacks")]
    screens.append(("5", "Drift"))
    for key, name in screens:
        goto(session, key, name)
        coloured = session.capture(escapes=True)
        assert not re.search(r"\x1b\[[0-9;]*[34]8;[25];", coloured), (
            f"{name}: only the 16 standard colours may be used"
        )
        assert re.search(r"\x1b\[(?:[0-9]+;)*(?:3[0-7]|9[0-7])[;m]", coloured), name
    session.wait_text(r"rollout", "the Drift chart's release marker")
    goto(session, "1", "Commits")
    assert "v1.3.0 Normalize" in row_of(session.last_screen, commits["shift"])

    session.send("u")
    session.wait_text(r"Roll back\?", "the rollback dialog", 15)
    session.send("n")
    session.wait_for(lambda s: "Roll back?" not in s, "the dialog to close", 10)

    assert processes_mentioning(str(root)), "the demo's processes should be running"
    session.kill_session()
    assert_no_demo_process(root)
