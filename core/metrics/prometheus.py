"""A :class:`~core.metrics.base.MetricsSource` backed by a Prometheus server.

The source speaks Prometheus' HTTP API (``/api/v1/query``,
``/api/v1/query_range``, ``/api/v1/alerts``) with httpx. The
prometheus-api-client package wraps a rejected query into the repr of the raw
response body and retries refused connections with back-off; an operator
needs Prometheus' own ``parse error: ...`` text and a fast "unreachable", so
the few calls needed here are made directly.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.domain import Alert, Histogram, Series
from core.errors import BackendUnavailable, InvalidQuery, PermissionDenied
from core.metrics.base import MetricsSource
from core.sanitize import redact_url

if TYPE_CHECKING:
    import httpx

#: Prometheus refuses range queries with more than this many points per series.
MAX_POINTS = 11_000

_SELECTOR_PAIR = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*')


def step_for(start: datetime, end: datetime, width: int) -> float:
    """Return the range-query step in whole seconds for a chart ``width`` columns wide.

    About one point per column; at least 1 s; never more than
    :data:`MAX_POINTS` points per series (``floor(span / step) + 1``).
    """
    span = max((end - start).total_seconds(), 0.0)
    columns = max(1, min(int(width), MAX_POINTS) - 1)
    return float(max(1, math.ceil(span / columns)))


def with_selector(metric: str, selector: str) -> str:
    """Return ``metric`` with the label matchers of ``selector`` (``{k="v"}``) merged in."""
    selector = selector.strip()
    if not selector or selector == "{}":
        return metric
    inner = selector.strip("{}").strip()
    if metric.endswith("}"):
        base, _, existing = metric[:-1].partition("{")
        existing = existing.strip()
        return f"{base}{{{existing + ',' if existing else ''}{inner}}}"
    return f"{metric}{{{inner}}}"


def bucket_metric(metric: str) -> str:
    """Return the ``_bucket`` series name of histogram ``metric`` (labels kept)."""
    base, brace, labels = metric.partition("{")
    if base.endswith("_bucket"):
        return metric
    return f"{base}_bucket{brace}{labels}"


def parse_selector(selector: str) -> dict[str, str]:
    """Return the ``k="v"`` equality matchers of ``selector``; other matchers are ignored."""
    inner = selector.strip().strip("{}")
    out: dict[str, str] = {}
    for part in inner.split(","):
        m = _SELECTOR_PAIR.fullmatch(part)
        if m:
            out[m.group(1)] = m.group(2).replace('\\"', '"')
    return out


def series_name(labels: dict[str, str], fallback: str) -> str:
    """Return ``name{k="v",...}`` for a result's labels, or ``fallback`` when it has none."""
    name = labels.get("__name__", "")
    rest = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    if not name and not rest:
        return fallback
    return f"{name}{{{rest}}}" if rest else name


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        # Prometheus gives RFC 3339 with nanoseconds; fromisoformat takes microseconds.
        m = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
        if not m:
            return None
        frac = (m.group(2) or "")[:7]
        zone = "+00:00" if m.group(3) == "Z" else m.group(3)
        return datetime.fromisoformat(f"{m.group(1)}{frac}{zone}").astimezone(UTC)
    except ValueError:
        return None


class PrometheusSource(MetricsSource):
    """Metrics from a Prometheus server (it keeps the history: no background collection).

    ``headers`` are sent with every request; ``token`` adds ``Authorization:
    Bearer``; ``auth`` is (user, password) for basic authentication.
    ``timeout`` (seconds) bounds every request. ``selector`` (``{job="x"}``)
    is merged into the histogram metrics of :meth:`histogram_window` and
    filters :meth:`alerts` on its equality matchers. ``transport`` replaces
    httpx's network transport (tests).
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        timeout: float = 5.0,
        selector: str = "",
        auth: tuple[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx

        # ``url`` is what messages show: a password or token in it is redacted.
        self.url = redact_url(url.rstrip("/"))
        self.selector = selector
        self.timeout = timeout
        all_headers = {"Accept": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers=all_headers,
            timeout=httpx.Timeout(timeout),
            auth=auth,
            follow_redirects=True,
            transport=transport,
        )

    # -- HTTP ---------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """Return the ``data`` member of an API answer.

        Raises BackendUnavailable (no answer in time, 5xx, not an API answer),
        PermissionDenied (401/403) or InvalidQuery (Prometheus' error text).
        """
        import httpx

        try:
            response = self._client.get(path, params=params)
        except httpx.TimeoutException as exc:
            raise BackendUnavailable(
                f"Prometheus at {self.url} did not answer within {self.timeout:g}s"
            ) from exc
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"Prometheus at {self.url} is unreachable: {exc}") from exc
        return self._decode(response)

    def _decode(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if response.status_code in (401, 403):
            raise PermissionDenied(
                f"Prometheus at {self.url} refused the request "
                f"(HTTP {response.status_code}): {error or response.text[:200]}"
            )
        if isinstance(body, dict) and body.get("status") == "error":
            kind = body.get("errorType", "")
            if response.status_code >= 500 and kind not in ("execution", "timeout"):
                raise BackendUnavailable(f"Prometheus at {self.url}: {error}")
            raise InvalidQuery(str(error))
        if response.status_code != 200 or not isinstance(body, dict) or "data" not in body:
            raise BackendUnavailable(
                f"Prometheus at {self.url} answered HTTP {response.status_code}: "
                f"{response.text[:200]!r}"
            )
        return body["data"]

    # -- queries ------------------------------------------------------

    def range_query(
        self, query: str, start: datetime, end: datetime, *, width: int = 120
    ) -> list[Series]:
        """Return the series of PromQL ``query`` over [start, end], about ``width`` points each.

        Non-finite values (NaN from an empty ``histogram_quantile``) are dropped.
        Raises InvalidQuery with Prometheus' error text, or BackendUnavailable.
        """
        step = step_for(start, end, width)
        data = self._get(
            "/api/v1/query_range",
            {"query": query, "start": start.timestamp(), "end": end.timestamp(), "step": step},
        )
        return self._to_series(data, query)

    def instant_query(self, query: str, at: datetime | None = None) -> list[Series]:
        """Return one-point series of PromQL ``query`` at ``at`` (now when None).

        Raises InvalidQuery with Prometheus' error text, or BackendUnavailable.
        """
        params: dict[str, Any] = {"query": query}
        if at is not None:
            params["time"] = at.timestamp()
        return self._to_series(self._get("/api/v1/query", params), query)

    @staticmethod
    def _to_series(data: dict[str, Any], query: str) -> list[Series]:
        kind = data.get("resultType")
        out: list[Series] = []
        if kind == "scalar":
            t, v = data["result"]
            value = float(v)
            return [Series(query, ((float(t), value),))] if math.isfinite(value) else []
        for item in data.get("result", []):
            labels = dict(item.get("metric", {}))
            raw = item.get("values") if kind == "matrix" else [item.get("value")]
            points = tuple((float(t), float(v)) for t, v in (raw or []) if math.isfinite(float(v)))
            name = series_name(labels, query)
            labels.pop("__name__", None)
            out.append(Series(name, points, labels))
        return out

    def _window_query(self, metric: str, seconds: float) -> str:
        selected = bucket_metric(with_selector(metric, self.selector))
        return f"sum by (le) (increase({selected}[{max(1, round(seconds))}s]))"

    @staticmethod
    def _histogram(by_le: dict[float, float]) -> Histogram:
        bounds = tuple(sorted(by_le))
        return Histogram(bounds, tuple(by_le[b] for b in bounds))

    def histogram_window(self, metric: str, start: datetime, end: datetime) -> Histogram:
        """Return the increase of histogram ``metric``'s buckets over [start, end].

        One instant query at ``end`` of ``sum by (le) (increase(metric_bucket[end-start]))``;
        an empty result gives an empty Histogram. Raises InvalidQuery or BackendUnavailable.
        """
        seconds = (end - start).total_seconds()
        data = self._get(
            "/api/v1/query",
            {"query": self._window_query(metric, seconds), "time": end.timestamp()},
        )
        by_le: dict[float, float] = {}
        for item in data.get("result", []):
            le = item.get("metric", {}).get("le")
            if le is not None:
                by_le[float(le)] = float(item["value"][1])
        return self._histogram(by_le)

    def histogram_range(
        self, metric: str, start: datetime, end: datetime, window: float, *, width: int = 120
    ) -> list[tuple[float, Histogram]]:
        """Return ``(t, histogram of the window (t - window, t])`` for t stepping over [start, end].

        One range query (step from :func:`step_for`) instead of one query per
        point. Raises InvalidQuery or BackendUnavailable.
        """
        step = step_for(start, end, width)
        data = self._get(
            "/api/v1/query_range",
            {
                "query": self._window_query(metric, window),
                "start": start.timestamp(),
                "end": end.timestamp(),
                "step": step,
            },
        )
        per_time: dict[float, dict[float, float]] = defaultdict(dict)
        for item in data.get("result", []):
            le = item.get("metric", {}).get("le")
            if le is None:
                continue
            for t, v in item.get("values", []):
                value = float(v)
                if math.isfinite(value):
                    per_time[float(t)][float(le)] = value
        return [(t, self._histogram(per_time[t])) for t in sorted(per_time)]

    def alerts(self) -> list[Alert]:
        """Return the firing and pending alerts whose labels match the selector's matchers.

        Raises BackendUnavailable.
        """
        wanted = parse_selector(self.selector)
        data = self._get("/api/v1/alerts")
        out = []
        for item in data.get("alerts", []):
            labels = {str(k): str(v) for k, v in item.get("labels", {}).items()}
            if any(labels.get(k) != v for k, v in wanted.items()):
                continue
            annotations = item.get("annotations", {}) or {}
            out.append(
                Alert(
                    name=labels.get("alertname", "?"),
                    state=str(item.get("state", "")),
                    severity=labels.get("severity", ""),
                    summary=str(annotations.get("summary") or annotations.get("description", "")),
                    since=_parse_time(item.get("activeAt")),
                    labels=labels,
                )
            )
        return out

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()
