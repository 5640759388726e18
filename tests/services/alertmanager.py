"""Debian's Alertmanager on a loopback port, without clustering."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.services.common import ReadyEndpoint, Service, ServiceError, free_port

CONFIG = """\
route:
  receiver: "null"
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


class Alertmanager(ReadyEndpoint):
    """An Alertmanager on 127.0.0.1:`port` with its data in `state_dir`/data."""

    name = "alertmanager"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.log_path = state_dir / "alertmanager.log"
        self.data_dir = state_dir / "data"
        self.service: Service | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Writes the config and starts Alertmanager; raises ServiceError on failure."""
        binary = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
        if not os.path.exists(binary):
            raise ServiceError(self.name, "not installed (apt-get install prometheus-alertmanager)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "alertmanager.yml"
        config.write_text(CONFIG)
        self.service = Service(
            self.name,
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={self.data_dir}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                # No gossip: a single instance on loopback.
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            self.log_path,
            cwd=self.state_dir,
        )
        self.service.start()
        self.service.wait_ready(self.healthy, timeout, f"{self.url}/-/ready")

    def stop(self) -> None:
        """Stops Alertmanager."""
        if self.service is not None:
            self.service.stop()
            self.service = None
