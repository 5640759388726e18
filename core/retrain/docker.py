"""The ``docker`` retrain executor: the command runs in a container on this machine's engine.

The engine is the one of ``[model.retrain] target`` (a docker target of the
model), else of the model's first docker target, else the environment's
(``DOCKER_HOST`` or the local socket). The container:

* runs ``[model.retrain] image``, or the model's image built from the commit
  (``<image>:<short sha>``, see :mod:`core.images`); a missing model image
  is NotFound (build it first), a missing configured image is pulled;
* runs ``sh -c <command>`` (the image's entrypoint is replaced) as the
  invoking user's uid:gid, so what it writes in the worktree belongs to the
  user;
* has the worktree bind-mounted at ``/mrc/work`` (its working directory) and
  the output directory at ``/mrc/output``;
* gets exactly :meth:`RetrainJob.environment` with those paths, plus the
  image's own ``ENV`` — nothing of the console's environment;
* uses host networking, so ``MRC_RETRAIN_METRICS_URL`` on ``127.0.0.1``
  reaches the same server the console reads;
* is labelled ``mrc.model``, ``mrc.retrain`` (the branch) and always removed
  at the end, whatever happened.

Bind mounts need the engine to run on this machine (a remote engine cannot
see the worktree): an ``ssh://`` or ``tcp://`` engine on another host is a
ConfigError.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from core.cancel import CancelToken
from core.docker_api import DockerStream, connect, describe_url, docker_errors
from core.domain import Progress
from core.errors import BackendUnavailable, Cancelled, NotFound, OperationFailed
from core.retrain.base import RetrainJob, TargetExecutor

if TYPE_CHECKING:
    from core.config import DockerTargetConfig

#: Where the worktree and the output directory are mounted in the container.
WORKDIR = "/mrc/work"
OUTPUT = "/mrc/output"

LABEL_MODEL = "mrc.model"
LABEL_RETRAIN = "mrc.retrain"

#: Seconds ``docker stop`` waits after SIGTERM before it kills the command (on timeout).
STOP_GRACE = 5
_NAME_UNSAFE = re.compile(r"[^a-z0-9_.-]")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})


def is_local_engine(base_url: str | None) -> bool:
    """True when the engine ``base_url`` stands for (None: the environment's) runs on this machine.

    A socket (``unix://``, ``npipe://``, ``fd://``) is local; ``tcp://``,
    ``http(s)://`` and ``ssh://`` are local only for a loopback host name.
    Never raises.
    """
    url = describe_url(base_url)
    if "://" not in url or url.startswith(("unix://", "npipe://", "fd://")):
        return True
    host = (urlsplit(url).hostname or "").lower()
    return host in _LOCAL_HOSTS or host.startswith("127.")


class DockerExecutor(TargetExecutor):
    """Runs a retrain command in a container on the engine of a docker target (see the module).

    Constructing it reads the configuration only; the engine is contacted in
    :meth:`run`.
    """

    kind: ClassVar[str] = "docker"
    publishes_branch: ClassVar[bool] = False

    def _target(self) -> DockerTargetConfig | None:
        """Return the docker target whose engine runs the command (None: the environment's).

        Raises ConfigError when ``[model.retrain] target`` names no docker target of the model.
        """
        from core.config import DockerTargetConfig

        return self.target_of(DockerTargetConfig, "docker")

    # -- running

    def run(self, job: RetrainJob, cancel: CancelToken) -> Iterator[Progress]:
        """Run ``job`` in a container; yield its output lines and the executor's steps.

        Raises ConfigError (remote engine, no image configured), NotFound (the
        model's image was not built for the commit), BackendUnavailable,
        OperationFailed (non-zero exit code, timeout), Cancelled — see
        :class:`core.retrain.base.Executor`. The container is removed before
        this returns or raises.
        """
        target = self._target()
        base_url = target.base_url if target is not None else None
        timeout = target.timeout if target is not None else 10.0
        where = describe_url(base_url)
        if not is_local_engine(base_url):
            raise self.config_error(
                f"the docker retrain executor bind-mounts the worktree, so it needs an engine "
                f'on this machine; {where} is remote (use executor = "kubernetes", or a '
                "docker target whose engine is local)"
            )
        image = self.image_for(job.commit)
        cancel.raise_if_cancelled()
        api = connect(base_url, timeout)
        try:
            yield from self._ensure_image(api, base_url, image, cancel)
            cancel.raise_if_cancelled()
            yield from self._run_container(api, base_url, image, job, cancel)
        finally:
            with contextlib.suppress(Exception):
                api.close()

    def _ensure_image(
        self, api: Any, base_url: str | None, image: str, cancel: CancelToken
    ) -> Iterator[Progress]:
        """Check ``image`` is on the engine; pull a configured one that is not."""
        try:
            with docker_errors(base_url, f"image {image}"):
                api.inspect_image(image)
            return
        except NotFound:
            if not self.retrain.image:
                raise NotFound(
                    f"image {image} is not on the Docker engine at {describe_url(base_url)}: "
                    "build it first (key b on the Commits screen), or set [model.retrain] image"
                ) from None
        from core.images import ImageBuilder

        yield Progress(step="executor", message=f"pulling {image}")
        builder = ImageBuilder(base_url)
        try:
            for item in builder.pull(image, cancel):
                if item.step == "done":
                    yield Progress(step="executor", message=item.message)
        finally:
            builder.close()

    def _run_container(
        self, api: Any, base_url: str | None, image: str, job: RetrainJob, cancel: CancelToken
    ) -> Iterator[Progress]:
        stamp = job.branch.rsplit("/", 1)[-1]
        name = _NAME_UNSAFE.sub("-", f"mrc-retrain-{job.model}-{stamp}".lower())
        with docker_errors(base_url, f"create {name}"):
            host_config = api.create_host_config(
                binds={
                    str(job.workdir): {"bind": WORKDIR, "mode": "rw"},
                    str(job.output): {"bind": OUTPUT, "mode": "rw"},
                },
                network_mode="host",
            )
            created = api.create_container(
                image,
                command=[job.command],
                entrypoint=["/bin/sh", "-c"],
                working_dir=WORKDIR,
                environment=job.environment(workdir=WORKDIR, output=OUTPUT),
                user=f"{os.getuid()}:{os.getgid()}",
                labels={LABEL_MODEL: job.model, LABEL_RETRAIN: job.branch},
                host_config=host_config,
                name=name,
            )
        container = str(created["Id"])
        try:
            yield from self._follow(api, base_url, container, name, image, job, cancel)
        finally:
            with contextlib.suppress(Exception), docker_errors(base_url):
                api.remove_container(container, force=True, v=True)

    def _follow(
        self,
        api: Any,
        base_url: str | None,
        container: str,
        name: str,
        image: str,
        job: RetrainJob,
        cancel: CancelToken,
    ) -> Iterator[Progress]:
        """Start ``container``, stream its output, and judge how it ended."""
        stream = DockerStream(base_url, api.api_version, None)
        timed_out = threading.Event()

        def stop_on_timeout() -> None:
            timed_out.set()
            with contextlib.suppress(Exception), docker_errors(base_url):
                api.stop(container, timeout=STOP_GRACE)

        def kill_on_cancel() -> None:
            with contextlib.suppress(Exception), docker_errors(base_url):
                api.kill(container)
            stream.abort()

        timer = threading.Timer(job.timeout, stop_on_timeout)
        timer.daemon = True
        try:
            cancel.on_cancel(kill_on_cancel)
            cancel.raise_if_cancelled()
            # Attached before the start, so not a byte of output is missed.
            with docker_errors(base_url, f"attach {name}"):
                chunks = stream.client.attach(
                    container, stdout=True, stderr=True, stream=True, logs=True, demux=True
                )
            with docker_errors(base_url, f"start {name}"):
                api.start(container)
            timer.start()
            started = time.monotonic()
            yield Progress(
                step="executor",
                message=f"container {name} started from {image} on {describe_url(base_url)}",
            )
            try:
                yield from self._output(chunks, base_url, cancel)
            except BackendUnavailable:
                if not (cancel.cancelled or timed_out.is_set()):
                    raise
            if cancel.cancelled:
                raise Cancelled(f"retrain of {job.model} cancelled; container {name} removed")
            remaining = job.timeout - (time.monotonic() - started)
            with docker_errors(base_url, f"wait {name}"):
                status = stream.client.wait(container, timeout=max(remaining, 0) + 2 * STOP_GRACE)
        finally:
            timer.cancel()
            stream.close()
        if cancel.cancelled:
            raise Cancelled(f"retrain of {job.model} cancelled; container {name} removed")
        if timed_out.is_set():
            raise OperationFailed(
                f"the retrain command of {job.model} did not finish within {job.timeout:g}s; "
                f"container {name} was stopped"
            )
        code = int(status.get("StatusCode", -1))
        if code != 0:
            error = (status.get("Error") or {}).get("Message") or ""
            detail = f" ({error})" if error else ""
            raise OperationFailed(
                f"the retrain command of {job.model} exited with code {code} in container "
                f"{name} ({image}){detail}"
            )
        yield Progress(step="executor", message=f"container {name} exited with code 0")

    @staticmethod
    def _output(
        chunks: Iterator[tuple[bytes | None, bytes | None]],
        base_url: str | None,
        cancel: CancelToken,
    ) -> Iterator[Progress]:
        """Yield one Progress(step="output") per line of ``chunks`` ((stdout, stderr) pairs).

        Each stream is split into lines on its own, so a line one stream has
        not finished never takes in the other's.
        """
        pending = [b"", b""]
        with docker_errors(base_url, "output"):
            for pair in chunks:
                if cancel.cancelled:
                    break
                for index, chunk in enumerate(pair):
                    if not chunk:
                        continue
                    pending[index] += chunk
                    *lines, pending[index] = pending[index].split(b"\n")
                    for line in lines:
                        yield Progress(step="output", message=line.decode("utf-8", "replace"))
        for rest in pending:
            if rest and not cancel.cancelled:
                yield Progress(step="output", message=rest.decode("utf-8", "replace"))
