"""A tiny HTTP model server in a git repository, built into images on the Python base image.

The server is Python 3 standard library only. It listens on ``$PORT`` (the
Docker target sets it) and answers:

* ``GET /healthz`` -> 200 ``ok`` (or 500 in the unhealthy variant);
* ``GET /version`` -> 200 JSON ``{"version": ..., "commit": $MRC_COMMIT}``.

The Dockerfile may define a Docker ``HEALTHCHECK`` (running the server file
with ``--check``, which probes ``/healthz`` on ``$PORT``) so both health paths
of the Docker target can be exercised: the engine's health status, or the
target's own HTTP probe when the image has no health check.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.repos import BASE_TIME, commit_files, init_repo

SERVER = """\
import json
import os
import signal
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = {version!r}
HEALTHY = {healthy!r}
PORT = int(os.environ.get("PORT", "8080"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200 if HEALTHY else 500, b"ok" if HEALTHY else b"model not loaded")
        elif self.path == "/version":
            body = {{"version": VERSION, "commit": os.environ.get("MRC_COMMIT", "")}}
            self.reply(200, json.dumps(body).encode(), "application/json")
        else:
            self.reply(404, b"not found")

    def reply(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s\\n" % (fmt % args))


def check():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{{PORT}}/healthz", timeout=2) as r:
            return 0 if r.status == 200 else 1
    except Exception as err:
        print(err)
        return 1


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(check())
    # As PID 1 of a container the default SIGTERM action does not apply: exit explicitly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"model server {{VERSION}} listening on :{{PORT}} (healthy={{HEALTHY}})", flush=True)
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
"""

# The server file is copied last so that the instructions before it are shared (cached)
# by every version of the server.
DOCKERFILE = """\
FROM {base}
{healthcheck}CMD ["python3", "-u", "/app/server.py"]
COPY server.py /app/server.py
"""

HEALTHCHECK = (
    "HEALTHCHECK --interval=1s --timeout=3s --start-period=2s --retries=3 "
    'CMD ["python3", "/app/server.py", "--check"]\n'
)


def model_server_files(
    base_image: str, version: str, *, healthy: bool = True, healthcheck: bool = True
) -> dict[str, str | bytes]:
    """Return the files (path -> content) of a model-server repository at ``version``."""
    return {
        "server.py": SERVER.format(version=version, healthy=healthy),
        "Dockerfile": DOCKERFILE.format(
            base=base_image, healthcheck=HEALTHCHECK if healthcheck else ""
        ),
    }


def commit_model_server(
    repo: Path,
    base_image: str,
    version: str,
    *,
    healthy: bool = True,
    healthcheck: bool = True,
    step: int = 0,
) -> str:
    """Commit the model server at ``version`` into ``repo`` (created if needed); return the sha.

    ``step`` shifts the commit time so successive commits are ordered.
    """
    if not (repo / ".git").exists():
        init_repo(repo)
    return commit_files(
        repo,
        model_server_files(base_image, version, healthy=healthy, healthcheck=healthcheck),
        f"model server {version}",
        when=BASE_TIME + 60 * step,
    )


def served_version(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> dict[str, str]:
    """Return the JSON of ``GET /version`` on ``host:port``; raise OSError when nothing answers."""
    with urllib.request.urlopen(f"http://{host}:{port}/version", timeout=timeout) as r:
        return dict(json.loads(r.read()))


def wait_served_version(
    port: int, version: str, timeout: float = 30.0, host: str = "127.0.0.1"
) -> float:
    """Poll ``/version`` until it reports ``version``; return the seconds waited.

    Raises AssertionError with the last answer when it does not within ``timeout``.
    """
    start = time.monotonic()
    last: object = None
    while time.monotonic() - start < timeout:
        try:
            last = served_version(port, host)
            if last.get("version") == version:
                return time.monotonic() - start
        except (OSError, urllib.error.URLError, ValueError) as err:
            last = err
        time.sleep(0.05)
    raise AssertionError(f"port {port} did not serve {version} within {timeout}s (last: {last})")
