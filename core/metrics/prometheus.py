"""A :class:`~core.metrics.base.MetricsSource` backed by a Prometheus server.

The source speaks Prometheus' HTTP API (``/api/v1/query``,
``/api/v1/query_range``, ``/api/v1/alerts``) with httpx. The
prometheus-api-client package wraps a rejected query into the repr of the raw
response body and retries refused connections with back-off; an operator
needs Prometheus' own ``parse error: ...`` text and a fast "unreachable", so
the few calls needed here are made directly.

Answers are checked, never trusted: an answer that is not what the API
promises (wrong JSON shape, an HTML page, a value that is not a number, a
negative or non-finite bucket count, cumulative buckets that decrease by more
than ``increase()``'s extrapolation can explain) raises
:class:`~core.errors.InvalidResponse`. An empty result is no data, not an error.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.domain import Alert, Histogram, Series
from core.errors import BackendUnavailable, InvalidQuery, InvalidResponse, PermissionDenied
from core.metrics.base import MetricsSource
from core.sanitize import redact_url

if TYPE_CHECKING:
    import httpx

#: Prometheus refuses range queries with more than this many points per series.
MAX_POINTS = 11_000

#: ``increase()`` extrapolates each bucket on its own, so a windowed cumulative count may
#: dip below the bucket before it by a little (the drift math clips that to 0). A dip
#: larger than this fraction of the window's total (and than one sample) is not rounding:
#: the answer is refused as InvalidResponse.
MONOTONE_SLACK = 0.01

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

        Raises BackendUnavailable (no answer in time, an error status),
        InvalidResponse (HTTP 200 that is not a successful API answer, e.g. an
        HTML page), PermissionDenied (401/403) or InvalidQuery (Prometheus' error text).
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
        if response.status_code != 200:
            raise BackendUnavailable(
                f"Prometheus at {self.url} answered HTTP {response.status_code}: "
                f"{response.text[:200]!r}"
            )
        if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
            raise InvalidResponse(
                f"Prometheus at {self.url} answered HTTP 200 without an API answer: "
                f"{response.text[:200]!r}"
            )
        return body["data"]

    # -- queries ------------------------------------------------------

    def range_query(
        self, query: str, start: datetime, end: datetime, *, width: int = 120
    ) -> list[Series]:
        """Return the series of PromQL ``query`` over [start, end], about ``width`` points each.

        Non-finite values (NaN from an empty ``histogram_quantile``) are dropped.
        Raises InvalidQuery with Prometheus' error text, BackendUnavailable, or
        InvalidResponse for an answer of the wrong shape or a value that is not a number.
        """
        step = step_for(start, end, width)
        data = self._get(
            "/api/v1/query_range",
            {"query": query, "start": start.timestamp(), "end": end.timestamp(), "step": step},
        )
        return self._to_series(data, query)

    def instant_query(self, query: str, at: datetime | None = None) -> list[Series]:
        """Return one-point series of PromQL ``query`` at ``at`` (now when None).

        Non-finite values are dropped (no data). Raises InvalidQuery with
        Prometheus' error text, BackendUnavailable, or InvalidResponse as
        :meth:`range_query`.
        """
        params: dict[str, Any] = {"query": query}
        if at is not None:
            params["time"] = at.timestamp()
        return self._to_series(self._get("/api/v1/query", params), query)

    def _to_series(self, data: Any, query: str) -> list[Series]:
        """Return the series of a query answer's ``data``; raises InvalidResponse for a
        wrong shape or a value that is not a number. NaN and infinite values (an empty
        ``histogram_quantile``, a division by zero) are dropped: they are no data."""
        kind, result = self._result(data, ("vector", "matrix", "scalar"))
        out: list[Series] = []
        if kind == "scalar":
            t, value = self._point(result)
            return [Series(query, ((t, value),))] if math.isfinite(value) else []
        for item in result:
            labels = self._labels(item)
            if kind == "matrix":
                raw = item.get("values")
                if not isinstance(raw, list):
                    raise self._bad(f"a matrix result without a list of values: {item!r}")
            else:
                raw = [item.get("value")]
            points = tuple(p for p in map(self._point, raw) if math.isfinite(p[1]))
            name = series_name(labels, query)
            labels.pop("__name__", None)
            out.append(Series(name, points, labels))
        return out

    # -- checking answers -----------------------------------------------

    def _bad(self, what: str) -> InvalidResponse:
        return InvalidResponse(f"Prometheus at {self.url} answered {what[:300]}")

    def _result(self, data: Any, kinds: tuple[str, ...]) -> tuple[str, Any]:
        """Return ``(resultType, result)`` of a query answer; raises InvalidResponse."""
        if not isinstance(data, dict):
            raise self._bad(f"data that is not an object: {data!r}")
        kind = data.get("resultType")
        result = data.get("result")
        if kind not in kinds:
            raise self._bad(f"result type {kind!r} (expected {' or '.join(kinds)})")
        if kind == "scalar" or isinstance(result, list):
            return kind, result
        raise self._bad(f"a {kind} result that is not a list: {result!r}")

    def _labels(self, item: Any) -> dict[str, str]:
        """Return the labels of one result item; raises InvalidResponse for a wrong shape."""
        if not isinstance(item, dict) or not isinstance(item.get("metric", {}), dict):
            raise self._bad(f"a result item that is not a series: {item!r}")
        return {str(k): str(v) for k, v in item.get("metric", {}).items()}

    def _point(self, pair: Any) -> tuple[float, float]:
        """Return ``(time, value)`` of a ``[t, "v"]`` pair; raises InvalidResponse."""
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise self._bad(f"a sample that is not a [time, value] pair: {pair!r}")
        t, v = pair
        try:
            if isinstance(t, bool) or isinstance(v, bool) or not isinstance(v, str | int | float):
                raise ValueError
            return float(t), float(v)
        except (TypeError, ValueError):
            raise self._bad(f"a sample that is not a number: {pair!r}") from None

    def _count(self, pair: Any, le: float) -> tuple[float, float]:
        """Return ``(time, count)`` of a bucket sample; raises InvalidResponse unless the
        count is a finite number >= 0."""
        t, value = self._point(pair)
        if not math.isfinite(value) or value < 0:
            raise self._bad(f"bucket le={le:g} with count {pair[1]!r} (not a count)")
        return t, value

    def _le(self, item: Any) -> float | None:
        """Return the ``le`` bound of a bucket result item (None: no ``le`` label)."""
        le = self._labels(item).get("le")
        if le is None:
            return None
        try:
            bound = float(le)
        except ValueError:
            raise self._bad(f"bucket bound le={le!r} that is not a number") from None
        if math.isnan(bound):
            raise self._bad(f"bucket bound le={le!r} that is not a number")
        return bound

    def _window_query(self, metric: str, seconds: float) -> str:
        selected = bucket_metric(with_selector(metric, self.selector))
        return f"sum by (le) (increase({selected}[{max(1, round(seconds))}s]))"

    def _histogram(self, by_le: dict[float, float]) -> Histogram:
        """Return the histogram of ``{le: cumulative count}``; raises InvalidResponse when
        the counts decrease by more than :data:`MONOTONE_SLACK` allows."""
        bounds = tuple(sorted(by_le))
        counts = tuple(by_le[b] for b in bounds)
        slack = max(1.0, MONOTONE_SLACK * max(counts, default=0.0))
        for i in range(1, len(counts)):
            if counts[i] < counts[i - 1] - slack:
                raise self._bad(
                    f"cumulative buckets that decrease: le={bounds[i - 1]:g} has "
                    f"{counts[i - 1]:g}, le={bounds[i]:g} has {counts[i]:g}"
                )
        return Histogram(bounds, counts)

    def histogram_window(self, metric: str, start: datetime, end: datetime) -> Histogram:
        """Return the increase of histogram ``metric``'s buckets over [start, end].

        One instant query at ``end`` of ``sum by (le) (increase(metric_bucket[end-start]))``;
        an empty result gives an empty Histogram (no data). Raises InvalidQuery,
        BackendUnavailable, or InvalidResponse for a wrong shape, a count that is
        not a finite number >= 0, or buckets that decrease (see :data:`MONOTONE_SLACK`).
        """
        seconds = (end - start).total_seconds()
        data = self._get(
            "/api/v1/query",
            {"query": self._window_query(metric, seconds), "time": end.timestamp()},
        )
        _, result = self._result(data, ("vector",))
        by_le: dict[float, float] = {}
        for item in result:
            le = self._le(item)
            if le is not None:
                by_le[le] = self._count(item.get("value"), le)[1]
        return self._histogram(by_le)

    def histogram_range(
        self, metric: str, start: datetime, end: datetime, window: float, *, width: int = 120
    ) -> list[tuple[float, Histogram]]:
        """Return ``(t, histogram of the window (t - window, t])`` for t stepping over [start, end].

        One range query (step from :func:`step_for`) instead of one query per
        point. Raises InvalidQuery, BackendUnavailable or InvalidResponse as
        :meth:`histogram_window`.
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
        _, result = self._result(data, ("matrix",))
        per_time: dict[float, dict[float, float]] = defaultdict(dict)
        for item in result:
            le = self._le(item)
            if le is None:
                continue
            values = item.get("values")
            if not isinstance(values, list):
                raise self._bad(f"a matrix result without a list of values: {item!r}")
            for pair in values:
                t, value = self._count(pair, le)
                per_time[t][le] = value
        return [(t, self._histogram(per_time[t])) for t in sorted(per_time)]

    def alerts(self) -> list[Alert]:
        """Return the firing and pending alerts whose labels match the selector's matchers.

        Raises BackendUnavailable, or InvalidResponse for an answer of the wrong shape.
        """
        wanted = parse_selector(self.selector)
        data = self._get("/api/v1/alerts")
        items = data.get("alerts") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise self._bad(f"alerts that are not a list: {data!r}")
        out = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("labels", {}), dict):
                raise self._bad(f"an alert that is not an object with labels: {item!r}")
            labels = {str(k): str(v) for k, v in item.get("labels", {}).items()}
            if any(labels.get(k) != v for k, v in wanted.items()):
                continue
            annotations = item.get("annotations") or {}
            if not isinstance(annotations, dict):
                raise self._bad(f"alert annotations that are not an object: {item!r}")
            active = item.get("activeAt")
            out.append(
                Alert(
                    name=labels.get("alertname", "?"),
                    state=str(item.get("state", "")),
                    severity=labels.get("severity", ""),
                    summary=str(annotations.get("summary") or annotations.get("description", "")),
                    since=_parse_time(active if isinstance(active, str) else None),
                    labels=labels,
                )
            )
        return out

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()
