"""The one factory from a ``[model.metrics]`` table to a live :class:`MetricsSource`.

Both source kinds get the same credentials: the configured ``headers``, a
bearer ``token`` and HTTP basic ``username``/``password``. The backend
modules (and httpx) are imported here, on first use.
"""

from __future__ import annotations

import base64

from core.config import MetricsConfig
from core.errors import ConfigError
from core.metrics.base import MetricsSource

#: Bounds of a scrape source's scrape interval (seconds), taken from ``refresh``.
MIN_SCRAPE_INTERVAL = 0.2
MAX_SCRAPE_INTERVAL = 15.0
#: Seconds of history a scrape source keeps.
SCRAPE_HISTORY = 3600.0


def _basic(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def open_source(metrics: MetricsConfig, model: str = "") -> MetricsSource:
    """Return the source ``metrics`` describes; it is not contacted yet.

    A ``scrape`` source scrapes once per ``refresh`` period (between 0.2 s
    and 15 s) and keeps about an hour of scrapes. ``model`` names the model in
    errors. Raises ConfigError for an unknown source kind.
    """
    token = metrics.token.reveal() if metrics.token is not None else None
    password = metrics.password.reveal() if metrics.password is not None else ""
    if metrics.source == "prometheus":
        from core.metrics.prometheus import PrometheusSource

        return PrometheusSource(
            metrics.url,
            headers=dict(metrics.headers),
            token=token,
            timeout=metrics.timeout,
            selector=metrics.selector,
            auth=(metrics.username, password) if metrics.username else None,
        )
    if metrics.source == "scrape":
        from core.metrics.scrape import ScrapeSource

        headers = dict(metrics.headers)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if metrics.username:  # like httpx's auth on the Prometheus client: basic wins
            headers["Authorization"] = _basic(metrics.username, password)
        interval = max(MIN_SCRAPE_INTERVAL, min(metrics.refresh, MAX_SCRAPE_INTERVAL))
        return ScrapeSource(
            metrics.url,
            interval=interval,
            capacity=max(60, int(SCRAPE_HISTORY / interval)),
            timeout=metrics.timeout,
            headers=headers,
            selector=metrics.selector,
        )
    where = f"model {model}: " if model else ""
    raise ConfigError(model or "configuration", [f"{where}metrics source {metrics.source!r}"])
