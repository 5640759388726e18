"""Debian's Prometheus on a loopback port, with backfilled samples and live scrape targets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from tests.services.common import ReadyEndpoint, Service, ServiceError, free_port


def scrape_config(targets: list[str], scrape_interval: str) -> str:
    """Returns a prometheus.yml scraping `targets` ("host:port" or full URLs to the metrics).

    Targets with the same scheme and path share one job; jobs are named scrape-N in order.
    """
    jobs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for target in targets:
        if "://" not in target:
            target = f"http://{target}/metrics"
        parts = urlsplit(target)
        jobs[(parts.scheme, parts.path or "/metrics")].append(parts.netloc)
    lines = [
        "global:",
        f"  scrape_interval: {scrape_interval}",
        f"  evaluation_interval: {scrape_interval}",
        "scrape_configs:",
    ]
    for n, ((scheme, path), hosts) in enumerate(jobs.items()):
        lines += [
            f"  - job_name: scrape-{n}",
            f"    scheme: {scheme}",
            f"    metrics_path: {json.dumps(path)}",
            "    static_configs:",
            f"      - targets: {json.dumps(hosts)}",
        ]
    return "\n".join(lines) + "\n"


def rule_files_config(rule_files: Sequence[Path], alertmanagers: Sequence[str] = ()) -> str:
    """Returns prometheus.yml lines loading `rule_files` (and sending alerts to `alertmanagers`,
    "host:port"), to append to :func:`scrape_config`'s text ("" when both are empty)."""
    lines = []
    if rule_files:
        lines += ["rule_files:"] + [f"  - {json.dumps(str(p))}" for p in rule_files]
    if alertmanagers:
        lines += [
            "alerting:",
            "  alertmanagers:",
            "    - static_configs:",
            f"        - targets: {json.dumps(alertmanagers)}",
        ]
    return "\n".join(lines) + "\n" if lines else ""


class Prometheus(ReadyEndpoint):
    """A Prometheus server on 127.0.0.1:`port` with its TSDB in `state_dir`/data.

    `rule_files` (set before :meth:`start`) are loaded as rule files; `alertmanagers`
    ("host:port") receive the alerts (see :func:`rule_files_config`).
    """

    rule_files: tuple[Path, ...] = ()
    alertmanagers: tuple[str, ...] = ()

    name = "prometheus"

    def __init__(
        self,
        state_dir: Path,
        openmetrics: str | None = None,
        scrape_targets: list[str] | None = None,
        scrape_interval: str = "1s",
    ) -> None:
        self.state_dir = state_dir
        self.openmetrics = openmetrics
        self.scrape_targets = list(scrape_targets or [])
        self.scrape_interval = scrape_interval
        self.port = free_port()
        self.log_path = state_dir / "prometheus.log"
        self.data_dir = state_dir / "data"
        self.service: Service | None = None

    def backfill(self, openmetrics: str) -> None:
        """Turns OpenMetrics text (ending in "# EOF") into TSDB blocks in the data directory.

        Raises ServiceError with promtool's output when it rejects the input.
        """
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        source = self.state_dir / "backfill.om"
        text = openmetrics if openmetrics.endswith("\n") else openmetrics + "\n"
        source.write_text(text)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(source),
                str(self.data_dir),
            ],
            capture_output=True,
            text=True,
        )
        with open(self.log_path, "a") as log:
            log.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise ServiceError(
                self.name, f"promtool rejected the samples: {proc.stderr.strip()}", self.log_path
            )

    def start(self, timeout: float = 30.0) -> None:
        """Backfills, writes the config and starts Prometheus; raises ServiceError on failure."""
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not os.path.exists(binary):
            raise ServiceError(self.name, "not installed (apt-get install prometheus)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.openmetrics is not None:
            self.backfill(self.openmetrics)
        config = self.state_dir / "prometheus.yml"
        config.write_text(
            scrape_config(self.scrape_targets, self.scrape_interval)
            + rule_files_config(self.rule_files, self.alertmanagers)
        )
        self.service = Service(
            self.name,
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir}",
                # Backfilled samples may be old; keep every block.
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--web.enable-admin-api",
                "--log.level=warn",
            ],
            self.log_path,
            cwd=self.state_dir,
        )
        self.service.start()
        self.service.wait_ready(self.healthy, timeout, f"{self.url}/-/ready")

    def stop(self) -> None:
        """Stops Prometheus."""
        if self.service is not None:
            self.service.stop()
            self.service = None
