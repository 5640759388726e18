"""Debian's docker-registry (distribution 2.x) on a loopback port with its own storage."""

from __future__ import annotations

import os
import shutil
import urllib.request
from pathlib import Path

from tests.services.common import Service, ServiceError, free_port, scratch_dir


class Registry:
    """An image registry serving plain HTTP on 127.0.0.1:`port`, storing below `state_dir`."""

    name = "registry"

    def __init__(self, state_dir: Path, port: int | None = None) -> None:
        self.state_dir = state_dir
        self.port = port or free_port()
        self.log_path = state_dir / "registry.log"
        self.service: Service | None = None

    @property
    def address(self) -> str:
        """Returns "127.0.0.1:PORT", usable as an image reference prefix."""
        return f"127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        """Returns whether GET /v2/ answers 200."""
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def start(self, timeout: float = 30.0) -> None:
        """Writes the config and starts the registry; raises ServiceError when it fails."""
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        if not os.path.exists(binary):
            raise ServiceError(self.name, "not installed (apt-get install docker-registry)")
        storage = scratch_dir(self.state_dir) / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        debug_port = free_port()
        config = self.state_dir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {storage}\n"
            "  delete:\n    enabled: true\n"
            "http:\n"
            f"  addr: 127.0.0.1:{self.port}\n"
            f"  debug:\n    addr: 127.0.0.1:{debug_port}\n"
        )
        self.service = Service(self.name, [binary, "serve", str(config)], self.log_path)
        self.service.start()
        self.service.wait_ready(self.healthy, timeout, f"{self.address}/v2/ to answer")

    def stop(self) -> None:
        """Stops the registry process."""
        if self.service is not None:
            self.service.stop()
            self.service = None
