"""Releases, guard rollbacks and racing consoles on the real Kubernetes control plane.

Pods are run by kwok, so images are never pulled: an image reference only has
to be well formed. The metrics source is a fake (the point here is the
rollback path against the real API server, controllers and journal); the
full-pipeline test builds and pushes a real image with the Docker engine and
registry fixtures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core import config as config_mod
from core.domain import Alert, Artifact, Histogram, Series
from core.errors import Conflict
from core.metrics.base import MetricsSource
from core.services import guard as g
from core.services import release as r
from core.services.workspace import Workspace
from tests.support.model_server_image import commit_model_server
from tests.support.repos import BASE_TIME, commit_files, init_repo, pytest_command

pytestmark = [pytest.mark.integration, pytest.mark.k8s]

V1 = "registry.local/churn:v1"
V2 = "registry.local/churn:v2"


# ---------------------------------------------------------------------- helpers (shared)


def deployment(namespace: str, image: str, cause: str, replicas: int = 2) -> dict:
    """Return the manifest of Deployment ``churn`` (container ``server``) running ``image``."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "churn",
            "namespace": namespace,
            "annotations": {"kubernetes.io/change-cause": cause},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "churn"}},
            "template": {
                "metadata": {"labels": {"app": "churn"}},
                "spec": {"containers": [{"name": "server", "image": image}]},
            },
        },
    }


def rollout_to(cluster: Any, namespace: str, image: str, cause: str) -> None:
    """Apply Deployment ``churn`` with ``image`` and wait for ``kubectl rollout status``."""
    cluster.kubectl_apply(deployment(namespace, image, cause))
    cluster.kubectl("-n", namespace, "rollout", "status", "deployment/churn", "--timeout=60s")


def live_image(cluster: Any, namespace: str) -> str:
    """Return the image of the Deployment's ``server`` container as kubectl reads it."""
    return cluster.kubectl(
        "-n", namespace, "get", "deployment/churn",
        "-o", "jsonpath={.spec.template.spec.containers[0].image}",
    ).stdout  # fmt: skip


def k8s_config(
    directory: Path,
    repo: Path,
    cluster: Any,
    namespace: str,
    *,
    kubeconfig: Path | str | None = None,
    context: str | None = None,
    extra: str = "",
) -> Path:
    """Write ``directory/mrc.toml``: model churn on target "cluster" (production); return it."""
    path = directory / "mrc.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [[model]]
            name = "churn"
            repo = "{repo}"
            {extra}
              [[model.target]]
              name = "cluster"
              kind = "kubernetes"
              kubeconfig = "{kubeconfig or cluster.kubeconfig}"
              context = "{context or cluster.context}"
              namespace = "{namespace}"
              deployment = "churn"
              container = "server"
              production = true
              timeout = "5s"
            """
        )
    )
    return path


class FakeMetrics(MetricsSource):
    """A metrics source whose error rate is whatever the test sets."""

    def __init__(self, error_rate: float | None) -> None:
        self.error_rate = error_rate

    def instant_query(self, query: str, at: datetime | None = None) -> list[Series]:
        if self.error_rate is None:
            return []
        return [Series(query, ((datetime.now(UTC).timestamp(), self.error_rate),))]

    def range_query(self, *args: Any, **kw: Any) -> list[Series]:
        return []

    def histogram_window(self, metric: str, start: datetime, end: datetime) -> Histogram:
        return Histogram((), ())

    def alerts(self) -> list[Alert]:
        return []

    def close(self) -> None:
        pass


class FakeMetricsWorkspace(Workspace):
    """The real workspace, with the model's metrics source replaced by :class:`FakeMetrics`."""

    fake = FakeMetrics(0.5)

    def metrics(self, model: str) -> Any:
        return self.fake


GUARD = """
            [model.metrics]
            source = "prometheus"
            url = "http://127.0.0.1:9"
            error_rate = "sum(rate(errors[1m])) / sum(rate(requests[1m]))"

            [model.guard]
            duration = "3s"
            auto_rollback = true
            max_error_rate = 0.05
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = init_repo(tmp_path / "repo")
    commit_files(path, {"README.md": "churn\n"}, "start", when=BASE_TIME)
    return path


# ---------------------------------------------------------------------- tests


def test_guard_breach_rolls_back_the_deployment_and_the_journal_tells_it(
    k8s_cluster: Any, k8s_namespace: str, tmp_path: Path, repo: Path
) -> None:
    ns = k8s_namespace
    rollout_to(k8s_cluster, ns, V1, "ship v1")
    cfg = config_mod.load_file(k8s_config(tmp_path, repo, k8s_cluster, ns, extra=GUARD))
    ws = FakeMetricsWorkspace(cfg, state_dir=tmp_path / "state")
    try:
        target = ws.target("churn")
        since = datetime.now(UTC)
        progress = list(ws.run_rollout(target, Artifact(image=V2), reason="ship v2"))
        assert progress
        assert live_image(k8s_cluster, ns) == V2
        assert target.status().revision == 2

        events = list(ws.guard("churn").watch("churn", target, since))
        assert [e.kind for e in events if e.kind in (g.BREACH, g.ROLLED_BACK)] == [
            g.BREACH,
            g.ROLLED_BACK,
        ]
        # The real cluster runs v1 again, as revision 3 (kubectl rollout undo semantics).
        assert live_image(k8s_cluster, ns) == V1
        history = k8s_cluster.kubectl("-n", ns, "rollout", "history", "deployment/churn").stdout
        assert "3 " in history
        state = target.status()
        assert (state.revision, state.image) == (3, V1)

        entries = list(reversed(ws.journal.entries("churn")))
        assert [(e.action, e.outcome.value, e.from_revision, e.to_revision) for e in entries] == [
            ("rollout", "done", "1", "2"),
            ("rollback", "done", "2", "3"),
        ]
        assert entries[0].reason == "ship v2"
        assert entries[1].reason == "guard: error_rate breached: 0.5 > 0.05"
    finally:
        ws.close()


def test_two_consoles_conflict_on_resource_version(
    k8s_cluster: Any, k8s_namespace: str, tmp_path: Path, repo: Path
) -> None:
    """Console 2 previewed a rollback; console 1 changed the Deployment meanwhile: console 2's
    confirmed rollback is refused as a conflict and journalled; console 1's change stays."""
    ns = k8s_namespace
    rollout_to(k8s_cluster, ns, V1, "ship v1")
    rollout_to(k8s_cluster, ns, V2, "ship v2")
    path = k8s_config(tmp_path, repo, k8s_cluster, ns)
    first = Workspace(config_mod.load_file(path), state_dir=tmp_path / "state")
    second = Workspace(config_mod.load_file(path), state_dir=tmp_path / "state")
    try:
        target2 = second.target("churn")
        preview = target2.preview_rollback()
        assert (preview.from_revision, preview.to_revision) == (2, 1)
        target1 = first.target("churn")
        v3 = "registry.local/churn:v3"
        list(first.run_rollout(target1, Artifact(image=v3), reason="console 1 ships v3"))
        assert live_image(k8s_cluster, ns) == v3
        with pytest.raises(Conflict) as raised:
            list(second.run_rollback(target2, None, reason="console 2", expected=preview))
        assert "changed" in str(raised.value)
        assert live_image(k8s_cluster, ns) == v3  # not overwritten
        # console 2 sees console 1's change
        assert target2.status().image == v3
        entries = list(reversed(first.journal.entries("churn")))
        assert [(e.reason, e.action, e.outcome.value) for e in entries] == [
            ("console 1 ships v3", "rollout", "done"),
            ("console 2", "rollback", "failed"),
        ]
        assert entries[1].from_revision == "3"  # it saw revision 3 live
    finally:
        first.close()
        second.close()


KILLER = textwrap.dedent(
    """\
    import sys
    from core import config as config_mod
    from core.domain import Artifact
    from core.services.workspace import Workspace

    ws = Workspace(config_mod.load_file(sys.argv[1]), state_dir=sys.argv[2])
    target = ws.target("churn")
    for progress in ws.run_rollout(target, Artifact(image=sys.argv[3]), reason="killed"):
        print("progress", progress.message, flush=True)
        input()  # hold here until killed
    """
)


def test_console_killed_mid_rollout_shows_outcome_unknown_and_the_live_state(
    k8s_cluster: Any, k8s_namespace: str, tmp_path: Path, repo: Path
) -> None:
    ns = k8s_namespace
    rollout_to(k8s_cluster, ns, V1, "ship v1")
    path = k8s_config(tmp_path, repo, k8s_cluster, ns)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLER, str(path), str(tmp_path / "state"), V2],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        lines = []
        for line in proc.stdout:  # step until the API server has acknowledged the patch
            lines.append(line)
            if " updated to " in line:
                break
            proc.stdin.write("\n")
            proc.stdin.flush()
        assert " updated to " in lines[-1], lines
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    ws = Workspace(config_mod.load_file(path), state_dir=tmp_path / "state")  # the next start
    try:
        entry = ws.journal.entries("churn")[0]
        assert (entry.action, entry.reason, entry.from_revision) == ("rollout", "killed", "1")
        assert entry.outcome_unknown and entry.outcome.value == "unknown"
        assert f"pid {proc.pid}" in entry.error
        live = ws.live_state_for(entry)  # shown beside it: the patch did land
        assert live.image == V2
        deadline = time.monotonic() + 30  # the controller numbers the new revision shortly after
        while live.revision != 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            live = ws.live_state_for(entry)
        assert (live.revision, live.image) == (2, V2)
        assert live_image(k8s_cluster, ns) == V2
    finally:
        ws.close()


TESTS = textwrap.dedent(
    """\
    import json, os

    def test_server_file_exists():
        assert os.path.exists("server.py")
        path = os.environ.get("MRC_METRICS_FILE")
        if path:
            with open(path, "w") as out:
                json.dump({"accuracy": 0.91}, out)
    """
)


@pytest.mark.docker
@pytest.mark.registry
def test_full_release_builds_pushes_rolls_out_and_the_guard_rolls_back(
    k8s_cluster: Any,
    k8s_namespace: str,
    docker_service: Any,
    python_base_image: str,
    registry: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ns = k8s_namespace
    monkeypatch.setenv("DOCKER_HOST", docker_service.base_url)
    repo = tmp_path / "model"
    commit_model_server(repo, python_base_image, "1")
    sha = commit_files(repo, {"tests/test_server.py": TESTS}, "tests", when=BASE_TIME + 600)
    rollout_to(k8s_cluster, ns, V1, "ship v1")
    extra = (
        f'test_command = "{pytest_command()}"\n'
        f'            image = "{registry}/churn"\n'
        "            quality = { accuracy = 0.9 }\n" + GUARD
    )
    cfg = config_mod.load_file(k8s_config(tmp_path, repo, k8s_cluster, ns, extra=extra))
    ws = FakeMetricsWorkspace(cfg, state_dir=tmp_path / "state")
    try:
        events = list(r.ReleasePipeline(ws, poll=0.2).run("churn", sha[:12], reason="v2"))
        final = events[-1]
        assert final.outcome == r.ROLLED_BACK, final.message
        image = f"{registry}/churn:{sha[:8]}"
        # the image is in the registry
        client = docker_service.client()
        try:
            client.images.get_registry_data(image)
        finally:
            client.close()
        assert live_image(k8s_cluster, ns) == V1  # rolled back
        release = ws.journal.releases("churn")[0]
        assert release.status == "rolled_back"
        assert [(s.step, s.status) for s in release.steps] == [
            ("tests", "done"), ("build", "done"), ("push", "done"), ("rollout", "done"),
            ("wait", "done"), ("verify", "failed"),
        ]  # fmt: skip
        entries = list(reversed(ws.journal.entries("churn")))
        assert [(e.action, e.outcome.value) for e in entries] == [
            ("rollout", "done"),
            ("rollback", "done"),
        ]
        assert entries[0].details.get("image") == image
    finally:
        ws.close()
