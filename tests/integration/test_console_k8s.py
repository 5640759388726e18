"""The console against the real Kubernetes control plane.

One-key rollback from the console changes the real Deployment and is
journalled; a stopped API server turns the row "disconnected" while the
console stays responsive, and it recovers when the server is back; the
restricted user sees mutating keys disabled and a clear error when forcing one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import parse
from core.domain import Outcome
from core.journal import Journal
from core.services.workspace import Workspace
from tests.support.repos import make_history_repo
from tests.tui.test_shell import screen_text, wait_for
from tui.app import MrcApp
from tui.screens.confirm import RollbackConfirm

pytestmark = [pytest.mark.integration, pytest.mark.k8s]


def _deployment(name: str, image: str) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "server", "image": image}]},
            },
        },
    }


def _image(cluster, namespace: str, name: str) -> str:  # type: ignore[no-untyped-def]
    out = cluster.kubectl("-n", namespace, "get", f"deployment/{name}", "-o", "json").stdout
    return str(json.loads(out)["spec"]["template"]["spec"]["containers"][0]["image"])


@pytest.fixture
def two_revisions(k8s_cluster, k8s_namespace, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    """A Deployment ``churn`` rolled out at v1 then v2 (both complete)."""
    manifest = tmp_path / "churn.json"
    manifest.write_text(json.dumps(_deployment("churn", "registry.local/churn:v1")))
    ns = k8s_namespace
    k8s_cluster.kubectl("-n", ns, "apply", "-f", str(manifest))
    k8s_cluster.kubectl("-n", ns, "rollout", "status", "deployment/churn", "--timeout=90s")
    k8s_cluster.kubectl(
        "-n", ns, "set", "image", "deployment/churn", "server=registry.local/churn:v2"
    )
    k8s_cluster.kubectl("-n", ns, "rollout", "status", "deployment/churn", "--timeout=90s")
    return ns


def _console(tmp_path: Path, kubeconfig: Path, context: str, namespace: str) -> MrcApp:
    repo = make_history_repo(tmp_path / "repo", commits=3)
    config = parse(
        f"""
[[model]]
name = "churn"
repo = "{repo.path}"

  [[model.target]]
  name = "cluster"
  kind = "kubernetes"
  kubeconfig = "{kubeconfig}"
  context = "{context}"
  namespace = "{namespace}"
  deployment = "churn"
  container = "server"
  timeout = "3s"
""",
        source=tmp_path / "mrc.toml",
    )
    state = tmp_path / "state"
    state.mkdir()
    workspace = Workspace(config, journal=Journal(state / "journal.sqlite3"), state_dir=state)
    return MrcApp(workspace, animate=False)


async def test_one_key_rollback_changes_the_deployment(k8s_cluster, two_revisions, tmp_path):  # type: ignore[no-untyped-def]
    app = _console(tmp_path, k8s_cluster.kubeconfig, k8s_cluster.context, two_revisions)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: ("churn", "cluster") in app._previews, tries=400)
        await pilot.press("u")
        await pilot.pause()
        assert isinstance(app.screen, RollbackConfirm)
        summary = screen_text(app)
        assert "registry.local/churn:v2" in summary and "registry.local/churn:v1" in summary
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(app.workspace.journal.entries(model="churn")), tries=400)
        await app.workers.wait_for_complete()
    assert _image(k8s_cluster, two_revisions, "churn") == "registry.local/churn:v1"
    [entry] = app.workspace.journal.entries(model="churn")
    assert (entry.action, entry.outcome, entry.from_revision) == ("rollback", Outcome.DONE, "2")
    app.workspace.close()


async def test_a_change_shows_from_the_watch_without_waiting_for_a_poll(  # type: ignore[no-untyped-def]
    k8s_cluster, two_revisions, tmp_path, monkeypatch
):
    from tui.screens.rollouts import RolloutsScreen

    monkeypatch.setattr(RolloutsScreen, "POLL_SECONDS", 3600.0)  # only the watch can update
    app = _console(tmp_path, k8s_cluster.kubeconfig, k8s_cluster.context, two_revisions)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: "churn:v2" in screen_text(app), tries=400)
        k8s_cluster.kubectl(
            "-n",
            two_revisions,
            "set",
            "image",
            "deployment/churn",
            "server=registry.local/churn:v3",
        )
        try:
            await wait_for(pilot, lambda: "churn:v3" in screen_text(app), tries=400)
        except AssertionError:
            raise AssertionError(screen_text(app)) from None
        assert "polling" not in screen_text(app)
    app.workspace.close()


async def test_stopped_api_server_shows_disconnected_and_recovers(  # type: ignore[no-untyped-def]
    k8s_cluster, two_revisions, tmp_path
):
    app = _console(tmp_path, k8s_cluster.kubeconfig, k8s_cluster.context, two_revisions)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: "complete" in screen_text(app), tries=400)
        k8s_cluster.stop_apiserver()
        try:
            try:
                await wait_for(pilot, lambda: "disconnected" in screen_text(app), tries=600)
            except AssertionError:
                raise AssertionError(screen_text(app)) from None
            await pilot.press("1")  # still answering keys while the backend is down
            await pilot.pause()
            assert type(app.screen).__name__ == "CommitsScreen"
            await pilot.press("3")
            await pilot.pause()
        finally:
            k8s_cluster.start_apiserver()
        await wait_for(pilot, lambda: "complete" in screen_text(app), tries=900)
    app.workspace.close()


async def test_restricted_user_sees_disabled_actions_and_a_clear_error(  # type: ignore[no-untyped-def]
    k8s_cluster, two_revisions, tmp_path
):
    app = _console(
        tmp_path, k8s_cluster.restricted_kubeconfig, k8s_cluster.restricted_context, two_revisions
    )
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: "complete" in screen_text(app), tries=400)
        await wait_for(
            pilot, lambda: bool(app.permission_reason("churn", "cluster", "restart")), tries=400
        )
        assert app.screen.check_action("restart", ()) is None  # shown disabled
        assert "patch" in app.permission_reason("churn", "cluster", "rollback").lower()
        assert app.check_action("rollback_previous", ()) is None  # `u` is disabled too
        app.run_rollback("churn", "cluster", 1, "forced")  # what the key would have done
        await wait_for(
            pilot,
            lambda: any(
                e.outcome is Outcome.FAILED for e in app.workspace.journal.entries(model="churn")
            ),
            tries=400,
        )
        await app.workers.wait_for_complete()
    [entry] = app.workspace.journal.entries(model="churn")
    assert "forbidden" in entry.error.lower() or "denied" in entry.error.lower()
    assert _image(k8s_cluster, two_revisions, "churn") == "registry.local/churn:v2"
    app.workspace.close()
