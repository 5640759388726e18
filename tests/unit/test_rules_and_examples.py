"""``mrc rules``' duration syntax, and the exporter's deployment examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from core.durations import parse
from core.rules import prometheus_duration
from tui.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[2]


@given(st.integers(min_value=0, max_value=10**9))
def test_prometheus_duration_reads_back_as_the_same_seconds(seconds: int) -> None:
    text = prometheus_duration(seconds)
    assert parse(text) == seconds
    assert "." not in text


@pytest.mark.parametrize("bad", [-1.0, 1.5])
def test_prometheus_duration_refuses_what_a_rule_cannot_say(bad: float) -> None:
    with pytest.raises(ValueError):
        prometheus_duration(bad)


def test_kubernetes_example_runs_mrc_watch_behind_a_service() -> None:
    docs = list(yaml.safe_load_all((ROOT / "examples" / "mrc-watch-kubernetes.yaml").read_text()))
    deployment, service = docs
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "watch"
    assert args.listen == ("0.0.0.0", 9464)
    port = service["spec"]["ports"][0]
    assert port["port"] == 9464 and port["targetPort"] == container["ports"][0]["name"]
    selector = service["spec"]["selector"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_systemd_example_runs_mrc_watch() -> None:
    unit = (ROOT / "examples" / "mrc-watch.service").read_text()
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = exec_start.removeprefix("ExecStart=").split()
    assert argv[0].endswith("/mrc")
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.listen, args.interval) == ("watch", ("127.0.0.1", 9464), 15.0)
