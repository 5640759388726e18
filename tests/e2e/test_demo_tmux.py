"""The real ``mrc demo`` in a real terminal (tmux at 80x24): the whole release story.

The first test plays the README's demo steps in the README's order: the
tests of a failing and of a passing commit, the release of the shifting
version (without opening the Drift screen first), drift crossing the alert
band and the guard saying so, ``u`` + ``r`` + a reason to roll back, drift
falling back, the Rollbacks screen, the data-shift key with drift rising and
the advice to retrain, ``R`` + a reason, the retrained commit on the Commits
screen, its tests, its release, drift falling back, then ``q``. The second
runs the console with 16 colours and closes the terminal under it. After
both, no process of the sandbox may be left.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.domain import Outcome
from core.journal import Journal
from tests.e2e.tmux import TmuxSession, processes_mentioning, tmux_available, wait_no_processes

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not tmux_available(), reason="needs tmux"),
]

MRC = str(Path(sys.executable).with_name("mrc"))
#: The demo config's drift thresholds (core/demo/sandbox.py writes them).
WARN = 0.1
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


def retrain_row(journal: Journal) -> Any:
    """Return the newest retrain journal row of churn, or None."""
    entries = journal.entries("churn", action="retrain", limit=1)
    return entries[0] if entries else None


def assert_no_demo_process(root: Path) -> None:
    left = wait_no_processes(str(root), timeout=15)
    assert not left, f"demo processes left after the console ended: {left}"


def test_readme_demo_steps_in_order_in_256_colours(session: TmuxSession, tmp_path: Path) -> None:
    """The README's demo, step by step and in its order, at 80x24.

    The Drift screen is not opened before the release: the guard must judge the
    release on its own (it once reported "no breach" when no screen had been opened).
    """
    root = tmp_path / "demo"
    env: dict[str, str | None] = {
        "TERM": "xterm-256color",
        "COLORTERM": None,
        "TEXTUAL_COLOR_SYSTEM": None,
        "NO_COLOR": None,
        "MRC_STATE_DIR": None,
    }
    commits = start_demo(session, root, env)
    failing, shift, passing, live = (
        commits["failing"], commits["shift"], commits["v3"], commits["v3"],
    )  # fmt: skip

    # The Commits screen: the story's history, the live release marked as deployed.
    session.wait_for(
        lambda s: "local" in row_of(s, live), "the deployed badge on the live release", 30
    )
    screen = session.last_screen
    assert "v1.3.0 Normalize" in row_of(screen, shift)
    assert "Experiment: drop" in row_of(screen, failing)
    assert "38;5;" in session.capture(escapes=True), "256-colour SGR codes expected"
    assert "38;2;" not in session.capture(escapes=True), "no truecolor without COLORTERM"

    # 1. `t` on the experiment (the cursor starts on the newest commit): it fails.
    session.send("t")
    session.wait_text(BANNER.format(n=2, name="Tests"), "the Tests screen after t")
    session.wait_for(
        lambda s: re.search(r"\bfailed\b.*2✓ 2✗", row_of(s, failing)) is not None,
        "the failing run's row on the Tests screen",
        60,
    )
    #    `t` on v1.2.0 passes and records its accuracy, a badge on the Commits screen.
    goto(session, "1", "Commits")
    session.send("Down", "Down", "t")
    session.wait_text(BANNER.format(n=2, name="Tests"), "the Tests screen after t on v1.2.0")
    session.wait_for(lambda s: "passed" in row_of(s, passing), "v1.2.0's passing run", 60)
    goto(session, "1", "Commits")
    session.wait_for(
        lambda s: re.search(r"✓ acc \d\.\d\d", row_of(s, passing)) is not None,
        "the accuracy badge on v1.2.0",
        15,
    )
    assert "✗" in row_of(session.last_screen, failing)

    # 2. `d` on v1.3.0, `y`: tests -> rollout -> verify.
    session.send("Up", "d")
    session.wait_text(r"Release\?", "the release confirmation", 15)
    session.send("y")
    session.wait_text(f"release of churn at {shift[:8]}", "the release progress view", 15)
    session.wait_text(rf"✓ rollout\s+rolled out commit {shift[:8]}", "the rollout step", 90)
    assert re.search(r"✓ tests\s+4 passed", session.last_screen), session.last_screen
    session.wait_text(r"verify", "the verify step")

    journal = Journal(root / "state" / "journal.sqlite3", close_orphans=False)
    try:
        # 3. `5`: drift crosses the alert band at the rollout marker, and the release's
        #    guard, which never needed the screen, says so in the banner.
        goto(session, "5", "Drift")
        session.wait_text(r"rollout", "the release marker")
        high = session.wait_for(
            lambda s: (v := drift_now(s)) is not None and v >= ALERT and v,
            f"drift >= {ALERT} after the release",
            timeout=75,
        )
        assert high >= ALERT
        session.wait_text(r"firing", "the drift alert")
        session.wait_text(r"GUARD ALERT churn", "the guard's alert in the banner", 75)

        # 4. `u`, read the dialog, `r` to type why, `enter`.
        session.send("u")
        session.wait_text(r"Roll back\?", "the rollback dialog", 15)
        assert re.search(rf"commit\s+{shift[:8]}\s+->\s+{live[:8]}", session.last_screen)
        session.send("r")
        session.type_text("drift after v1.3.0")
        session.send("Enter")
        session.wait_for(
            lambda s: rollback_done(journal), "the rollback's journal row to be done", 60
        )
        session.wait_text(r"rollback", "the rollback marker on the drift chart", 10)
        low = session.wait_for(
            lambda s: (v := drift_now(s)) is not None and v < ALERT,
            f"drift < {ALERT} after the rollback",
            timeout=75,
        )
        assert low

        entries = journal.entries("churn", "local")
        rollout = next(e for e in entries if e.details.get("commit") == shift)
        rollback = entries[0]
        assert rollout.action == "rollout" and rollout.outcome is Outcome.DONE
        assert rollback.action == "rollback" and rollback.outcome is Outcome.DONE
        assert rollback.reason == "drift after v1.3.0"
        assert rollback.details.get("commit") == live
        assert rollback.from_revision == rollout.to_revision

        # 5. `4`: both actions, who, when and why; `w` tells what was live when.
        goto(session, "4", "Rollbacks")
        session.wait_text(r"drift after v1\.3\.0", "the rollback's reason on Rollbacks")
        session.send("w")
        session.wait_text(r"What was live when", "what was live when")
        # 6. `5`, drift under warn again, `S`: the data shifts. Drift rises with no
        #    release marker before it, and the advice says R.
        goto(session, "5", "Drift")
        session.wait_for(
            lambda s: (v := drift_now(s)) is not None and v < WARN,
            f"drift < {WARN} before the data shift",
            timeout=120,
        )
        session.send("S")
        session.wait_text(r"data shift on", "the data shift notification", 10)
        session.wait_for(
            lambda s: (v := drift_now(s)) is not None and v >= ALERT,
            f"drift >= {ALERT} after the data shift",
            timeout=120,
        )
        session.wait_text(r"advice: R retrain", "the advice to retrain", 120)

        # 7. `R`, `r`, a reason, `enter`: train.py's output, then the retrained commit.
        session.send("R")
        session.wait_text(r"Retrain\?", "the retrain confirmation", 15)
        session.send("r")
        session.type_text("inputs shifted: new price plans")
        session.send("Enter")
        session.wait_text(r"retrain of churn", "the retrain progress view", 15)
        session.wait_text(r"customers in the window", "train.py's output", 90)
        done = session.wait_text(
            r"✓ done\s+commit ([0-9a-f]{8}) on retrain/churn/", "the retrained commit", 120
        )
        retrained = done.group(1)
        row = retrain_row(journal)
        assert row is not None and row.outcome is Outcome.DONE, row
        assert row.reason == "inputs shifted: new price plans"

        # 8. `1`: the retrained commit first, marked; `t` passes; `d`, `y` releases it.
        goto(session, "1", "Commits")
        session.wait_for(
            lambda s: "retrained" in row_of(s, retrained), "the retrained commit on Commits", 30
        )
        session.send("t")
        session.wait_text(BANNER.format(n=2, name="Tests"), "the Tests screen after t")
        session.wait_for(
            lambda s: "passed" in row_of(s, retrained), "the retrained commit's tests", 90
        )
        goto(session, "1", "Commits")
        session.wait_for(
            lambda s: "retrained" in row_of(s, retrained), "the retrained commit, again", 30
        )
        session.send("d")
        session.wait_text(r"Release\?", "the release confirmation of the retrained commit", 15)
        session.send("y")
        session.wait_text(
            rf"✓ rollout\s+rolled out commit {retrained}", "the retrained commit's rollout", 120
        )
        goto(session, "5", "Drift")
        session.wait_for(
            lambda s: (v := drift_now(s)) is not None and v < WARN,
            f"drift < {WARN} with the retrained model live",
            timeout=150,
        )

        session.send("q")
        session.wait_for(lambda s: session.pane_dead(), "the console to exit", 20)
        assert_no_demo_process(root)
        releases = journal.releases("churn")
        assert releases[0].commit.startswith(retrained)
        release = next(r for r in releases if r.commit == shift)
        assert [s.step for s in release.steps][:2] == ["tests", "build"]
        for release in releases[:2]:
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
