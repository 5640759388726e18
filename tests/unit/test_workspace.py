"""Configuration to live objects, and doctor's report on backends that do not answer."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest

from core import config as config_mod
from core.errors import NotFound, ReadOnly
from core.metrics.sources import open_source
from core.services import action_table
from core.services.doctor import doctor
from core.services.workspace import Workspace
from tests.support.repos import BASE_TIME, commit_files, init_repo


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def config(tmp_path: Path) -> config_mod.Config:
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"README.md": "x\n"}, "first", when=BASE_TIME)
    port = dead_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: v1
            kind: Config
            clusters:
            - name: gone
              cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}
            users:
            - name: nobody
              user: {{token: "x"}}
            contexts:
            - name: gone
              context: {{cluster: gone, user: nobody}}
            current-context: gone
            """
        )
    )
    path = tmp_path / "mrc.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [[model]]
            name = "churn"
            repo = "{repo}"

              [[model.target]]
              name = "local"
              kind = "local"
              command = "{{python}} server.py {{port}}"
              port = {port}

              [[model.target]]
              name = "missing"
              kind = "local"
              command = "no-such-program-here --port {{port}}"
              port = {port}
              read_only = true

              [[model.target]]
              name = "edge"
              kind = "docker"
              base_url = "unix://{tmp_path}/no-docker.sock"
              container = "churn"
              port = {port}

              [[model.target]]
              name = "prod"
              kind = "kubernetes"
              kubeconfig = "{kubeconfig}"
              context = "gone"
              namespace = "ml"
              deployment = "churn"

              [model.metrics]
              source = "prometheus"
              url = "http://127.0.0.1:{port}"
              selector = '{{job="churn"}}'
              timeout = "1s"
            """
        )
    )
    return config_mod.load_file(path)


def test_doctor_reports_every_backend_without_raising(config: config_mod.Config) -> None:
    lines = doctor(config, timeout=2.0)
    by_name = {(line.backend, line.name.split(":")[0]): line for line in lines}
    assert [line.backend for line in lines] == [
        "git", "local", "local", "docker", "kubernetes", "prometheus",
    ]  # fmt: skip
    assert by_name[("git", "churn")].ok
    assert by_name[("local", "churn/local")].ok  # {python} resolves to this interpreter
    missing = by_name[("local", "churn/missing")]
    assert not missing.ok and "no-such-program-here" in missing.detail
    for backend, name in [("docker", "churn/edge"), ("kubernetes", "churn/prod")]:
        line = by_name[(backend, name)]
        assert not line.ok, line
        assert line.detail
    assert not by_name[("prometheus", "churn")].ok


def test_workspace_builds_targets_lazily_and_caches_them(
    config: config_mod.Config, tmp_path: Path
) -> None:
    ws = Workspace(config, state_dir=tmp_path / "state")
    try:
        local = ws.target("churn")  # the first target
        assert (local.kind, local.name, local.model) == ("local", "local", "churn")
        assert ws.target("churn", "local") is local
        kinds = [t.kind for t in ws.targets("churn")]
        assert kinds == ["local", "local", "docker", "kubernetes"]
        with pytest.raises(NotFound):
            ws.target("churn", "nowhere")
        with pytest.raises(NotFound):
            ws.model("other")
        assert ws.is_read_only("churn", "missing")
        with pytest.raises(ReadOnly):
            action_table.require(ws, "restart", "churn", "missing")
        ro = Workspace(config.with_read_only(True), state_dir=tmp_path / "state")
        assert ro.is_read_only("churn", "local")
        assert ws.resolve_commit("churn", "HEAD") == ws.repository("churn").head()
    finally:
        ws.close()


def test_open_source_builds_the_configured_source(config: config_mod.Config) -> None:
    source = open_source(config.model("churn").metrics)  # type: ignore[arg-type]
    assert type(source).__name__ == "PrometheusSource"
    assert source.url == config.model("churn").metrics.url  # type: ignore[union-attr]
    assert source.selector == '{job="churn"}'  # type: ignore[union-attr]
    source.close()  # type: ignore[union-attr]
