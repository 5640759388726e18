"""Errors the Docker engine reports inside build/push/pull streams (HTTP 200), and their progress.

The chunks below were recorded from a Docker 20.10 engine (classic builder) and a
registry; the engine client is replaced by a stub that replays them, so these
tests run without a daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests
import requests.exceptions

import core.docker_api
import core.images
from core.cancel import CancelToken
from core.docker_api import docker_errors
from core.domain import Image
from core.errors import (
    BackendUnavailable,
    Cancelled,
    Conflict,
    NotFound,
    OperationFailed,
    PermissionDenied,
)
from core.images import (
    ImageBuilder,
    _label_line,
    _pull_progress,
    parse_time,
    split_ref,
    stream_error,
)
from tests.support.repos import BASE_TIME, commit_files, init_repo

BUILD_OK = [
    {"stream": "Step 1/3 : FROM scratch"},
    {"stream": "\n"},
    {"stream": " ---> \n"},
    {"stream": "Step 2/3 : COPY Dockerfile /"},
    {"stream": "\n"},
    {"stream": " ---> 63ec0a982713\n"},
    {"stream": 'Step 3/3 : LABEL "mrc.model"="m"'},
    {"stream": "\n"},
    {"stream": " ---> Running in 21db88e0bbd4\n"},
    {"stream": "Removing intermediate container 21db88e0bbd4\n"},
    {"stream": " ---> 11d141fcf9b4\n"},
    {"aux": {"ID": "sha256:11d141fcf9b4b83ab37d506e86e7b6f0211b560109d7bf2d5b4d55c51f3b17a6"}},
    {"stream": "Successfully built 11d141fcf9b4\n"},
    {"stream": "Successfully tagged 127.0.0.1:1/rec/x:1\n"},
]

BUILD_FAIL = [
    {"stream": "Step 1/3 : FROM mrc-python-base:bookworm"},
    {"stream": "\n"},
    {"stream": " ---> ab05d9feb32a\n"},
    {"stream": "Step 2/3 : RUN echo preparing && false"},
    {"stream": "\n"},
    {"stream": " ---> Running in 68a8ca1246ea\n"},
    {"stream": "preparing\n"},
    {"stream": "Removing intermediate container 68a8ca1246ea\n"},
    {
        "errorDetail": {
            "code": 1,
            "message": "The command '/bin/sh -c echo preparing && false' returned a non-zero "
            "code: 1",
        },
        "error": "The command '/bin/sh -c echo preparing && false' returned a non-zero code: 1",
    },
]

PUSH_REFUSED = [
    {"status": "The push refers to repository [127.0.0.1:1/rec/x]"},
    {
        "errorDetail": {
            "message": 'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: '
            "connection refused"
        },
        "error": 'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
    },
]

PUSH_OK = [
    {"status": "The push refers to repository [127.0.0.1:49707/rec/x]"},
    {"status": "Preparing", "progressDetail": {}, "id": "df644632d00b"},
    {
        "status": "Pushing",
        "progressDetail": {"current": 512, "total": 31},
        "progress": "[==================================================>]     512B",
        "id": "df644632d00b",
    },
    {"status": "Pushed", "progressDetail": {}, "id": "df644632d00b"},
    {"status": "1: digest: sha256:37fd61edef40 size: 524"},
    {"progressDetail": {}, "aux": {"Tag": "1", "Digest": "sha256:37fd61edef40", "Size": 524}},
]

# The error text a registry refusing an unauthenticated push produces (no errorDetail code).
PUSH_UNAUTHORIZED = [
    {"status": "The push refers to repository [127.0.0.1:5000/models/iris]"},
    {"status": "Preparing", "progressDetail": {}, "id": "df644632d00b"},
    {"errorDetail": {"message": "unauthorized: authentication required"}},
]


class StubClient:
    """Replays recorded chunks in place of ``docker.APIClient``."""

    api_version = "1.41"

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks
        self.hooks: dict[str, list[Any]] = {"response": []}
        self.calls: list[tuple[str, Any]] = []

    def _replay(self) -> Iterator[dict[str, Any]]:
        yield from self.chunks

    def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(("build", kwargs))
        return self._replay()

    def push(self, repository: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(("push", (repository, kwargs)))
        return self._replay()

    def tag(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("tag", args))

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return {
            "Id": "sha256:11d141fcf9b4",
            "RepoTags": [ref],
            "Created": "2026-11-26T22:01:02.123456789Z",
            "Config": {"Labels": {"org.opencontainers.image.revision": "abc"}},
        }

    def close(self) -> None:
        pass


@pytest.fixture()
def stub(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(chunks: list[dict[str, Any]]) -> StubClient:
        client = StubClient(chunks)
        for module in (core.images, core.docker_api):  # the builder's client and its streams
            monkeypatch.setattr(module, "connect", lambda *args, **kwargs: client)
        return client

    return install


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    init_repo(tmp_path)
    commit_files(tmp_path, {"Dockerfile": "FROM scratch\nCOPY Dockerfile /\n"}, "m", when=BASE_TIME)
    return tmp_path


def test_stream_error_finds_only_error_chunks() -> None:
    everything = BUILD_OK + BUILD_FAIL + PUSH_REFUSED + PUSH_OK + PUSH_UNAUTHORIZED
    errors = [e for e in map(stream_error, everything) if e]
    assert errors == [
        "The command '/bin/sh -c echo preparing && false' returned a non-zero code: 1",
        'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
        "unauthorized: authentication required",
    ]
    assert stream_error({"error": "  only the short form  "}) == "only the short form"
    assert stream_error({"errorDetail": {}, "error": "fallback"}) == "fallback"


def test_build_error_in_stream_raises_with_daemon_message_and_log_tail(
    stub: Any, repo: Path
) -> None:
    stub(BUILD_FAIL)
    seen = []
    with pytest.raises(OperationFailed) as info:
        for item in ImageBuilder("unix:///stub.sock").build(repo, "HEAD", "reg/iris", "iris"):
            seen.append(item)
    message = str(info.value)
    assert "returned a non-zero code: 1" in message
    assert "last log lines:" in message and "  preparing" in message
    assert [p.fraction for p in seen if p.message.startswith("Step ")] == [0.0, 1 / 3]


def test_build_progress_and_result_from_a_successful_stream(stub: Any, repo: Path) -> None:
    client = stub(BUILD_OK)
    items = list(ImageBuilder().build(repo, "HEAD", "reg/iris", "iris", version_tag="v2"))

    messages = [p.message for p in items if p.step == "build"]
    assert 'Step 3/3 : LABEL "mrc.model"="m"' in messages
    assert "" not in messages
    done = items[-1]
    assert done.step == "done" and done.fraction == 1.0
    assert isinstance(done.result, Image)
    tag_calls = [args for name, args in client.calls if name == "tag"]
    assert tag_calls == [
        (
            "sha256:11d141fcf9b4b83ab37d506e86e7b6f0211b560109d7bf2d5b4d55c51f3b17a6",
            "reg/iris",
            "v2",
        )
    ]
    build_kwargs = next(kw for name, kw in client.calls if name == "build")
    assert build_kwargs["dockerfile"].startswith(".mrc-build-")
    assert build_kwargs["tag"].startswith("reg/iris:")


def test_build_without_an_image_id_is_an_error(stub: Any, repo: Path) -> None:
    stub([{"stream": "Step 1/1 : FROM scratch\n"}])
    with pytest.raises(OperationFailed, match="produced no image"):
        list(ImageBuilder().build(repo, "HEAD", "reg/iris", "iris"))


def test_invalid_names_are_refused_before_building(stub: Any, repo: Path) -> None:
    client = stub(BUILD_OK)
    with pytest.raises(OperationFailed, match="invalid image tag"):
        list(ImageBuilder().build(repo, "HEAD", "reg/iris", "iris", version_tag="-bad tag"))
    with pytest.raises(OperationFailed, match="must not carry a tag"):
        list(ImageBuilder().build(repo, "HEAD", "reg/iris:1", "iris"))
    assert client.calls == []


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [(PUSH_REFUSED, "connection refused"), (PUSH_UNAUTHORIZED, "unauthorized")],
)
def test_push_error_in_stream_raises_with_daemon_message(
    stub: Any, chunks: list[dict[str, Any]], expected: str
) -> None:
    stub(chunks)
    with pytest.raises(OperationFailed, match=expected) as info:
        list(ImageBuilder().push("127.0.0.1:1/rec/x:1"))
    assert str(info.value).startswith("push of 127.0.0.1:1/rec/x:1 failed: ")


def test_push_progress_per_layer(stub: Any) -> None:
    client = stub(PUSH_OK)
    items = list(ImageBuilder().push("127.0.0.1:49707/rec/x:1"))

    layers = [(p.message, p.detail, p.fraction) for p in items if p.detail.startswith("df64")]
    assert layers == [
        ("Preparing", "df644632d00b", None),
        ("Pushing", "df644632d00b", 1.0),  # the engine reports current > total: clamped
        ("Pushed", "df644632d00b", 1.0),
    ]
    assert items[-1].step == "done" and items[-1].detail == "sha256:37fd61edef40"
    assert client.calls[0] == (
        "push",
        ("127.0.0.1:49707/rec/x", {"tag": "1", "stream": True, "decode": True}),
    )


def test_cancelled_before_start_never_streams(stub: Any) -> None:
    client = stub(PUSH_OK)
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        list(ImageBuilder().push("reg/x:1", cancel=cancel))
    assert not [c for c in client.calls if c[0] == "push"]


def _api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.models.Response()
    response.status_code = status
    return docker.errors.APIError("boom", response=response, explanation=explanation)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(404, NotFound), (409, Conflict), (401, PermissionDenied), (500, OperationFailed)],
)
def test_api_errors_become_core_errors_with_the_daemon_explanation(
    status: int, kind: type[Exception]
) -> None:
    with pytest.raises(kind, match=r"^pull x: manifest unknown$"), docker_errors(None, "pull x"):
        raise _api_error(status, "manifest unknown")


def test_connection_errors_become_backend_unavailable() -> None:
    with (
        pytest.raises(BackendUnavailable, match=r"^cannot reach Docker at ssh://ops@gpu-1: "),
        docker_errors("ssh://ops@gpu-1"),
    ):
        raise requests.exceptions.ConnectionError("Connection refused")


def test_label_line_quotes_values_literally() -> None:
    labels = {"mrc.model": "iris", "org.opencontainers.image.source": 'https://x/$HOME"q'}
    assert _label_line(b"FROM scratch\n", labels) == (
        b'LABEL "mrc.model"="iris" "org.opencontainers.image.source"="https://x/\\$HOME\\"q"\n'
    )
    windows = b"# escape=`\nFROM scratch\n"
    assert _label_line(windows, {"a": 'b"$'}) == b'LABEL "a"="b`"`$"\n'


def test_progress_parsing_and_refs() -> None:
    assert (
        _pull_progress(
            {"status": "Downloading", "id": "ab", "progressDetail": {"current": 5, "total": 20}},
            "pull",
        ).fraction
        == 0.25
    )
    assert (
        _pull_progress({"status": "Waiting", "id": "ab", "progressDetail": {}}, "pull").fraction
        is None
    )
    assert split_ref("127.0.0.1:5000/models/iris:1a2b") == ("127.0.0.1:5000/models/iris", "1a2b")
    assert split_ref("127.0.0.1:5000/models/iris") == ("127.0.0.1:5000/models/iris", None)
    assert split_ref("iris@sha256:00") == ("iris", "sha256:00")
    when = parse_time("2026-11-26T22:01:02.123456789Z")
    assert when is not None and when.isoformat() == "2026-11-26T22:01:02.123456+00:00"
    assert parse_time("0001-01-01T00:00:00Z") is None
