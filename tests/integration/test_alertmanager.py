"""The Alertmanager client and ``mrc alerts`` against the real Alertmanager.

Faults are real too: a stopped Alertmanager, a loopback server answering
garbage (HTML, wrong JSON shapes) or nothing at all within the timeout.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.alertmanager import AlertmanagerClient, Matcher
from core.errors import BackendUnavailable, InvalidResponse, OperationFailed
from core.journal import Journal
from core.services.actions import run_silence
from tui.cli.output import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "\x1b]0;owned\x07[@click=app.quit]x[/x]\u202e"


def post_alert(url: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> None:
    """Posts one firing alert to Alertmanager's API v2."""
    body = json.dumps([{"labels": labels, "annotations": annotations or {}}]).encode()
    request = urllib.request.Request(
        f"{url}/api/v2/alerts", data=body, method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10):
        pass


def config_text(url: str, timeout: str = "5s") -> str:
    """Returns a configuration with models churn and fraud and Alertmanager at `url`."""
    return f"""
[alertmanager]
url = "{url}"
timeout = "{timeout}"

[[model]]
name = "churn"
repo = "."

  [[model.target]]
  name = "prod"
  kind = "kubernetes"
  context = "prod"
  deployment = "churn"

[[model]]
name = "fraud"
repo = "."

  [[model.target]]
  name = "prod"
  kind = "kubernetes"
  context = "prod"
  deployment = "fraud"
"""


def mrc(
    tmp_path: Path, url: str, *args: str, timeout: str = "5s"
) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m tui.cli --config ... ARGS`` as the user does; never raises."""
    config = tmp_path / "mrc.toml"
    config.write_text(config_text(url, timeout))
    env = {**os.environ, "MRC_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    env.pop("MRC_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "--config", str(config), *args],
        input="", capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip


class _Garbage(http.server.BaseHTTPRequestHandler):
    """Answers every request with `body` (status 200) or not at all while `hang` is set."""

    body = b"<html><body>502 Bad Gateway</body></html>"
    content_type = "text/html"
    hang: threading.Event | None = None

    def _answer(self) -> None:
        if self.hang is not None:
            self.hang.wait(10)
            return
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def garbage() -> Iterator[type[_Garbage]]:
    """A loopback server whose answers the test sets on the yielded handler class."""
    handler = type("Handler", (_Garbage,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler
    if handler.hang is not None:
        handler.hang.set()
    server.shutdown()
    server.server_close()


def test_lists_alerts_of_a_model_with_silence_state(alertmanager):
    post_alert(alertmanager.url, {"alertname": "MrcDrift", "model": "churn", "severity": "page"},
               {"summary": "drift at or above alert"})  # fmt: skip
    post_alert(alertmanager.url, {"alertname": "MrcDrift", "model": "fraud"})
    client = AlertmanagerClient(alertmanager.url, timeout=5)
    alerts = client.alerts("churn")
    assert [(a.name, a.model, a.summary, a.silenced) for a in alerts] == [
        ("MrcDrift", "churn", "drift at or above alert", False)
    ]
    assert {a.model for a in client.alerts()} == {"churn", "fraud"}

    silence = client.create_silence(
        [Matcher("model", "churn")], duration=3600, created_by="ops", comment="known"
    )
    silenced = client.alerts("churn")[0]
    assert silenced.silenced_by == (silence,) and silenced.state == "suppressed"
    client.expire_silence(silence)
    states = {s["id"]: s["status"]["state"] for s in client.silences()}
    assert states[silence] == "expired"


def test_journalled_silence_reaches_alertmanager(alertmanager, tmp_path):
    post_alert(alertmanager.url, {"alertname": "MrcDrift", "model": "churn"})
    client = AlertmanagerClient(alertmanager.url, timeout=5)
    alert = client.alerts("churn")[0]
    with Journal(tmp_path / "journal.sqlite3") as journal:
        silence_id = run_silence(journal, client, alert, duration=1800, reason="retraining")
        row = journal.entries(model="churn")[0]
    assert (row.action, row.outcome.value, row.reason) == ("silence", "done", "retraining")
    [silence] = [s for s in client.silences() if s["id"] == silence_id]
    assert silence["comment"] == "retraining"
    assert {m["name"]: m["value"] for m in silence["matchers"]} == alert.labels


def test_refused_silence_carries_alertmanagers_message_and_journals_failed(alertmanager, tmp_path):
    client = AlertmanagerClient(alertmanager.url, timeout=5)
    with pytest.raises(OperationFailed, match="Alertmanager refused") as refused:
        client.create_silence([Matcher("model", "(", regex=True)], duration=60,
                              created_by="ops", comment="bad regex")  # fmt: skip
    assert "400" in str(refused.value)
    post_alert(alertmanager.url, {"alertname": "MrcDrift", "model": "churn"})
    alert = client.alerts("churn")[0]
    with Journal(tmp_path / "journal.sqlite3") as journal:
        with pytest.raises(OperationFailed):
            run_silence(journal, client, alert, duration=-60, reason="in the past")
        row = journal.entries(model="churn")[0]
    assert row.outcome.value == "failed" and "Alertmanager refused" in row.error


def test_stopped_alertmanager_is_unavailable(alertmanager):
    client = AlertmanagerClient(alertmanager.url, timeout=2)
    alertmanager.stop()
    with pytest.raises(BackendUnavailable, match="cannot reach Alertmanager"):
        client.alerts()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
        (b'{"alerts": []}', "application/json"),
        (b'[{"labels": {"alertname": "x"}}]', "application/json"),
        (b'[{"fingerprint": "f", "labels": {"a": 1}}]', "application/json"),
        (b'[{"fingerprint": "f", "labels": {}, "status": {"silencedBy": "s"}}]',
         "application/json"),
    ],
)  # fmt: skip
def test_garbage_is_an_invalid_response(garbage, body, content_type):
    garbage.body, garbage.content_type = body, content_type
    with pytest.raises(InvalidResponse):
        AlertmanagerClient(garbage.url, timeout=2).alerts()


def test_silence_answer_without_id_is_an_invalid_response(garbage):
    garbage.body, garbage.content_type = b"{}", "application/json"
    with pytest.raises(InvalidResponse):
        AlertmanagerClient(garbage.url, timeout=2).create_silence(
            [Matcher("a", "b")], duration=60, created_by="ops", comment="c"
        )


def test_slow_alertmanager_times_out(garbage):
    garbage.hang = threading.Event()
    with pytest.raises(BackendUnavailable, match="did not answer within"):
        AlertmanagerClient(garbage.url, timeout=0.3).alerts()


def test_cli_lists_alerts_as_json(alertmanager, tmp_path):
    post_alert(alertmanager.url, {"alertname": "MrcDrift", "model": "churn"},
               {"summary": HOSTILE})  # fmt: skip
    post_alert(alertmanager.url, {"alertname": "MrcSourceDown", "model": "fraud"})
    proc = mrc(tmp_path, alertmanager.url, "alerts", "--json")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    alerts = json.loads(proc.stdout)["alerts"]
    assert [(a["model"], a["name"], a["state"]) for a in alerts] == [
        ("churn", "MrcDrift", "active"),
        ("fraud", "MrcSourceDown", "active"),
    ]
    assert alerts[0]["annotations"]["summary"] == HOSTILE

    text = mrc(tmp_path, alertmanager.url, "alerts", "churn")
    assert text.returncode == EXIT_OK, text.stderr
    assert "MrcDrift" in text.stdout and "MrcSourceDown" not in text.stdout
    assert "\x1b" not in text.stdout and "\x07" not in text.stdout


def test_cli_exit_codes_for_faults(alertmanager, garbage, tmp_path):
    url = alertmanager.url
    alertmanager.stop()
    down = mrc(tmp_path, url, "alerts", "--json")
    assert down.returncode == EXIT_UNAVAILABLE
    assert "cannot reach Alertmanager" in json.loads(down.stdout)["error"]

    bad = mrc(tmp_path, garbage.url, "alerts")
    assert bad.returncode == EXIT_UNAVAILABLE
    assert "not JSON" in bad.stderr

    (tmp_path / "none").mkdir()
    config = tmp_path / "none" / "mrc.toml"
    config.write_text(config_text(url).split("[[model]]", 1)[1].join(["[[model]]", ""]))
    env = {**os.environ, "MRC_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    missing = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--config", str(config), "alerts"],
        input="", capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip
    assert missing.returncode == EXIT_USAGE
    assert "no Alertmanager configured" in missing.stderr
