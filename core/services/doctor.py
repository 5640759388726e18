"""``mrc doctor``: check once that every configured backend answers.

Each check returns a one-line description of what answered; a failure is a
failed :class:`DoctorLine`, never an exception.
"""

from __future__ import annotations

import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import Config
from core.errors import ConfigError, NotFound


@dataclass(frozen=True, slots=True)
class DoctorLine:
    """The result of checking one backend: ``backend`` kind, ``name`` of what was checked."""

    backend: str
    name: str
    ok: bool
    detail: str


def doctor(config: Config, *, timeout: float = 5.0) -> list[DoctorLine]:
    """Check every configured backend once; return one line per backend, in config order.

    Checks: the git repository opens and has commits; each Docker engine
    answers ping; each Kubernetes context answers /version; each metrics
    source answers (Prometheus /-/ready, scrape URL GET); each local target's
    command resolves. Never raises for a backend problem (it is a failed line).
    """
    lines: list[DoctorLine] = []
    seen: set[tuple[str, str]] = set()

    def add(backend: str, name: str, check: Any) -> None:
        key = (backend, name)
        if key in seen:
            return
        seen.add(key)
        started = time.monotonic()
        try:
            detail = check()
            ok = True
        except Exception as exc:
            ok, detail = False, _one_line(exc)
        if ok:
            detail = f"{detail} ({(time.monotonic() - started) * 1000:.0f} ms)"
        lines.append(DoctorLine(backend, name, ok, detail))

    for model in config.models:
        target: Any
        add("git", f"{model.name}: {model.repo}", lambda m=model: _check_git(m.repo))
        for target in model.targets:
            label = f"{model.name}/{target.name}"
            if target.kind == "kubernetes":
                add(
                    "kubernetes",
                    f"{label}: context {target.context or '(current)'}",
                    lambda t=target: _check_kubernetes(t, timeout),
                )
            elif target.kind == "docker":
                add(
                    "docker",
                    f"{label}: {target.base_url or '$DOCKER_HOST'}",
                    lambda t=target: _check_docker(t, timeout),
                )
            elif target.kind == "local":
                add("local", f"{label}: {target.command}", lambda t=target: _check_local(t))
        if model.metrics is not None:
            m = model.metrics
            add(
                m.source,
                f"{model.name}: {m.url}",
                lambda m=m: _check_metrics(m, min(timeout, m.timeout or timeout)),
            )
    return lines


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300]


def _check_git(path: Path) -> str:
    import git  # GitPython

    repo = git.Repo(str(path))
    try:
        if not repo.head.is_valid():
            raise NotFound(f"{path} has no commits")
        head = repo.head.commit
        return f"HEAD {head.hexsha[:8]}"
    finally:
        repo.close()


def _check_docker(target: Any, timeout: float) -> str:
    import docker

    if target.base_url:
        client = docker.DockerClient(base_url=target.base_url, timeout=int(timeout))
    else:
        client = docker.from_env(timeout=int(timeout))
    try:
        client.ping()
        return f"engine {client.version().get('Version', '?')}"
    finally:
        client.close()


def _check_kubernetes(target: Any, timeout: float) -> str:
    from kubernetes import client, config

    api_client = config.new_client_from_config(
        config_file=str(target.kubeconfig) if target.kubeconfig else None,
        context=target.context or None,
    )
    try:
        info = client.VersionApi(api_client).get_code(_request_timeout=timeout)
        return f"server {info.git_version}"
    finally:
        api_client.close()


def _check_metrics(metrics: Any, timeout: float) -> str:
    import httpx

    headers = dict(metrics.headers)
    if metrics.token is not None:
        headers["Authorization"] = f"Bearer {metrics.token.reveal()}"
    auth = None
    if metrics.username:
        password = metrics.password.reveal() if metrics.password is not None else ""
        auth = httpx.BasicAuth(metrics.username, password)
    url = metrics.url.rstrip("/") + "/-/ready" if metrics.source == "prometheus" else metrics.url
    response = httpx.get(url, headers=headers, auth=auth, timeout=timeout)
    response.raise_for_status()
    return f"HTTP {response.status_code}"


def _check_local(target: Any) -> str:
    import sys

    # The same placeholders the local target fills in, with harmless values.
    values = {
        "python": sys.executable,
        "port": str(target.port or 0),
        "artifact": ".",
        "commit": "0" * 40,
        "revision": "0",
    }
    command = target.command
    for key, value in values.items():
        command = command.replace("{" + key + "}", value)
    argv = shlex.split(command)
    if not argv:
        raise ConfigError("", ["empty command"])
    program = argv[0]
    if "/" in program and not program.startswith("/"):
        return f"{program} (relative to the commit's files)"
    found = shutil.which(program)
    if found is None:
        raise NotFound(f"command {program!r} not found on PATH")
    return f"{program} -> {found}"
