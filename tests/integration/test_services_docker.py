"""The Docker engine, the Python base image and the registry are real and work together."""

from __future__ import annotations

import io
import tarfile
import time
import urllib.request
import uuid

import pytest

from tests.services.common import free_port

pytestmark = [pytest.mark.integration, pytest.mark.docker]

SERVER = """\
import http.server, os, sys

BODY = os.environ["GREETING"].encode()

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def _context(base: str) -> io.BytesIO:
    dockerfile = (
        f"FROM {base}\n"
        "COPY server.py /app/server.py\n"
        'ENTRYPOINT ["/usr/bin/python3", "/app/server.py"]\n'
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in (("Dockerfile", dockerfile), ("server.py", SERVER)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _get(url: str, timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return bytes(r.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.registry
def test_build_run_push_pull(docker_service, python_base_image, registry):
    client = docker_service.client()
    assert client.info()["Driver"] == "vfs"
    repo = f"{registry}/smoke/server-{uuid.uuid4().hex[:8]}"
    image, _logs = client.images.build(fileobj=_context(python_base_image), custom_context=True,
                                       tag=f"{repo}:v1", rm=True)  # fmt: skip
    port = free_port()
    greeting = f"hello {uuid.uuid4().hex}"
    container = client.containers.run(
        f"{repo}:v1",
        [str(port)],
        detach=True,
        network_mode="host",
        environment={"GREETING": greeting},
    )
    try:
        assert _get(f"http://127.0.0.1:{port}/").decode() == greeting
    finally:
        container.remove(force=True)

    for line in client.images.push(repo, tag="v1", stream=True, decode=True):
        assert "error" not in line, line
    with urllib.request.urlopen(f"http://{registry}/v2/{repo.split('/', 1)[1]}/tags/list") as r:
        assert b'"v1"' in r.read()

    client.images.remove(f"{repo}:v1", force=True)
    assert not client.images.list(name=repo)
    pulled = client.images.pull(repo, tag="v1")
    assert pulled.id == image.id
    assert pulled.attrs["Config"]["Entrypoint"] == ["/usr/bin/python3", "/app/server.py"]
    client.images.remove(f"{repo}:v1", force=True)


def test_base_image_has_python(docker_service, python_base_image):
    client = docker_service.client()
    out = client.containers.run(
        python_base_image, ["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2])"],
        remove=True, network_mode="none",
    )  # fmt: skip
    assert out.decode().strip() == "(3, 11)"
    assert docker_service.api().version()["ApiVersion"]
