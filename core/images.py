"""Build, tag, push and pull container images through the Docker Engine API.

The low-level ``docker.APIClient`` is used so that build and push progress
streams chunk by chunk. The Docker engine reports failures that happen during
a build, push or pull *inside* the stream, with HTTP status 200 (a chunk like
``{"error": ..., "errorDetail": {"message": ...}}``); :func:`stream_error`
detects them and the operations raise :class:`~core.errors.OperationFailed`
with the daemon's own message.

The build context is always ``git archive`` of the requested commit, never the
working tree, so uncommitted files can never end up in an image.

Connections (``base_url``) and the translation of the daemon's errors are
:mod:`core.docker_api`'s. Registry credentials come from the user's Docker
configuration (``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``,
including credential helpers), read afresh for each push and pull.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tarfile
import tempfile
from collections import deque
from collections.abc import Generator, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from core.cancel import CancelToken
from core.docker_api import DockerStream, connect, docker_errors
from core.domain import Image, Progress
from core.errors import NotFound, OperationFailed

#: Label keys written on every image this module builds.
LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_CREATED = "org.opencontainers.image.created"
LABEL_MODEL = "mrc.model"

#: How many trailing log lines an error message quotes.
LOG_TAIL = 20

_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_STEP_RE = re.compile(r"^Step (\d+)/(\d+) : ")
_BUILT_RE = re.compile(r"^Successfully built ([0-9a-f]+)")


# --------------------------------------------------------------------------
# Stream errors


def stream_error(chunk: Mapping[str, Any]) -> str | None:
    """Return the daemon's error message carried by one decoded stream chunk, else None.

    Build, push and pull streams report failures as ``{"error": "...",
    "errorDetail": {"message": "...", "code": N}}``; either key may be alone.
    """
    detail = chunk.get("errorDetail")
    if isinstance(detail, Mapping) and detail.get("message"):
        return str(detail["message"]).strip()
    error = chunk.get("error")
    if error:
        return str(error).strip()
    return None


# --------------------------------------------------------------------------
# Git: the build context


def _repository(repo: Any) -> Any:
    from core.git import Repository

    if isinstance(repo, Repository):
        return repo
    if isinstance(repo, str | os.PathLike):
        return Repository(repo)
    raise TypeError(f"not a repository or path: {repo!r}")


_ESCAPE_RE = re.compile(rb"^#\s*escape\s*=\s*(\S)\s*$", re.IGNORECASE)


def _label_line(dockerfile: bytes, labels: Mapping[str, str]) -> bytes:
    """Return one ``LABEL`` instruction setting ``labels``, quoted for ``dockerfile``.

    Honours an ``# escape=`` parser directive; ``"``, ``$`` and the escape
    character are escaped so values are taken literally.
    """
    escape = "\\"
    for line in dockerfile.splitlines()[:5]:
        match = _ESCAPE_RE.match(line.strip())
        if match:
            escape = match.group(1).decode()
            break
        if not line.startswith(b"#"):
            break

    def quote(value: str) -> str:
        value = value.replace("\n", " ").replace("\r", " ")
        for char in (escape, '"', "$"):
            value = value.replace(char, escape + char)
        return f'"{value}"'

    pairs = " ".join(f"{quote(k)}={quote(v)}" for k, v in labels.items())
    return f"LABEL {pairs}\n".encode()


def _build_context(
    repo: Any, sha: str, dockerfile: str, labels: Mapping[str, str]
) -> tuple[IO[bytes], str]:
    """Return the build context of commit ``sha`` and the name of the Dockerfile to use.

    The context is ``git archive`` of the commit plus a generated Dockerfile:
    the commit's ``dockerfile`` followed by one ``LABEL`` instruction with
    ``labels``. Labels passed through the Engine API's ``labels`` parameter
    would cost one build step (one container on the classic builder) each.
    The generated file is listed in ``.dockerignore`` (as ``docker build -f -``
    does), so the daemon drops it from the context and ``COPY . ...`` never
    sees it. Raises NotFound when the commit has no ``dockerfile``.
    """
    original = repo.file_at(sha, dockerfile)
    name = f".mrc-build-{sha[:12]}.Dockerfile"
    generated = original.rstrip(b"\n") + b"\n\n" + _label_line(original, labels)
    context: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115
    with tempfile.TemporaryDirectory(prefix="mrc-context-") as tmp:
        archive = Path(tmp) / "context.tar"
        repo.archive(sha, dest=archive)
        ignore: bytes | None = None
        with (
            tarfile.open(archive, "r:") as src,
            tarfile.open(fileobj=context, mode="w:", format=tarfile.PAX_FORMAT) as out,
        ):
            for member in src:
                if member.name in (".dockerignore", "./.dockerignore") and member.isfile():
                    handle = src.extractfile(member)
                    ignore = handle.read() if handle else b""
                    continue
                out.addfile(member, src.extractfile(member) if member.isfile() else None)
            if ignore is None:
                ignore = b".dockerignore\n"
            ignore = ignore.rstrip(b"\n") + b"\n" + name.encode() + b"\n"
            for path, data in ((".dockerignore", ignore), (name, generated)):
                info = tarfile.TarInfo(path)
                info.size = len(data)
                info.mode = 0o644
                out.addfile(info, io.BytesIO(data))
    context.seek(0)
    return context, name


# --------------------------------------------------------------------------
# Images


def parse_time(value: Any) -> datetime | None:
    """Parse a Docker or RFC 3339 timestamp (nanoseconds allowed) into aware UTC; None if unset."""
    if not value or not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    text = value.strip().replace("Z", "+00:00")
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if match:
        frac = (match.group(2) or "")[:7]
        text = match.group(1) + frac + match.group(3)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def image_from_inspect(ref: str, data: Mapping[str, Any]) -> Image:
    """Build an :class:`Image` from ``docker image inspect`` output."""
    labels = dict((data.get("Config") or {}).get("Labels") or {})
    created = parse_time(labels.get(LABEL_CREATED)) or parse_time(data.get("Created"))
    return Image(
        ref=ref,
        id=str(data.get("Id", "")),
        commit=labels.get(LABEL_REVISION, ""),
        created=created,
        labels=labels,
        tags=tuple(data.get("RepoTags") or ()),
    )


def split_ref(image_ref: str) -> tuple[str, str | None]:
    """Split ``repo[:tag|@digest]`` into the repository and the tag or digest (None if absent)."""
    repo, sep, digest = image_ref.partition("@")
    if sep:
        return repo, digest
    head, _, last = image_ref.rpartition("/")
    if ":" in last:
        name, tag = last.rsplit(":", 1)
        return (f"{head}/{name}" if head else name), tag
    return image_ref, None


class ImageBuilder:
    """Builds, pushes and pulls images on one Docker engine.

    Every method talks to the daemon with ``timeout`` seconds per request;
    streams (build, push, pull) have no read timeout because a build step may
    legitimately stay silent for long, and are stopped with a cancel token.
    """

    def __init__(self, base_url: str | None = None, timeout: float = 60.0) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._client: Any = None

    # -- connection

    def _api(self) -> Any:
        if self._client is None:
            self._client = connect(self.base_url, self.timeout)
        return self._client

    def _stream(self, cancel: CancelToken | None) -> DockerStream:
        return DockerStream(self.base_url, self._api().api_version, cancel)

    def close(self) -> None:
        """Close the connection pool (a later call reconnects)."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def ping(self) -> None:
        """Return None if the daemon answers; raise BackendUnavailable otherwise."""
        api = self._api()
        with docker_errors(self.base_url):
            api.ping()

    # -- build

    def build(
        self,
        repo: Any,
        commit: str,
        image: str,
        model: str,
        dockerfile: str = "Dockerfile",
        version_tag: str | None = None,
        source_url: str = "",
        cancel: CancelToken | None = None,
    ) -> Generator[Progress, None, Image]:
        """Build ``image`` from commit ``commit`` of ``repo`` and yield progress.

        ``repo`` is a :class:`core.git.Repository` or a path to one; ``commit``
        anything git resolves to a commit. The image is tagged
        ``<image>:<short sha>`` and, when given, ``<image>:<version_tag>``, and
        labelled with the model name, the full commit sha, ``source_url`` and
        a creation time. The creation time is the commit's date (the
        reproducible-build convention of ``SOURCE_DATE_EPOCH``): rebuilding a
        commit yields the very same image, entirely from the build cache.

        The last item has ``step == "done"`` and ``result`` the built
        :class:`Image`; the generator also returns it. Raises NotFound (unknown
        commit, no ``dockerfile`` in that commit), OperationFailed (the daemon's
        build error plus the last log lines), BackendUnavailable, Cancelled.
        """
        if version_tag is not None and not _TAG_RE.match(version_tag):
            raise OperationFailed(
                f"invalid image tag {version_tag!r}: use letters, digits, '_', '.' and '-' "
                "(at most 128, not starting with '.' or '-')"
            )
        if split_ref(image)[1] is not None:
            raise OperationFailed(f"image name {image!r} must not carry a tag or digest")
        repository = _repository(repo)
        sha = repository.resolve(commit)
        when = repository.page(sha, limit=1)[0].date.astimezone(UTC)
        tags = [f"{image}:{sha[:8]}"]
        if version_tag:
            tags.append(f"{image}:{version_tag}")
        labels = {
            LABEL_MODEL: model,
            LABEL_CREATED: when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            LABEL_REVISION: sha,
            LABEL_SOURCE: source_url,
        }
        yield Progress(step="context", message=f"git archive {sha[:8]}")
        context, generated = _build_context(repository, sha, dockerfile, labels)
        tail: deque[str] = deque(maxlen=LOG_TAIL)
        image_id = ""
        stream = self._stream(cancel)
        try:
            chunks = stream.chunks(
                f"build {tags[0]}",
                lambda api: api.build(
                    fileobj=context,
                    custom_context=True,
                    dockerfile=generated,
                    tag=tags[0],
                    rm=True,
                    forcerm=True,
                    decode=True,
                ),
            )
            yield Progress(step="build", message=f"building {tags[0]}", fraction=0.0)
            fraction = 0.0
            for chunk in chunks:
                error = stream_error(chunk)
                if error:
                    raise OperationFailed(_with_tail(f"build of {tags[0]} failed: {error}", tail))
                aux = chunk.get("aux")
                if isinstance(aux, Mapping) and aux.get("ID"):
                    image_id = str(aux["ID"])
                text = chunk.get("stream")
                if isinstance(text, str):
                    for line in text.splitlines():
                        if not line.strip():
                            continue
                        tail.append(line)
                        step = _STEP_RE.match(line)
                        if step:
                            fraction = (int(step.group(1)) - 1) / max(int(step.group(2)), 1)
                        built = _BUILT_RE.match(line)
                        if built and not image_id:
                            image_id = built.group(1)
                        yield Progress(step="build", message=line, fraction=fraction)
                elif chunk.get("status"):
                    yield _pull_progress(chunk, step="build")
        finally:
            stream.close()
            context.close()
        if not image_id:
            raise OperationFailed(_with_tail(f"build of {tags[0]} produced no image", tail))
        api = self._api()
        for extra in tags[1:]:
            repo_name, tag = split_ref(extra)
            with docker_errors(self.base_url, f"tag {extra}"):
                api.tag(image_id, repo_name, tag, force=True)
        built_image = self.inspect(tags[0])
        yield Progress(
            step="done",
            message=f"built {', '.join(tags)}",
            fraction=1.0,
            detail=built_image.id,
            result=built_image,
        )
        return built_image

    # -- push / pull

    def push(self, image_ref: str, cancel: CancelToken | None = None) -> Iterator[Progress]:
        """Push ``image_ref`` (every tag of the repository if it has no tag) and yield progress.

        Per-layer items have the layer id in ``detail`` and the uploaded
        fraction when known. The last item has ``step == "done"`` and the pushed
        digest in ``detail``. Raises OperationFailed with the daemon's message
        (unknown registry host, authentication required, refused, ...),
        NotFound when the image does not exist locally, BackendUnavailable,
        Cancelled.
        """
        repo_name, tag = split_ref(image_ref)
        digest = ""
        tail: deque[str] = deque(maxlen=LOG_TAIL)
        stream = self._stream(cancel)
        try:
            chunks = stream.chunks(
                f"push {image_ref}",
                lambda api: api.push(repo_name, tag=tag, stream=True, decode=True),
            )
            yield Progress(step="push", message=f"pushing {image_ref}")
            for chunk in chunks:
                error = stream_error(chunk)
                if error:
                    raise OperationFailed(_with_tail(f"push of {image_ref} failed: {error}", tail))
                aux = chunk.get("aux")
                if isinstance(aux, Mapping) and aux.get("Digest"):
                    digest = str(aux["Digest"])
                if chunk.get("status"):
                    item = _pull_progress(chunk, step="push")
                    tail.append(f"{item.detail}: {item.message}" if item.detail else item.message)
                    yield item
        finally:
            stream.close()
        yield Progress(step="done", message=f"pushed {image_ref}", fraction=1.0, detail=digest)

    def pull(self, image_ref: str, cancel: CancelToken | None = None) -> Iterator[Progress]:
        """Pull ``image_ref`` and yield per-layer progress.

        The last item has ``step == "done"`` and ``result`` the pulled
        :class:`Image`. Raises OperationFailed with the daemon's message,
        NotFound, BackendUnavailable, Cancelled.
        """
        repo_name, tag = split_ref(image_ref)
        tail: deque[str] = deque(maxlen=LOG_TAIL)
        stream = self._stream(cancel)
        try:
            chunks = stream.chunks(
                f"pull {image_ref}",
                lambda api: api.pull(repo_name, tag=tag or "latest", stream=True, decode=True),
            )
            for chunk in chunks:
                error = stream_error(chunk)
                if error:
                    raise OperationFailed(_with_tail(f"pull of {image_ref} failed: {error}", tail))
                if chunk.get("status"):
                    item = _pull_progress(chunk, step="pull")
                    tail.append(f"{item.detail}: {item.message}" if item.detail else item.message)
                    yield item
        finally:
            stream.close()
        pulled = self.inspect(image_ref if tag else f"{image_ref}:latest")
        yield Progress(step="done", message=f"pulled {image_ref}", fraction=1.0, result=pulled)

    # -- queries

    def inspect(self, image_ref: str) -> Image:
        """Return the local image ``image_ref``; raise NotFound when absent."""
        api = self._api()
        with docker_errors(self.base_url, f"image {image_ref}"):
            data = api.inspect_image(image_ref)
        return image_from_inspect(image_ref, data)

    def exists(self, image_ref: str) -> bool:
        """Return True if ``image_ref`` is present locally."""
        try:
            self.inspect(image_ref)
        except NotFound:
            return False
        return True

    def remove(self, image_ref: str, force: bool = False) -> None:
        """Remove the local tag/image ``image_ref``; raise NotFound, Conflict (in use)."""
        api = self._api()
        with docker_errors(self.base_url, f"remove {image_ref}"):
            api.remove_image(image_ref, force=force)


def _with_tail(message: str, tail: deque[str]) -> str:
    if not tail:
        return message
    lines = "\n".join(f"  {line}" for line in tail)
    return f"{message}\nlast log lines:\n{lines}"


def _pull_progress(chunk: Mapping[str, Any], step: str) -> Progress:
    """Turn a push/pull status chunk into a Progress with the layer id and fraction."""
    status = str(chunk.get("status", ""))
    layer = str(chunk.get("id", ""))
    fraction = None
    detail = chunk.get("progressDetail")
    if isinstance(detail, Mapping):
        current, total = detail.get("current"), detail.get("total")
        if isinstance(current, int | float) and isinstance(total, int | float) and total > 0:
            fraction = min(max(current / total, 0.0), 1.0)
    if status in ("Pushed", "Layer already exists", "Pull complete", "Already exists"):
        fraction = 1.0
    return Progress(step=step, message=status, fraction=fraction, detail=layer)
