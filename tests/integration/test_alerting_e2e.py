"""Alerting end to end: exporter -> ``mrc watch`` -> Prometheus rules -> Alertmanager -> console.

Every piece is real and runs as the operator runs it: a local target serves a
commit of a repository holding the training reference; ``mrc watch`` (a
subprocess) scores the live traffic of an exporter whose distribution the test
switches; Prometheus scrapes ``mrc watch``, evaluates the rules ``mrc rules``
(a subprocess) wrote and sends the alerts to Alertmanager; the console, with an
``[alertmanager]`` table in its configuration, shows the alert on the Drift
screen with its count in the banner, and ``a`` silences it in Alertmanager and
in the journal. Switching the traffic back below ``warn`` resolves the alert.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from core.config import parse
from core.journal import Journal
from core.services.workspace import Workspace
from tests.integration.test_watch import FEATURES, TOKEN, Watch, deploy, env_for, write_config
from tests.services.alertmanager import Alertmanager
from tests.services.common import ServiceError
from tests.services.fixtures import service_unavailable
from tests.services.prometheus import Prometheus
from tests.support.exporter import AFTER, BEFORE, Exporter
from tests.tui.test_shell import screen_text
from tui.app import MrcApp
from tui.screens.drift import DriftScreen
from tui.screens.silence import SilenceDialog
from tui.widgets.alerts import AlertsPanel
from tui.widgets.banner import ContextBanner

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

ROOT = Path(__file__).resolve().parents[2]
#: Generous: Prometheus, Alertmanager, mrc watch and the console share two busy cores.
TIMEOUT = 120.0
DRIFT_ALERTS = ("MrcDriftWarning", "MrcDriftAlert")

T = TypeVar("T")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def prometheus_alerts(prom: Prometheus) -> list[dict[str, Any]]:
    """Returns Prometheus' pending and firing alerts."""
    body = get_json(f"{prom.url}/api/v1/alerts")
    assert body["status"] == "success", body
    return list(body["data"]["alerts"])


def manager_alerts(manager: Alertmanager) -> list[dict[str, Any]]:
    """Returns Alertmanager's alerts that are not resolved (active or suppressed)."""
    return list(get_json(f"{manager.url}/api/v2/alerts"))


def drift_alerts(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        a
        for a in alerts
        if a["labels"].get("alertname") in DRIFT_ALERTS and a["labels"].get("model") == "churn"
    ]


def wait_until(
    what: str, probe: Callable[[], T], done: Callable[[T], bool], context: Callable[[], str]
) -> T:
    """Polls ``probe()`` until ``done`` holds for its value; fails with the last value seen."""
    deadline = time.monotonic() + TIMEOUT
    seen = probe()
    while not done(seen):
        if time.monotonic() > deadline:
            pytest.fail(f"never {what}; last seen: {seen}\n{context()}", pytrace=False)
        time.sleep(0.5)
        seen = probe()
    return seen


async def pilot_until(pilot: Any, app: MrcApp, what: str, predicate: Callable[[], bool]) -> None:
    """Lets the console run until ``predicate()``; fails with the screen it showed."""
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"the console never {what}; screen:\n{screen_text(app)}", pytrace=False)
        await pilot.pause(0.1)


def console(config_path: Path, manager: Alertmanager, state: Path) -> MrcApp:
    """Returns the console on the test's configuration plus an ``[alertmanager]`` table."""
    text = f'[alertmanager]\nurl = "{manager.url}"\ntimeout = "5s"\nrefresh = "1s"\n'
    text += config_path.read_text()
    config = parse(text, source=config_path)
    workspace = Workspace(config, journal=Journal(state / "journal.sqlite3"), state_dir=state)
    return MrcApp(workspace, animate=False)


def short_window(config_path: Path) -> None:
    """Scores the last 10 s of traffic, so that switching it back ends the drift quickly."""
    text = config_path.read_text()
    assert 'window = "1h"' in text
    config_path.write_text(text.replace('window = "1h"', 'window = "10s"'))


async def test_drift_fires_reaches_the_console_is_silenced_and_resolves(
    alertmanager: Alertmanager, tmp_path: Path
) -> None:
    with Exporter(features=FEATURES, token=TOKEN, per_scrape=500) as exporter:
        exporter.shift(AFTER, features={"age": AFTER})
        config_path, state = write_config(tmp_path, exporter), tmp_path / "state"
        short_window(config_path)
        env = env_for(config_path, state)
        rules = tmp_path / "mrc-rules.yml"
        proc = subprocess.run(
            [sys.executable, "-m", "tui.cli", "rules", "--out", str(rules), "--for", "0s"],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        ws, _ = deploy(config_path, state)
        watch = Watch(env)
        prom: Prometheus | None = None
        try:
            prom = Prometheus(
                tmp_path / "prometheus",
                scrape_targets=[urllib.parse.urlsplit(watch.url).netloc],
                scrape_interval="1s",
            )
            prom.rule_files = (rules,)
            prom.alertmanagers = (f"127.0.0.1:{alertmanager.port}",)
            try:
                prom.start()
            except ServiceError as e:
                service_unavailable(e)
            live_prom = prom

            def seen() -> str:
                return (
                    f"mrc watch: {watch.lines[-20:]}\n"
                    f"prometheus alerts: {prometheus_alerts(live_prom)}"
                )

            # The drift fires in Prometheus and reaches Alertmanager.
            firing = wait_until(
                "saw MrcDriftAlert active in Alertmanager",
                lambda: drift_alerts(manager_alerts(alertmanager)),
                lambda alerts: any(a["labels"]["alertname"] == "MrcDriftAlert" for a in alerts),
                seen,
            )
            assert all(a["labels"]["target"] == "local" for a in firing), firing

            # The console shows it on the Drift screen, counted in the banner.
            app = console(config_path, alertmanager, tmp_path / "console-state")
            async with app.run_test(size=(120, 40), notifications=True) as pilot:

                def alerts_panel() -> AlertsPanel:
                    return app.screen.query_one(AlertsPanel)

                def banner() -> str:
                    return str(app.screen.query_one(ContextBanner).content)

                await pilot.press("5")
                await pilot_until(
                    pilot, app, "opened Drift", lambda: isinstance(app.screen, DriftScreen)
                )
                await pilot_until(
                    pilot, app, "showed MrcDriftAlert",
                    lambda: "MrcDriftAlert" in screen_text(app) and bool(alerts_panel().alerts),
                )  # fmt: skip
                await pilot_until(
                    pilot, app, "counted the alerts in the banner",
                    lambda: f"{len(alerts_panel().alerts)} alert" in banner(),
                )  # fmt: skip

                # Silence the selected alert: a, duration, reason, y.
                selected = alerts_panel().alerts[0]
                await pilot.press("a")
                await pilot_until(pilot, app, "opened the silence dialog",
                                  lambda: isinstance(app.screen, SilenceDialog))  # fmt: skip
                await pilot.press("ctrl+u", *"30m", "enter", *"drift under review", "enter")
                await pilot_until(pilot, app, "asked to confirm",
                                  lambda: "Silence?" in screen_text(app))  # fmt: skip
                await pilot.press("y")
                journal = app.workspace.journal

                def journalled() -> bool:
                    return any(e.outcome.value == "done" for e in journal.entries(action="silence"))

                await pilot_until(pilot, app, "journalled the silence as done", journalled)
                await pilot_until(pilot, app, "showed the alert silenced",
                                  lambda: "silenced" in screen_text(app))  # fmt: skip

            [entry] = app.workspace.journal.entries(action="silence")
            assert (entry.model, entry.reason) == ("churn", "drift under review")
            silences = get_json(f"{alertmanager.url}/api/v2/silences")
            [silence] = [s for s in silences if s["comment"] == "drift under review"]
            assert silence["status"]["state"] == "active", silence
            matchers = {m["name"]: m["value"] for m in silence["matchers"]}
            assert matchers["alertname"] == selected.name and matchers["model"] == "churn"

            # Traffic back to the training distribution: the drift alerts resolve.
            exporter.shift(BEFORE, features={"age": BEFORE})
            wait_until(
                "saw the drift alerts resolved in Prometheus",
                lambda: drift_alerts(prometheus_alerts(live_prom)),
                lambda alerts: not alerts,
                seen,
            )
            wait_until(
                "saw the drift alerts gone from Alertmanager",
                lambda: drift_alerts(manager_alerts(alertmanager)),
                lambda alerts: not alerts,
                seen,
            )
        finally:
            if prom is not None:
                prom.stop()
            code = watch.stop()
            ws.close()
        assert code == 0, watch.lines
