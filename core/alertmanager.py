"""Alertmanager's API v2: list alerts, create and expire silences.

One :class:`AlertmanagerClient` per configured ``[alertmanager]`` table. Every
request has a timeout. Errors are typed (see :mod:`core.errors`):

* Alertmanager cannot be reached or times out -> :class:`BackendUnavailable`;
* it answers something that is not its API (HTML, a wrong JSON shape, a 5xx)
  -> :class:`InvalidResponse`;
* it refuses a request (4xx) -> :class:`OperationFailed` carrying its message.

Text from Alertmanager (labels, annotations, error messages) is returned as
is: front ends sanitise it when they show it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.errors import BackendUnavailable, InvalidResponse, OperationFailed
from core.sanitize import redact_url

if TYPE_CHECKING:
    import httpx

    from core.config import AlertmanagerConfig

#: The label naming the model an alert is about.
MODEL_LABEL = "model"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as Alertmanager holds it."""

    fingerprint: str
    """Alertmanager's identifier of the alert's label set."""
    labels: dict[str, str]
    """The alert's labels (``alertname``, ``model``, ``severity``, ...)."""
    annotations: dict[str, str] = field(default_factory=dict)
    """The alert's annotations (``summary``, ``description``, ...)."""
    state: str = "active"
    """``active`` (firing, notified), ``suppressed`` (silenced or inhibited) or ``unprocessed``."""
    silenced_by: tuple[str, ...] = ()
    """Ids of the silences muting it."""
    starts_at: datetime | None = None
    """When it started firing."""

    @property
    def name(self) -> str:
        """Returns the ``alertname`` label ("" when missing)."""
        return self.labels.get("alertname", "")

    @property
    def model(self) -> str:
        """Returns the ``model`` label ("" when missing)."""
        return self.labels.get(MODEL_LABEL, "")

    @property
    def silenced(self) -> bool:
        """Returns whether a silence mutes it."""
        return bool(self.silenced_by)

    @property
    def summary(self) -> str:
        """Returns the ``summary`` annotation, else ``description``, else ""."""
        return self.annotations.get("summary") or self.annotations.get("description", "")

    def as_dict(self) -> dict[str, Any]:
        """Returns a JSON-able mapping (the document ``mrc alerts --json`` lists)."""
        return {
            "fingerprint": self.fingerprint,
            "name": self.name,
            "model": self.model,
            "state": self.state,
            "silenced_by": list(self.silenced_by),
            "starts_at": self.starts_at.isoformat() if self.starts_at else None,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
        }


@dataclass(frozen=True, slots=True)
class Matcher:
    """One silence matcher: ``name`` equals ``value`` (or matches it when ``regex``)."""

    name: str
    value: str
    regex: bool = False


def matchers_for(alert: Alert) -> list[Matcher]:
    """Returns equality matchers on every label of `alert` (a silence of exactly it)."""
    return [Matcher(name, value) for name, value in sorted(alert.labels.items())]


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _string_map(value: object, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidResponse(f"Alertmanager answered an alert whose {what} are not strings")
    return dict(value)


def parse_alerts(document: object) -> list[Alert]:
    """Returns the alerts of a ``GET /api/v2/alerts`` answer.

    Raises InvalidResponse when the document is not a list of alert objects.
    """
    if not isinstance(document, list):
        raise InvalidResponse("Alertmanager answered something other than a list of alerts")
    alerts = []
    for item in document:
        if not isinstance(item, dict) or not isinstance(item.get("fingerprint"), str):
            raise InvalidResponse("Alertmanager answered an alert without a fingerprint")
        status = item.get("status", {})
        if not isinstance(status, dict):
            raise InvalidResponse("Alertmanager answered an alert with a malformed status")
        silenced = status.get("silencedBy") or []
        if not isinstance(silenced, list) or not all(isinstance(s, str) for s in silenced):
            raise InvalidResponse("Alertmanager answered an alert with malformed silencedBy")
        state = status.get("state", "active")
        alerts.append(
            Alert(
                fingerprint=item["fingerprint"],
                labels=_string_map(item.get("labels"), "labels"),
                annotations=_string_map(item.get("annotations", {}), "annotations"),
                state=state if isinstance(state, str) else "unknown",
                silenced_by=tuple(silenced),
                starts_at=_parse_time(item.get("startsAt")),
            )
        )
    return alerts


def _refusal(response: httpx.Response) -> str:
    """Returns Alertmanager's message in a 4xx answer (a JSON string, an object or text)."""
    text = response.text.strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text[:2000]
    if isinstance(body, str):
        return body
    if isinstance(body, dict):
        for key in ("message", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return text[:2000]


class AlertmanagerClient:
    """A client of one Alertmanager's API v2 (see the module docstring for its errors)."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.base_url = url.rstrip("/")
        self.url = redact_url(self.base_url)
        self.headers = dict(headers or {})
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self._client: httpx.Client | None = None

    @classmethod
    def from_config(cls, config: AlertmanagerConfig) -> AlertmanagerClient:
        """Returns a client for the ``[alertmanager]`` table."""
        return cls(
            config.url,
            headers=config.headers,
            token=config.token.reveal() if config.token else None,
            timeout=config.timeout,
        )

    def close(self) -> None:
        """Closes the HTTP connection pool (the client opens a new one on the next call)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Returns the 2xx response to ``method path``.

        Raises BackendUnavailable (unreachable, timeout), OperationFailed (4xx,
        with Alertmanager's message) or InvalidResponse (any other status).
        """
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=httpx.Timeout(self.timeout), headers=self.headers)
        where = f"{self.url}{path}"
        try:
            response = self._client.request(method, f"{self.base_url}{path}", **kwargs)
        except httpx.TimeoutException as exc:
            raise BackendUnavailable(
                f"Alertmanager at {self.url} did not answer within {self.timeout:g}s"
            ) from exc
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                redact_url(f"cannot reach Alertmanager at {where}: {exc}")
            ) from exc
        if 400 <= response.status_code < 500:
            raise OperationFailed(
                f"Alertmanager refused {method} {path} ({response.status_code}): "
                f"{_refusal(response)}"
            )
        if not 200 <= response.status_code < 300:
            raise InvalidResponse(
                f"Alertmanager answered {response.status_code} to {method} {path} ({self.url})"
            )
        return response

    def _json(self, response: httpx.Response) -> object:
        try:
            return response.json()
        except ValueError as exc:
            kind = response.headers.get("content-type", "unknown content")
            raise InvalidResponse(f"Alertmanager answered {kind}, not JSON ({self.url})") from exc

    def alerts(self, model: str | None = None) -> list[Alert]:
        """Returns the alerts (firing, silenced and inhibited), of `model` only when given.

        Sorted by model, alert name and fingerprint. Raises BackendUnavailable,
        InvalidResponse or OperationFailed (see the module docstring).
        """
        params = {"active": "true", "silenced": "true", "inhibited": "true"}
        alerts = parse_alerts(self._json(self._request("GET", "/api/v2/alerts", params=params)))
        if model is not None:
            alerts = [a for a in alerts if a.model == model]
        return sorted(alerts, key=lambda a: (a.model, a.name, a.fingerprint))

    def create_silence(
        self,
        matchers: list[Matcher],
        *,
        duration: float,
        created_by: str,
        comment: str,
        now: datetime | None = None,
    ) -> str:
        """Creates a silence from now for `duration` seconds; returns its id.

        Raises OperationFailed with Alertmanager's message when it refuses the
        silence (an invalid matcher, an empty comment), BackendUnavailable or
        InvalidResponse.
        """
        start = now or datetime.now(UTC)
        body = {
            "matchers": [
                {"name": m.name, "value": m.value, "isRegex": m.regex, "isEqual": True}
                for m in matchers
            ],
            "startsAt": start.isoformat().replace("+00:00", "Z"),
            "endsAt": (start + timedelta(seconds=duration)).isoformat().replace("+00:00", "Z"),
            "createdBy": created_by,
            "comment": comment,
        }
        document = self._json(self._request("POST", "/api/v2/silences", json=body))
        if not isinstance(document, dict) or not isinstance(document.get("silenceID"), str):
            raise InvalidResponse("Alertmanager accepted the silence but returned no silenceID")
        return str(document["silenceID"])

    def expire_silence(self, silence_id: str) -> None:
        """Expires the silence `silence_id` now.

        Raises OperationFailed when Alertmanager refuses (unknown or already
        expired silence), BackendUnavailable or InvalidResponse.
        """
        self._request("DELETE", f"/api/v2/silence/{silence_id}")

    def silences(self) -> list[dict[str, Any]]:
        """Returns Alertmanager's silences as it lists them (JSON objects).

        Raises BackendUnavailable or InvalidResponse.
        """
        document = self._json(self._request("GET", "/api/v2/silences"))
        if not isinstance(document, list) or not all(isinstance(s, dict) for s in document):
            raise InvalidResponse("Alertmanager answered something other than a list of silences")
        return list(document)
