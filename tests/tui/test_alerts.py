"""Alertmanager in the console, along the operator's path, against the real Alertmanager.

Alerts posted to Alertmanager show on the Drift and Rollouts screens with a
count in the banner; ``a`` + duration + reason + ``y`` creates the silence in
Alertmanager and a journal row; read-only refuses ``a`` with the reason; a
stopped, slow or garbled Alertmanager gives a stale badge while keys still
answer; a refused silence shows Alertmanager's message and journals failed.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable

from core.alertmanager import AlertmanagerClient
from core.config import parse
from core.journal import Journal
from core.services.workspace import Workspace
from tests.integration.test_alertmanager import HOSTILE, post_alert
from tests.support.repos import make_history_repo
from tests.support.targets import FIXED_NOW, ScriptedTarget, scripted_history
from tests.tui.conftest import CONFIG
from tests.tui.test_shell import screen_text
from tests.tui.test_shell import wait_for as _wait_for
from tui.app import MrcApp
from tui.screens.confirm import YesConfirm
from tui.screens.drift import DriftScreen
from tui.screens.rollouts import RolloutsScreen
from tui.screens.silence import SilenceDialog
from tui.widgets.alerts import AlertsPanel
from tui.widgets.banner import ContextBanner

pytestmark = pytest.mark.integration


async def wait_for(pilot, predicate, tries: int = 400) -> None:  # type: ignore[no-untyped-def]
    """Wait (up to 20 s on a busy machine) until ``predicate()`` holds."""
    await _wait_for(pilot, predicate, tries)


def make_app(tmp_path: Path, url: str, *, read_only: bool = False, retrain: bool = False) -> MrcApp:
    """Returns a console on the tui fixtures' models with Alertmanager at `url` (and a
    ``[model.retrain]`` table for churn when `retrain`)."""
    repo = make_history_repo(tmp_path / "repo", commits=4)
    text = CONFIG.format(repo=repo.path, production="false")
    if retrain:
        text = text.replace(
            'name = "churn"\n', 'name = "churn"\nretrain = { command = "true" }\n', 1
        )
    text = f'[alertmanager]\nurl = "{url}"\ntimeout = "1s"\nrefresh = "1s"\n' + text
    config = parse(text, source=Path("/etc/mrc/alerts.toml"))
    if read_only:
        config = config.with_read_only(True)
    state = tmp_path / "state"
    state.mkdir()
    workspace = Workspace(config, journal=Journal(state / "journal.sqlite3"), state_dir=state)
    workspace._targets.update(  # type: ignore[arg-type]
        {
            ("churn", "prod-eu"): ScriptedTarget(
                "churn", "prod-eu", revisions=scripted_history("churn", repo.shas)
            ),
            ("fraud", "staging"): ScriptedTarget(
                "fraud", "staging", revisions=scripted_history("fraud", repo.shas)
            ),
        }
    )
    return MrcApp(workspace, clock=lambda: FIXED_NOW, animate=False)


def banner(app: MrcApp) -> str:
    return str(app.screen.query_one(ContextBanner).content)


def panel(app: MrcApp) -> AlertsPanel:
    return app.screen.query_one(AlertsPanel)


async def open_drift_with_alerts(pilot, app: MrcApp) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("5")
    await wait_for(pilot, lambda: isinstance(app.screen, DriftScreen))
    await wait_for(pilot, lambda: bool(panel(app).alerts) or bool(panel(app).stale))


async def test_drift_shows_the_models_alerts_and_the_banner_counts_them(alertmanager, tmp_path):
    post_alert(alertmanager.url, {"alertname": "MrcDriftHigh", "model": "churn"},
               {"summary": HOSTILE})  # fmt: skip
    post_alert(alertmanager.url, {"alertname": "MrcOtherModel", "model": "fraud"})
    app = make_app(tmp_path, alertmanager.url)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_drift_with_alerts(pilot, app)
        await wait_for(pilot, lambda: "MrcDriftHigh" in screen_text(app))
        text = screen_text(app)
        assert "MrcOtherModel" not in text
        assert "\x1b" not in text and "\x07" not in text
        assert "1 alert" in banner(app)
        await pilot.press("3")  # the Rollouts screen shows them too
        await wait_for(pilot, lambda: "MrcDriftHigh" in screen_text(app))


async def test_a_silences_the_alert_in_alertmanager_and_journals_it(alertmanager, tmp_path):
    post_alert(alertmanager.url, {"alertname": "MrcDriftHigh", "model": "churn"})
    app = make_app(tmp_path, alertmanager.url)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await open_drift_with_alerts(pilot, app)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, SilenceDialog))
        await pilot.press("ctrl+u", *"30m", "enter", *"retraining", "enter")
        await wait_for(pilot, lambda: "Silence?" in screen_text(app))
        await pilot.press("y")
        journal = app.workspace.journal
        await wait_for(pilot, lambda: any(
            e.outcome.value == "done" for e in journal.entries(action="silence")
        ))  # fmt: skip
        await wait_for(pilot, lambda: "silenced" in screen_text(app))
    [entry] = app.workspace.journal.entries(action="silence")
    assert (entry.model, entry.reason) == ("churn", "retraining")
    silences = AlertmanagerClient(alertmanager.url).silences()
    [silence] = [s for s in silences if s["comment"] == "retraining"]
    assert {m["name"]: m["value"] for m in silence["matchers"]} == {
        "alertname": "MrcDriftHigh", "model": "churn"
    }  # fmt: skip
    assert silence["status"]["state"] == "active"


async def test_read_only_refuses_a_with_the_reason(alertmanager, tmp_path):
    post_alert(alertmanager.url, {"alertname": "MrcDriftHigh", "model": "churn"})
    app = make_app(tmp_path, alertmanager.url, read_only=True)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await open_drift_with_alerts(pilot, app)
        await pilot.press("a")
        await wait_for(pilot, lambda: "silence refused: read-only mode" in screen_text(app))
        assert not isinstance(app.screen, SilenceDialog)
    assert app.workspace.journal.entries(action="silence") == []
    assert AlertmanagerClient(alertmanager.url).silences() == []


async def test_R_on_a_highlighted_drift_alert_retrains_with_it_as_the_reason(
    alertmanager, tmp_path
):
    post_alert(alertmanager.url, {"alertname": "MrcDriftHigh", "model": "churn"})
    app = make_app(tmp_path, alertmanager.url, retrain=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")  # the Rollouts screen's panel, as the Drift screen's
        await wait_for(pilot, lambda: isinstance(app.screen, RolloutsScreen))
        await wait_for(pilot, lambda: "MrcDriftHigh" in screen_text(app))
        panel(app).query_one(DataTable).focus()
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, YesConfirm))
        text = screen_text(app)
        assert "Retrain?" in text and "reason   MrcDriftHigh" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RolloutsScreen))
        app.screen.query_one("#rollouts-table").focus()  # outside the panel: no alert reason
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, YesConfirm))
        assert "reason   MrcDriftHigh" not in screen_text(app)


async def test_stopped_alertmanager_gives_a_stale_badge_and_keys_still_answer(
    alertmanager, tmp_path
):
    post_alert(alertmanager.url, {"alertname": "MrcDriftHigh", "model": "churn"})
    app = make_app(tmp_path, alertmanager.url)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_drift_with_alerts(pilot, app)
        alertmanager.stop()
        # The last alerts stay on screen, marked stale (both in one frame: the badge
        # growing to the reason's lines relays the panel out before the rows repaint).
        await wait_for(pilot, lambda: "alerts stale" in (text := screen_text(app))
                       and "MrcDriftHigh" in text)  # fmt: skip
        assert "(stale)" in banner(app)
        assert [a.name for a in panel(app).alerts] == ["MrcDriftHigh"]
        await pilot.press("4")
        await wait_for(pilot, lambda: "Rollbacks" in banner(app))
        await pilot.press("5", "right_square_bracket")
        await wait_for(pilot, lambda: isinstance(app.screen, DriftScreen))


class _Fake(http.server.BaseHTTPRequestHandler):
    """A loopback "Alertmanager": GET answers `get`, POST answers `post` with `status`."""

    get = b"<html>gateway</html>"
    get_type = "text/html"
    post = b'"silence invalid: bad matcher \\u001b[31m"'
    status = 400

    def do_GET(self) -> None:
        self._send(200, self.get, self.get_type)

    def do_POST(self) -> None:
        self._send(self.status, self.post, "application/json")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[type[_Fake]]:
    handler = type("Handler", (_Fake,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler
    server.shutdown()
    server.server_close()


async def test_garbage_answers_are_a_stale_badge_not_a_crash(fake, tmp_path):
    app = make_app(tmp_path, fake.url)  # type: ignore[attr-defined]
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await open_drift_with_alerts(pilot, app)
        await wait_for(pilot, lambda: "not JSON" in panel(app).stale)
        assert "alerts stale: Alertmanager" in screen_text(app)
        fake.get, fake.get_type = b'{"alerts": []}', "application/json"
        await wait_for(pilot, lambda: "list of alerts" in panel(app).stale)
        assert "(stale)" in banner(app)
        await pilot.press("a")  # nothing to silence: it says so
        await wait_for(pilot, lambda: "no alert selected" in screen_text(app))


async def test_refused_silence_shows_the_message_and_journals_failed(fake, tmp_path):
    alert = {"fingerprint": "f1", "labels": {"alertname": "MrcDriftHigh", "model": "churn"},
             "annotations": {}, "status": {"state": "active", "silencedBy": []}}  # fmt: skip
    fake.get, fake.get_type = json.dumps([alert]).encode(), "application/json"
    app = make_app(tmp_path, fake.url)  # type: ignore[attr-defined]
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await open_drift_with_alerts(pilot, app)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, SilenceDialog))
        await pilot.press("enter", *"noise", "enter")
        await wait_for(pilot, lambda: "Silence?" in screen_text(app))
        await pilot.press("y")
        await wait_for(pilot, lambda: "silence invalid: bad matcher" in screen_text(app))
        assert "\x1b" not in screen_text(app)
    [entry] = app.workspace.journal.entries(action="silence")
    assert entry.outcome.value == "failed" and "silence invalid" in entry.error
