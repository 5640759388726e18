"""``mrc doctor``: check once that every configured backend answers.

Each check returns a one-line description of what answered; a failure is a
failed :class:`DoctorLine`, never an exception. Names and details pass
:func:`core.sanitize.redact_url`: a password or token in a configured URL
never reaches the report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import Config
from core.errors import NotFound
from core.sanitize import redact_url
from core.targets.kinds import KINDS


@dataclass(frozen=True, slots=True)
class DoctorLine:
    """The result of checking one backend: ``backend`` kind, ``name`` of what was checked."""

    backend: str
    name: str
    ok: bool
    detail: str


def doctor(config: Config, *, timeout: float = 5.0) -> list[DoctorLine]:
    """Check every configured backend once; return one line per backend, in config order.

    Checks: the git repository opens and has commits; each target with
    its kind's check (:data:`core.targets.kinds.KINDS`: a Docker engine
    answers ping, a Kubernetes context answers /version, a local target's
    command resolves); each metrics source answers (Prometheus /-/ready,
    scrape URL GET). Credentials in URLs are redacted from every line.
    Never raises for a backend problem (it is a failed line).
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
        lines.append(DoctorLine(backend, redact_url(name), ok, redact_url(detail)))

    for model in config.models:
        add("git", f"{model.name}: {model.repo}", lambda m=model: _check_git(m.repo))
        for target in model.targets:
            entry = KINDS.get(target.kind)
            if entry is None:
                continue  # the parser accepts only the kinds of the table
            add(
                entry.name,
                f"{model.name}/{target.name}: {entry.doctor_label(target)}",
                lambda e=entry, t=target: e.doctor_check(t, timeout),
            )
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
    from core.git import Repository

    repo = Repository(path)
    if repo.is_empty:
        raise NotFound(f"{path} has no commits")
    return f"HEAD {repo.resolve('HEAD')[:8]}"


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
