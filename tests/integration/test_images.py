"""Image builds, pushes and pulls on the real Docker engine and registry."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
import socket
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from core.cancel import CancelToken
from core.domain import Image, Progress
from core.errors import BackendUnavailable, Cancelled, NotFound, OperationFailed
from core.images import (
    LABEL_CREATED,
    LABEL_MODEL,
    LABEL_REVISION,
    LABEL_SOURCE,
    ImageBuilder,
    parse_time,
)
from tests.support.repos import BASE_TIME, commit_files, init_repo

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@pytest.fixture()
def builder(docker_service: Any) -> Iterator[ImageBuilder]:
    b = ImageBuilder(docker_service.base_url, timeout=60)
    yield b
    b.close()


@pytest.fixture()
def cleanup(docker_service: Any) -> Iterator[list[str]]:
    """Image references (tags or ids) to remove at the end of the test."""
    refs: list[str] = []
    yield refs
    api = docker_service.api()
    for ref in refs:
        with contextlib.suppress(Exception):
            api.remove_image(ref, force=True)
    api.close()


def _name(prefix: str = "mrc-test/img") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _scratch_repo(path: Path, content: str = "committed\n") -> tuple[Path, str]:
    """A repository whose image is FROM scratch (builds in well under a second)."""
    init_repo(path)
    sha = commit_files(
        path,
        {"Dockerfile": "FROM scratch\nCOPY . /src/\n", "data.txt": content},
        "scratch image",
        when=BASE_TIME,
    )
    return path, sha


def _run(gen: Iterator[Progress]) -> list[Progress]:
    return list(gen)


def _files_in(api: Any, image: str, path: str) -> dict[str, bytes]:
    """Return the files under ``path`` of ``image`` (name -> content), without running it."""
    container = api.create_container(image, command=["/nonexistent"])
    try:
        stream, _ = api.get_archive(container["Id"], path)
        data = io.BytesIO(b"".join(stream))
    finally:
        api.remove_container(container["Id"], force=True)
    out = {}
    with tarfile.open(fileobj=data) as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                out[member.name.split("/", 1)[-1]] = handle.read()
    return out


def test_build_labels_tags_and_context_from_the_commit_only(
    tmp_path: Path, builder: ImageBuilder, docker_service: Any, cleanup: list[str]
) -> None:
    repo, sha = _scratch_repo(tmp_path / "repo")
    # Working tree changes that must not reach the image.
    (repo / "data.txt").write_text("dirty edit\n")
    (repo / "untracked.txt").write_text("never committed\n")
    image = _name()
    cleanup += [f"{image}:{sha[:8]}", f"{image}:v1.2"]

    items = _run(
        builder.build(
            repo, "HEAD", image, "iris", version_tag="v1.2", source_url="https://git.example/iris"
        )
    )

    done = items[-1]
    assert done.step == "done" and isinstance(done.result, Image)
    built: Image = done.result
    assert built.commit == sha
    assert set(built.tags) == {f"{image}:{sha[:8]}", f"{image}:v1.2"}
    assert built.labels[LABEL_REVISION] == sha
    assert built.labels[LABEL_SOURCE] == "https://git.example/iris"
    assert built.labels[LABEL_MODEL] == "iris"
    # The commit's date (reproducible builds), in RFC 3339.
    assert built.labels[LABEL_CREATED] == "2026-01-01T00:00:00Z"
    assert parse_time(built.labels[LABEL_CREATED]) == datetime.fromtimestamp(BASE_TIME, UTC)
    assert any(p.step == "build" and p.message.startswith("Step 2/") for p in items)
    assert builder.inspect(f"{image}:v1.2").id == built.id

    files = _files_in(docker_service.api(), f"{image}:{sha[:8]}", "/src")
    assert files["data.txt"] == b"committed\n"
    assert "untracked.txt" not in files
    assert set(files) == {"Dockerfile", "data.txt"}


def test_build_of_an_older_commit_uses_that_commit(
    tmp_path: Path, builder: ImageBuilder, docker_service: Any, cleanup: list[str]
) -> None:
    repo, first = _scratch_repo(tmp_path / "repo", "first\n")
    commit_files(repo, {"data.txt": "second\n"}, "second", when=BASE_TIME + 60)
    image = _name()
    cleanup.append(f"{image}:{first[:8]}")

    built = _run(builder.build(repo, first[:12], image, "iris"))[-1].result

    assert built.commit == first
    assert _files_in(docker_service.api(), built.id, "/src")["data.txt"] == b"first\n"


def test_unknown_commit_and_missing_dockerfile_are_not_found(
    tmp_path: Path, builder: ImageBuilder
) -> None:
    repo, _ = _scratch_repo(tmp_path / "repo")
    with pytest.raises(NotFound, match="deadbeef"):
        _run(builder.build(repo, "deadbeef", _name(), "iris"))
    with pytest.raises(NotFound, match=r"docker/Dockerfile\.gpu"):
        _run(builder.build(repo, "HEAD", _name(), "iris", dockerfile="docker/Dockerfile.gpu"))


def test_failing_dockerfile_surfaces_the_daemon_error(
    tmp_path: Path, builder: ImageBuilder, python_base_image: str, cleanup: list[str]
) -> None:
    init_repo(tmp_path / "repo")
    commit_files(
        tmp_path / "repo",
        {"Dockerfile": f"FROM {python_base_image}\nRUN echo preparing-model && false\n"},
        "broken build",
        when=BASE_TIME,
    )
    image = _name()
    cleanup.append(image)

    with pytest.raises(OperationFailed) as info:
        _run(builder.build(tmp_path / "repo", "HEAD", image, "iris"))

    message = str(info.value)
    assert "returned a non-zero code: 1" in message
    assert "preparing-model" in message  # the last log lines come along
    assert not builder.exists(f"{image}:latest")


def test_cancel_stops_the_build_on_the_daemon(
    tmp_path: Path, builder: ImageBuilder, python_base_image: str, docker_service: Any
) -> None:
    marker = uuid.uuid4().hex[:12]
    init_repo(tmp_path / "repo")
    commit_files(
        tmp_path / "repo",
        {"Dockerfile": f"FROM {python_base_image}\nRUN echo {marker} && sleep 120\n"},
        "slow build",
        when=BASE_TIME,
    )
    api = docker_service.api()

    def building() -> list[dict[str, Any]]:
        return [c for c in api.containers() if marker in c.get("Command", "")]

    cancel = CancelToken()
    started = None
    with pytest.raises(Cancelled):
        for item in builder.build(tmp_path / "repo", "HEAD", _name(), "iris", cancel=cancel):
            if marker in item.message and "echo" not in item.message:
                # The step printed its marker: it is running `sleep` on the daemon now.
                deadline = time.monotonic() + 30
                while not building() and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert building(), "the RUN step should be running on the daemon"
                started = time.monotonic()
                cancel.cancel()
    assert started is not None
    assert time.monotonic() - started < 5

    deadline = time.monotonic() + 30
    while building() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not building(), "the daemon kept running the cancelled build step"


def test_push_remove_pull_roundtrip(
    tmp_path: Path, builder: ImageBuilder, registry: str, cleanup: list[str]
) -> None:
    repo, sha = _scratch_repo(tmp_path / "repo", f"{uuid.uuid4()}\n")
    image = f"{registry}/{_name('models/iris')}"
    ref = f"{image}:{sha[:8]}"
    cleanup.append(ref)
    built = _run(builder.build(repo, "HEAD", image, "iris"))[-1].result

    pushed = _run(builder.push(ref))

    layers = [p for p in pushed if p.step == "push" and p.detail]
    assert layers and all(p.fraction is None or 0 <= p.fraction <= 1 for p in layers)
    assert any(p.message == "Pushed" and p.fraction == 1.0 for p in layers)
    assert pushed[-1].step == "done" and pushed[-1].detail.startswith("sha256:")

    builder.remove(ref, force=True)
    with pytest.raises(NotFound):
        builder.inspect(ref)

    pulled = _run(builder.pull(ref))

    result = pulled[-1].result
    assert isinstance(result, Image)
    assert result.id == built.id
    assert result.commit == sha


def test_push_to_a_closed_port_surfaces_the_daemon_error(
    tmp_path: Path, builder: ImageBuilder, cleanup: list[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo, sha = _scratch_repo(tmp_path / "repo")
    image = f"127.0.0.1:{port}/{_name('models/iris')}"
    cleanup.append(f"{image}:{sha[:8]}")
    _run(builder.build(repo, "HEAD", image, "iris"))

    with pytest.raises(OperationFailed, match="connection refused") as info:
        _run(builder.push(f"{image}:{sha[:8]}"))
    assert f"127.0.0.1:{port}" in str(info.value)


class _RefusingRegistry(BaseHTTPRequestHandler):
    """A registry endpoint that asks for credentials and refuses every one."""

    # The engine tries TLS first: give up quickly on bytes that are not HTTP.
    timeout = 1

    def do_GET(self) -> None:
        self.server.seen.append(self.headers.get("Authorization", ""))  # type: ignore[attr-defined]
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="models"')
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", "application/json")
        body = json.dumps(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        ).encode()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_POST = do_PUT = do_GET

    def log_message(self, *args: Any) -> None:
        pass


def test_registry_refusal_surfaces_and_credentials_come_from_docker_config(
    tmp_path: Path,
    builder: ImageBuilder,
    cleanup: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingRegistry)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = f"127.0.0.1:{server.server_address[1]}"
    no_credentials = tmp_path / "empty-config"
    no_credentials.mkdir()
    config = tmp_path / "docker-config"
    config.mkdir()
    secret = base64.b64encode(b"ci-bot:s3cret").decode()
    (config / "config.json").write_text(json.dumps({"auths": {host: {"auth": secret}}}))
    try:
        repo, sha = _scratch_repo(tmp_path / "repo")
        ref = f"{host}/{_name('models/iris')}:{sha[:8]}"
        cleanup.append(ref)
        _run(builder.build(repo, "HEAD", ref.rsplit(":", 1)[0], "iris"))

        monkeypatch.setenv("DOCKER_CONFIG", str(no_credentials))
        with pytest.raises(OperationFailed, match="no basic auth credentials"):
            _run(builder.push(ref))

        # With credentials the engine sends them, is refused again and retries with a
        # back-off (reported in the stream); the user cancels.
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        cancel = CancelToken()
        retrying = None
        with pytest.raises(Cancelled):
            for item in builder.push(ref, cancel=cancel):
                if item.message.startswith("Retrying in"):
                    retrying = time.monotonic()
                    cancel.cancel()
        assert retrying is not None and time.monotonic() - retrying < 3
    finally:
        server.shutdown()
        server.server_close()

    assert f"Basic {secret}" in server.seen  # type: ignore[attr-defined]


def test_unreachable_daemon_is_backend_unavailable_quickly(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/no-such/docker.sock"
    builder = ImageBuilder(url, timeout=5)
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"cannot reach Docker at unix://"):
        builder.inspect("anything:latest")
    with pytest.raises(BackendUnavailable, match=r"no-such/docker\.sock"):
        _run(builder.push("anything:latest"))
    assert time.monotonic() - start < 3


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_unreachable_ssh_host_is_backend_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ssh://nobody@127.0.0.1:{port}"
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match=f"cannot reach Docker at {url}"):
        ImageBuilder(url, timeout=5).ping()
    assert time.monotonic() - start < 5
