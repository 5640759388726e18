"""``make screenshots``: one SVG per screen of the demo, reproducibly.

The pictures show the demo's story at a fixed moment: the shifting release
(v1.3.0) went live six minutes ago, the drift score rose at its marker, and
``u`` offers to go back to v1.2.0. To make reruns give identical files:

* the sandbox (model repository) is built with a fixed clock, so its commits
  and dates are always the same; the config path shown is a fixed display path;
* test runs are real (the repository's pytest suite runs at the failing
  experiment and at v1.3.0) but are stored with fixed start/finish times, and
  their logs lose the durations and temporary paths pytest prints;
* the journal rows (rollouts of v1.1.0, v1.2.0, v1.3.0) are written with fixed
  times and user;
* the target replays the local target's revision history in memory: a real
  local target would show the free ports and paths of this machine;
* the metrics are the demo model's own: seeded customers are scored by the
  v1.2.0 and then the v1.3.0 model, recorded with prometheus-client and fed to
  the scrape source at fixed timestamps (every 5 s over the last 15 minutes);
* ``alerts.svg`` (the Drift screen with its alerts panel) reads one fixed
  firing alert from a loopback Alertmanager-like server this script starts;
* ``drift-retrain.svg`` and ``retrain.svg`` tell the other story: v1.2.0 has
  been live for days and the *customers* shifted six minutes ago (no release
  marker), so the Drift screen advises ``R``; ``R`` + ``y`` then runs the
  sample model's real ``train.py`` on recent (seeded) requests. Its commit sha
  and branch carry the time it ran, so ``retrain.svg`` differs between runs
  (its elapsed time is pinned).
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import random
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from tests.support.targets import ScriptedTarget

#: The console's clock in the pictures (the demo repository's last commit is an hour older).
NOW = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
#: When v1.3.0 went live.
RELEASE_AT = NOW - timedelta(minutes=6)
SIZE = (120, 36)
DISPLAY_CONFIG = Path("~/mrc-demo/mrc.toml")
USER = "maya"
SCRAPE_EVERY = 5.0
REQUESTS_PER_SECOND = 20

#: (file name, screen key, text that shows the screen has its data).
SCREENS = (
    ("commits", "1", "v1.3.0"),
    ("tests", "2", "failed"),
    ("rollouts", "3", "complete"),
    ("rollbacks", "4", "release v1.3.0"),
    ("drift", "5", "drift now: "),
)


# --------------------------------------------------------------------------
# Seeding the workspace


class _Clock:
    """A settable clock patched into the journal while rows are written."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _git_json(repo: Path, commit: str, path: str) -> Any:
    import json

    text = subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(text)


def _model_at(repo: Path, commit: str) -> Callable[[dict[str, float]], float]:
    """Return the scoring function of the model committed at ``commit``."""
    from core.demo import churn

    weights = _git_json(repo, commit, "model/weights.json")
    w = churn.Weights(float(weights["bias"]), dict(weights["weights"]))
    try:
        raw = _git_json(repo, commit, "model/scaler_2026q2.json")
    except subprocess.CalledProcessError:
        raw = _git_json(repo, commit, "model/scaler.json")
    scaler = churn.Scaler(dict(raw["mean"]), dict(raw["std"]))
    return lambda customer: churn.predict(customer, w, scaler)


def _normalise_log(text: str) -> str:
    """Drop what differs between runs from a pytest log: durations and temporary paths."""
    text = re.sub(r"(?m)^-+ generated xml file: .*$\n?", "", text)
    text = re.sub(r" in [0-9.]+s\b", "", text)
    return re.sub(r"/tmp/[^\s:'\"]+", "<tmp>", text)


def _record_tests(workspace: Any, sandbox: Any, clock: _Clock) -> None:
    """Run the real tests at the failing experiment and at v1.3.0; store them at fixed times."""
    journal = workspace.journal
    plan = [(sandbox.failing, NOW - timedelta(minutes=41)), (sandbox.shifting, RELEASE_AT)]
    for commit, finished in plan:
        run = None
        for event in workspace.run_tests("churn", commit):
            run = getattr(event, "run", run)
        if run is None or run.id is None:
            raise RuntimeError(f"the test run at {commit[:8]} did not finish")
        took = timedelta(seconds=4 if run.failed else 5)
        if run.output_path and Path(run.output_path).is_file():
            log = Path(run.output_path)
            log.write_text(_normalise_log(log.read_text(encoding="utf-8")), encoding="utf-8")
        journal.update_test_run(replace(run, started_at=finished - took, finished_at=finished))


def _record_rollouts(
    workspace: Any, sandbox: Any, clock: _Clock, data_shift: bool = False
) -> ScriptedTarget:
    """Journal the rollouts of the story at fixed times; return the target in that state.

    ``data_shift``: the other story, where v1.2.0 stays live (no v1.3.0 release).
    """
    from core import audit
    from core.domain import Outcome, Revision

    actor = audit.Actor(user=USER, ssh_client="", host="demo", pid=0)
    story = [
        ("v2", NOW - timedelta(days=5, hours=3)),
        ("v3", NOW - timedelta(days=2, hours=5)),
        ("shift", RELEASE_AT - timedelta(minutes=1)),
    ]
    if data_shift:
        story.pop()
    revisions = []
    previous = ""
    for number, (role, when) in enumerate(story, start=1):
        commit = sandbox.commits[role]
        reason = f"release {sandbox.tags[role]}"
        clock.now = when
        entry = workspace.journal.begin(
            "churn",
            "local",
            "rollout",
            previous,
            str(number),
            reason,
            {"artifact": f"commit {commit[:8]}", "commit": commit},
            actor=actor,
        )
        clock.now = when + timedelta(seconds=2)
        workspace.journal.finish(entry, Outcome.DONE)
        revisions.append(
            Revision(number, commit=commit, created=when, change_cause=reason, current=False)
        )
        previous = str(number)
    revisions[-1] = replace(revisions[-1], current=True)
    return ScriptedTarget("churn", "local", kind="local", replicas=1, revisions=revisions)


def _feed_metrics(source: Any, sandbox: Any, data_shift: bool = False) -> None:
    """Score seeded customers with v1.2.0, then v1.3.0 from its release; ingest the metrics.

    ``data_shift``: v1.2.0 throughout, the customers shifted from :data:`RELEASE_AT` on.
    """
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from core.demo import churn

    registry = CollectorRegistry()
    prediction = Histogram(
        "model_prediction_score", "score", buckets=churn.PREDICTION_BOUNDS, registry=registry
    )
    feature = Histogram(
        "model_feature_value",
        "features",
        ["feature"],
        buckets=churn.FEATURE_BOUNDS,
        registry=registry,
    )
    latency = Histogram(
        "model_latency_seconds",
        "latency",
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        registry=registry,
    )
    requests = Counter("model_requests", "requests", registry=registry)
    Counter("model_errors", "errors", registry=registry)
    before = _model_at(sandbox.repo, sandbox.commits["v3"])
    after = _model_at(sandbox.repo, sandbox.shifting)
    rng = random.Random(sandbox.seed)
    start = NOW - timedelta(minutes=15)
    steps = int((NOW - start).total_seconds() // SCRAPE_EVERY)
    per_scrape = int(SCRAPE_EVERY * REQUESTS_PER_SECOND)
    for step in range(steps + 1):
        at = start + timedelta(seconds=step * SCRAPE_EVERY)
        score = after if at >= RELEASE_AT and not data_shift else before
        for _ in range(per_scrape):
            customer = churn.customer(rng, shifted=data_shift and at >= RELEASE_AT)
            for name in churn.FEATURES:
                feature.labels(feature=name).observe(customer[name])
            prediction.observe(score(customer))
            latency.observe(rng.uniform(0.0008, 0.004))
            requests.inc()
        source.ingest(generate_latest(registry).decode(), at.timestamp())


def seeded_workspace(root: Path, data_shift: bool = False) -> tuple[Any, Any]:
    """Build the demo sandbox in ``root`` and a workspace in the story's state.

    Returns (workspace, sandbox). Runs the demo repository's tests twice
    (a few seconds). ``data_shift``: the retrain story (see the module's
    docstring), with the traffic's recent requests written for ``train.py``.
    Raises SandboxError or the test runner's errors.
    """
    import core.journal
    from core.config import load_file
    from core.demo import build_sandbox
    from core.services.workspace import Workspace

    sandbox = build_sandbox(root / "demo", fixed_time=NOW)
    config = replace(load_file(sandbox.config), source=DISPLAY_CONFIG)
    workspace = Workspace(config, state_dir=sandbox.state_dir)
    clock = _Clock(NOW)
    with mock.patch.object(core.journal, "_now", clock):
        _record_tests(workspace, sandbox, clock)
        target = _record_rollouts(workspace, sandbox, clock, data_shift)
    workspace._targets[("churn", "local")] = target
    source = workspace.metrics("churn")
    if source is None:
        raise RuntimeError("the demo config has no metrics source")
    source.start = lambda: None  # type: ignore[attr-defined]  # seeded: never scrape
    _feed_metrics(source, sandbox, data_shift)
    if data_shift:
        _write_recent(sandbox)
    return workspace, sandbox


def _write_recent(sandbox: Any) -> None:
    """Write what the traffic keeps: 600 shifted requests of the last 30 s (real time)."""
    import time

    from core.demo import churn
    from core.demo.traffic import Recent

    rng = random.Random(sandbox.seed)
    recent = Recent(sandbox.recent_inputs, seed=sandbox.seed)
    now = time.time()
    for i in range(600):
        recent.add(now - 29 + i * 0.045, churn.customer(rng, shifted=True))
    recent.flush()


# --------------------------------------------------------------------------
# Taking the pictures


def _screen_text(app: Any) -> str:
    return "\n".join(
        "".join(segment.text for segment in line) for line in app.screen._compositor.render_strips()
    )


async def _wait_text(pilot: Any, app: Any, text: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while text not in _screen_text(app):
        if loop.time() > deadline:
            raise RuntimeError(f"{text!r} did not appear:\n{_screen_text(app)}")
        await pilot.pause(0.05)


async def _take(workspace: Any) -> dict[str, str]:
    """Open every screen and the rollback dialog; return {name: svg}."""
    from tui.app import MrcApp

    app = MrcApp(workspace, clock=lambda: NOW, animate=False)
    pictures: dict[str, str] = {}
    async with app.run_test(size=SIZE) as pilot:
        for name, key, ready in SCREENS:
            await pilot.press(key)
            await _wait_text(pilot, app, ready)
            await pilot.pause(0.5)
            pictures[name] = app.export_screenshot(title=f"mrc · {name}")
        await pilot.press("u")
        await _wait_text(pilot, app, "Roll back?")
        await pilot.pause(0.5)
        pictures["rollback-confirm"] = app.export_screenshot(title="mrc · roll back?")
        await pilot.press("n")
        await pilot.pause()
    return pictures


#: The one alert of ``alerts.svg``, as Alertmanager's API v2 lists it: the drift alert
#: ``mrc rules`` writes, firing since two minutes after the release.
ALERTS = [
    {
        "fingerprint": "5d0c4e1f2a3b6c7d",
        "labels": {
            "alertname": "MrcDriftAlert",
            "model": "churn",
            "target": "local",
            "kind": "prediction",
            "feature": "",
            "severity": "critical",
        },
        "annotations": {
            "summary": "churn: prediction drift at or above 0.25 on local",
            "command": "`mrc rollback churn --target local`",
        },
        "startsAt": (RELEASE_AT + timedelta(minutes=2)).isoformat().replace("+00:00", "Z"),
        "endsAt": (NOW + timedelta(minutes=4)).isoformat().replace("+00:00", "Z"),
        "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
    }
]


class _AlertsHandler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with :data:`ALERTS` (what ``GET /api/v2/alerts`` returns)."""

    def do_GET(self) -> None:
        body = json.dumps(ALERTS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _loopback_alertmanager() -> Iterator[str]:
    """Serve :data:`ALERTS` on a free loopback port; yield the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AlertsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def _take_alerts(workspace: Any) -> str:
    """Open the Drift screen with the alerts panel showing :data:`ALERTS`; return the svg."""
    from tui.app import MrcApp

    app = MrcApp(workspace, clock=lambda: NOW, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await _wait_text(pilot, app, "drift now: ")
        await _wait_text(pilot, app, "MrcDriftAlert")
        await _wait_text(pilot, app, "1 alert")
        await pilot.pause(0.5)
        return app.export_screenshot(title="mrc · alerts")


async def _take_retrain(workspace: Any) -> dict[str, str]:
    """The retrain story: the Drift screen's advice, then ``R`` ``y`` and its progress view."""
    from tui.app import MrcApp
    from tui.screens.progress import OperationScreen

    app = MrcApp(workspace, clock=lambda: NOW, animate=False)
    pictures: dict[str, str] = {}
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await _wait_text(pilot, app, "advice: R retrain")
        await pilot.pause(0.5)
        pictures["drift-retrain"] = app.export_screenshot(title="mrc · drift: retrain")
        await pilot.press("R")
        await _wait_text(pilot, app, "Retrain?")
        await pilot.press("y")
        await _wait_text(pilot, app, "retrain of churn")
        screen = app.screen
        assert isinstance(screen, OperationScreen)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while not screen.op.finished:
            if loop.time() > deadline:
                raise RuntimeError(f"the retrain did not finish:\n{_screen_text(app)}")
            await pilot.pause(0.1)
        if screen.op.error:
            raise RuntimeError(f"the retrain failed: {screen.op.error}")
        if screen.op.ended is not None:
            screen.op.started = screen.op.ended - 4.0  # a fixed elapsed time in the picture
        screen.update_view()
        await pilot.pause(0.5)
        pictures["retrain"] = app.export_screenshot(title="mrc · retrain")
    return pictures


def write_screenshots(directory: Path) -> list[Path]:
    """Write ``<screen>.svg`` for every screen, ``rollback-confirm.svg``, ``alerts.svg``,
    ``drift-retrain.svg`` and ``retrain.svg``; return the paths."""
    from core.config import AlertmanagerConfig

    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mrc-screens-") as tmp:
        workspace, _ = seeded_workspace(Path(tmp))
        try:
            pictures = asyncio.run(_take(workspace))
            with _loopback_alertmanager() as url:
                # The other pictures show the demo's own config, which has no Alertmanager.
                alertmanager = AlertmanagerConfig(url=url, refresh=3600.0)
                workspace.config = replace(workspace.config, alertmanager=alertmanager)
                pictures["alerts"] = asyncio.run(_take_alerts(workspace))
        finally:
            workspace.close()
    with tempfile.TemporaryDirectory(prefix="mrc-screens-") as tmp:
        workspace, _ = seeded_workspace(Path(tmp), data_shift=True)
        try:
            pictures.update(asyncio.run(_take_retrain(workspace)))
        finally:
            workspace.close()
    written = []
    for name, svg in pictures.items():
        path = directory / f"{name}.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Write the screenshots into the directory given on the command line; return 0."""
    parser = argparse.ArgumentParser(description="Write one SVG per console screen.")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    for path in write_screenshots(args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
