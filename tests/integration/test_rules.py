"""``mrc rules`` as the operator runs it, and the rules at work in a real Prometheus.

Every file ``mrc rules`` writes passes ``promtool check rules``; an invalid
configuration or option writes nothing and names the problem; a file
promtool rejects is never written. Then a real Prometheus scrapes a running
``mrc watch`` with the generated rules loaded, and the drift alert fires.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_watch import FEATURES, TOKEN, Watch, deploy, env_for, write_config
from tests.services.common import ServiceError
from tests.services.fixtures import service_unavailable
from tests.services.prometheus import Prometheus
from tests.support.exporter import AFTER, Exporter

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = "/usr/bin/promtool"

CONFIG = """
[[model]]
name = "{name}"
repo = "{repo}"

  [[model.target]]
  name = "prod"
  kind = "local"
  command = "{{python}} -m http.server {{port}}"
  port = 18080

  [model.metrics]
  source = "prometheus"
  url = "http://127.0.0.1:9090"
  prediction_histogram = "model_prediction_score"
  error_rate = "sum(rate(model_errors_total[5m]))"

  [model.drift]
  warn = {warn}
  alert = {alert}

  [model.guard]
  max_error_rate = 0.05
  max_latency_p95 = 0.5
"""


def mrc(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL,
        env=env or {**os.environ, "PYTHONPATH": str(ROOT), "MRC_STATE_DIR": str(tmp_path / "s")},
    )  # fmt: skip


def config(tmp_path: Path, name: str = "churn", warn: float = 0.1, alert: float = 0.25) -> Path:
    path = tmp_path / "mrc.toml"
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    path.write_text(CONFIG.format(name=name, repo=repo, warn=warn, alert=alert))
    return path


def promtool_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )


def test_rules_file_passes_promtool_and_names_model_target_and_commands(tmp_path: Path) -> None:
    out = tmp_path / "rules" / "mrc.yml"
    out.parent.mkdir()
    proc = mrc(
        tmp_path, "--config", str(config(tmp_path)), "rules", "--out", str(out), "--for", "2m"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    check = promtool_check(out)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 6 rules found" in check.stdout
    text = out.read_text()
    for alert in (
        "MrcDriftWarning", "MrcDriftAlert", "MrcHighErrorRate", "MrcHighLatency",
        "MrcSourceDown", "MrcExporterDown",
    ):  # fmt: skip
        assert f"- alert: {alert}\n" in text
    assert 'mrc_drift_score{model=\\"churn\\"} >= 0.1"' in text
    assert 'mrc_drift_score{model=\\"churn\\"} >= 0.25"' in text
    assert "for: 2m" in text
    assert 'target: "prod"' in text
    assert "`mrc rollback churn --target prod`" in text
    assert "`mrc history churn --target prod`" in text
    assert "retrain" in text
    assert [p.name for p in out.parent.iterdir()] == ["mrc.yml"]  # no temporary file left


def test_rules_on_stdout_are_checked_too(tmp_path: Path) -> None:
    proc = mrc(tmp_path, "--config", str(config(tmp_path)), "rules")
    assert proc.returncode == 0, proc.stderr
    written = tmp_path / "stdout.yml"
    written.write_text(proc.stdout)
    assert promtool_check(written).returncode == 0


def test_hostile_model_name_is_escaped_for_promql_and_templates(tmp_path: Path) -> None:
    """A model name with quotes, template braces and a backslash still gives a valid file
    whose matchers and labels carry the name unchanged."""
    name = 'we\\\\ird \\"{{ .x }}\\" name'  # TOML escapes: we\\ird "{{ .x }}" name
    out = tmp_path / "mrc.yml"
    proc = mrc(tmp_path, "--config", str(config(tmp_path, name=name)), "rules", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    check = promtool_check(out)
    assert check.returncode == 0, check.stdout + check.stderr


def test_conflicting_thresholds_name_the_key_and_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "mrc.yml"
    proc = mrc(
        tmp_path, "--config", str(config(tmp_path, warn=0.3, alert=0.2)), "rules", "--out", str(out)
    )
    assert proc.returncode == 2
    assert "drift.warn" in proc.stderr and "must not be above alert" in proc.stderr
    assert not out.exists()
    assert list(tmp_path.glob(".mrc-rules-*")) == []


@pytest.mark.parametrize("value", ["soon", "1.5s"])
def test_a_bad_for_duration_is_a_usage_error_and_writes_nothing(tmp_path: Path, value: str) -> None:
    out = tmp_path / "mrc.yml"
    proc = mrc(
        tmp_path, "--config", str(config(tmp_path)), "rules", "--out", str(out), "--for", value
    )
    assert proc.returncode == 2, proc.stderr
    assert "--for" in proc.stderr
    assert not out.exists()


def test_a_file_promtool_rejects_is_never_written(tmp_path: Path) -> None:
    """The previous rule file stays as it was when promtool rejects the new one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "promtool"
    fake.write_text("#!/bin/sh\necho 'FAILED: rejected for the test' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "mrc.yml"
    out.write_text("groups: []\n")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "MRC_STATE_DIR": str(tmp_path / "s"),
    }
    proc = mrc(tmp_path, "--config", str(config(tmp_path)), "rules", "--out", str(out), env=env)
    assert proc.returncode == 1
    assert "promtool rejected" in proc.stderr and "rejected for the test" in proc.stderr
    assert out.read_text() == "groups: []\n"
    assert list(tmp_path.glob(".mrc-rules-*")) == []


# -- a real Prometheus scraping mrc watch with the generated rules ---------------------


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    with Exporter(features=FEATURES, token=TOKEN, per_scrape=500) as e:
        e.shift(AFTER)
        yield e


def _alerts(prom: Prometheus) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{prom.url}/api/v1/alerts", timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return list(body["data"]["alerts"])


def _query(prom: Prometheus, query: str) -> list[dict[str, Any]]:
    url = f"{prom.url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return list(json.load(r)["data"]["result"])


@pytest.mark.prometheus
def test_prometheus_scraping_mrc_watch_fires_the_generated_drift_alert(
    exporter: Exporter, tmp_path: Path
) -> None:
    config_path, state = write_config(tmp_path, exporter), tmp_path / "state"
    env = env_for(config_path, state)
    rules = tmp_path / "mrc-rules.yml"
    proc = subprocess.run(
        [sys.executable, "-m", "tui.cli", "rules", "--out", str(rules), "--for", "2s"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ws, _ = deploy(config_path, state)
    watch = Watch(env)
    prom = None
    try:
        target = urllib.parse.urlsplit(watch.url).netloc
        prom = Prometheus(tmp_path / "prometheus", scrape_targets=[target], scrape_interval="1s")
        prom.rule_files = (rules,)
        try:
            prom.start()
        except ServiceError as e:
            service_unavailable(e)
        deadline = time.monotonic() + 90
        seen: list[dict[str, Any]] = []
        firing: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not firing:
            seen = _alerts(prom)
            firing = [
                a
                for a in seen
                if a["labels"]["alertname"] == "MrcDriftAlert" and a["state"] == "firing"
            ]
            time.sleep(0.5)
        assert firing, f"no firing MrcDriftAlert: {seen}\nmrc watch: {watch.lines}"
        labels = firing[0]["labels"]
        assert labels["model"] == "churn" and labels["severity"] == "critical"
        assert labels["target"] == "local"
        assert labels["kind"] in ("prediction", "feature")
        assert "mrc rollback churn --target local" in firing[0]["annotations"]["command"]
        states = {a["labels"]["alertname"] for a in seen}
        assert "MrcExporterDown" not in states and "MrcSourceDown" not in states
        assert _query(prom, 'mrc_source_up{model="churn"}')[0]["value"][1] == "1"
    finally:
        if prom is not None:
            prom.stop()
        code = watch.stop()
        ws.close()
    assert code == 0, watch.lines
