"""``mrc alerts``: the Alertmanager alerts of the configured models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui.cli.output import EXIT_OK, Streams, UsageError

if TYPE_CHECKING:
    from core.services.workspace import Workspace

NOT_CONFIGURED = "no Alertmanager configured: add an [alertmanager] table with its url"


def cmd_alerts(
    ws: Workspace, streams: Streams, *, model: str | None = None, as_json: bool = False
) -> int:
    """List the alerts of `model` (all alerts when None) with their state; return 0.

    Raises UsageError (exit 2) without an ``[alertmanager]`` table, NotFound
    (exit 6) for an unknown model, and the client's errors: BackendUnavailable
    and InvalidResponse (exit 3), OperationFailed (exit 1).
    """
    from core.alertmanager import AlertmanagerClient

    config = ws.config.alertmanager
    if config is None:
        raise UsageError(NOT_CONFIGURED)
    if model is not None:
        ws.model(model)
    client = AlertmanagerClient.from_config(config)
    try:
        alerts = client.alerts(model)
    finally:
        client.close()
    if as_json:
        streams.json({"alerts": [alert.as_dict() for alert in alerts]})
        return EXIT_OK
    if not alerts:
        streams.result("no alerts")
    for alert in alerts:
        state = "silenced" if alert.silenced else alert.state
        line = f"{alert.model or '-':<16} {alert.name or '-':<24} {state:<10} {alert.summary}"
        streams.result(line.rstrip())
    return EXIT_OK
