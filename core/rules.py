"""Prometheus alerting rules for every configured model, over the metrics ``mrc watch`` exports.

:func:`alerting_rules` returns the text of one rule file (YAML) with a group
per model:

* ``MrcDriftWarning`` / ``MrcDriftAlert`` — ``mrc_drift_score`` (prediction
  or any feature) at or above the model's ``drift.warn`` / ``drift.alert``
  for ``for_`` seconds;
* ``MrcHighErrorRate`` / ``MrcHighLatency`` — the guard's error-rate /
  latency check above ``guard.max_error_rate`` / ``guard.max_latency_p95``
  (only when that limit is configured);
* ``MrcSourceDown`` — the model's metrics source could not be read;

and one group ``mrc-exporter`` with ``MrcExporterDown`` (no exporter
evaluation scraped, or none for ``stale_after`` seconds).

Labels name the model and the target (and ``severity``); annotations say
what to do — roll back when the drift began at a release, retrain
otherwise — with the exact ``mrc`` commands. Names from the configuration
are escaped for PromQL and for Prometheus' templates. Checking the file
with ``promtool`` is the front end's job (:mod:`tui.cli.rules`).
"""

from __future__ import annotations

import json
import re
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config import Config, ModelConfig

#: Names that are safe as they are inside a template and a shell command.
_PLAIN = re.compile(r"[A-Za-z0-9_.:/-]+")
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def prometheus_duration(seconds: float) -> str:
    """Return ``seconds`` in Prometheus' duration syntax (``"5m"``, ``"1h30m"``, ``"0s"``).

    Raises ValueError for a negative or fractional number of seconds
    (Prometheus rule durations are whole seconds here).
    """
    if seconds < 0 or seconds != int(seconds):
        raise ValueError(f"expected a whole, non-negative number of seconds, got {seconds:g}")
    rest = int(seconds)
    if rest == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def _q(text: str) -> str:
    """Return ``text`` as a YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=True)


def _matcher(value: str) -> str:
    """Return ``value`` as a PromQL string literal."""
    return json.dumps(value, ensure_ascii=True)


def _literal(value: str) -> str:
    """Return ``value`` so that Prometheus' template engine prints it unchanged."""
    if _PLAIN.fullmatch(value):
        return value
    return "{{ " + json.dumps(value, ensure_ascii=True) + " }}"


def _shell(*argv: str) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def _drift_target(model: ModelConfig) -> str:
    """The ``target`` label ``mrc watch`` puts on a model's drift and guard series."""
    if model.metrics is not None and model.metrics.target:
        return model.metrics.target
    return model.targets[0].name if model.targets else ""


def _rule(
    alert: str,
    expr: str,
    for_: str,
    labels: dict[str, str],
    annotations: dict[str, str],
) -> list[str]:
    lines = [f"      - alert: {alert}", f"        expr: {_q(expr)}", f"        for: {for_}"]
    lines.append("        labels:")
    lines += [f"          {k}: {_q(v)}" for k, v in labels.items()]
    lines.append("        annotations:")
    lines += [f"          {k}: {_q(v)}" for k, v in annotations.items()]
    return lines


def _model_rules(model: ModelConfig, for_: str) -> list[str]:
    name = model.name
    target = _drift_target(model)
    sel = f"model={_matcher(name)}"
    labels = {"model": _literal(name), "target": _literal(target)}
    history = _shell("mrc", "history", name, *(["--target", target] if target else []))
    rollback = _shell("mrc", "rollback", name, *(["--target", target] if target else []))
    what = "{{ $labels.kind }}{{ if $labels.feature }} {{ $labels.feature }}{{ end }}"
    advice = (
        f"Check whether the drift began at a release: `{history}`. "
        f"If it did, roll back: `{rollback}`. "
        "If it did not, the data changed: retrain the model and release the result."
    )
    lines = [f"  - name: {_q('mrc-' + name)}", "    rules:"]
    if model.metrics is not None and model.metrics.prediction_histogram:
        method = model.drift.method
        for alert, level, severity in (
            ("MrcDriftWarning", model.drift.warn, "warning"),
            ("MrcDriftAlert", model.drift.alert, "critical"),
        ):
            lines += _rule(
                alert,
                f"mrc_drift_score{{{sel}}} >= {level!r}",
                for_,
                {**labels, "severity": severity},
                {
                    "summary": f"{_literal(name)} on {_literal(target)}: {method} drift of "
                    f'{what} is {{{{ $value | printf "%.3f" }}}} (>= {level:g})',
                    "description": advice,
                    "command": rollback,
                },
            )
    guard = model.guard
    for alert, check, limit, unit in (
        ("MrcHighErrorRate", "error_rate", guard.max_error_rate if guard else None, ""),
        ("MrcHighLatency", "latency_p95", guard.max_latency_p95 if guard else None, " s"),
    ):
        if limit is None or model.metrics is None:
            continue
        lines += _rule(
            alert,
            f"mrc_guard_value{{{sel},check={_matcher(check)}}} > {float(limit)!r}",
            for_,
            {**labels, "severity": "critical"},
            {
                "summary": f"{_literal(name)} on {_literal(target)}: {check} "
                f'{{{{ $value | printf "%.4g" }}}}{unit} > {limit:g}{unit}',
                "description": (
                    f"If it began at a release (`{history}`), roll back: `{rollback}`. "
                    "Otherwise look at the serving side (dependencies, load)."
                ),
                "command": rollback,
            },
        )
    if model.metrics is not None:
        lines += _rule(
            "MrcSourceDown",
            f"mrc_source_up{{{sel}}} == 0",
            for_,
            {**labels, "severity": "warning"},
            {
                "summary": f"{_literal(name)}: mrc watch cannot read the metrics source",
                "description": (
                    "No drift or guard values are exported while the source is down. "
                    f"Check the source: `{_shell('mrc', 'doctor')}`."
                ),
                "command": _shell("mrc", "doctor"),
            },
        )
    if lines[-1] == "    rules:":
        return []
    return lines


def alerting_rules(config: Config, *, for_: float = 300.0, stale_after: float = 300.0) -> str:
    """Return a Prometheus rule file (YAML text) alerting on every model of ``config``.

    ``for_`` is how long (seconds) a condition must hold before its alert
    fires; ``stale_after`` how old the exporter's latest evaluation may be.
    Raises ValueError when either is negative or fractional.
    """
    pending = prometheus_duration(for_)
    stale = prometheus_duration(stale_after)
    lines = [
        "# Alerting rules for the metrics `mrc watch` exports; written by `mrc rules`.",
        "groups:",
    ]
    for model in config.models:
        lines += _model_rules(model, pending)
    lines += ["  - name: mrc-exporter", "    rules:"]
    lines += _rule(
        "MrcExporterDown",
        "absent(mrc_last_evaluation_timestamp_seconds) or "
        f"(time() - max(mrc_last_evaluation_timestamp_seconds) > {float(stale_after)!r})",
        pending,
        {"severity": "critical"},
        {
            "summary": f"mrc watch has not been scraped, or not evaluated for {stale}",
            "description": (
                "No drift, guard or release metrics reach Prometheus: every mrc alert is "
                "blind. Restart the exporter (`systemctl restart mrc-watch` or its "
                "Deployment) and check its log."
            ),
            "command": "mrc watch",
        },
    )
    return "\n".join(lines) + "\n"
