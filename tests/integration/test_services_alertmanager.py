"""Alertmanager is real: its API v2 accepts alerts and silences, and it stops cleanly."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = [pytest.mark.integration]


def _call(url: str, method: str = "GET", body: object = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        text = r.read().decode()
    return json.loads(text) if text else None


def test_accepts_alerts_and_silences(alertmanager):
    labels = {"alertname": "MrcSmoke", "model": "m1"}
    _call(f"{alertmanager.url}/api/v2/alerts", "POST", [{"labels": labels}])
    alerts = _call(f"{alertmanager.url}/api/v2/alerts")
    assert [a["labels"] for a in alerts] == [labels]

    now = datetime.now(UTC)
    silence = {
        "matchers": [{"name": "alertname", "value": "MrcSmoke", "isRegex": False}],
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "smoke",
        "comment": "smoke test",
    }
    created = _call(f"{alertmanager.url}/api/v2/silences", "POST", silence)
    assert isinstance(created, dict) and created["silenceID"]
    silences = _call(f"{alertmanager.url}/api/v2/silences")
    assert [s["id"] for s in silences] == [created["silenceID"]]

    alertmanager.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{alertmanager.url}/-/ready", timeout=2)
