"""What the operator saw is what gets changed: conflicts on every mutating key, real cluster.

Each test opens the console on a real Deployment, opens an action's dialog,
changes the Deployment with kubectl while the dialog is open (another
operator), confirms, and checks that the console refused with a Conflict
message, that the Deployment keeps the other operator's change and that the
journal row says failed with the conflict. The last test checks the other
side: without a change meanwhile, the controller's own bookkeeping (status,
revision annotations) is no conflict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.domain import JournalEntry, Outcome
from tests.integration.test_console_k8s import _console
from tests.integration.test_console_k8s import _deployment as _manifest
from tests.tui.test_shell import screen_text, wait_for
from tui.app import MrcApp
from tui.operations import Operations
from tui.screens.confirm import RollbackConfirm, YesConfirm

pytestmark = [pytest.mark.integration, pytest.mark.k8s]

V2 = "registry.local/churn:v2"  # live when each test starts (revision 2)
V3 = "registry.local/churn:v3"  # the other operator's image


@pytest.fixture
def churn_v2(k8s_cluster: Any, k8s_namespace: str, tmp_path: Path) -> str:
    """A Deployment ``churn`` rolled out at v1 then v2 (both complete); its namespace."""
    manifest = tmp_path / "churn.json"
    manifest.write_text(json.dumps(_manifest("churn", "registry.local/churn:v1")))
    ns = k8s_namespace
    k8s_cluster.kubectl("-n", ns, "apply", "-f", str(manifest))
    k8s_cluster.kubectl("-n", ns, "rollout", "status", "deployment/churn", "--timeout=90s")
    k8s_cluster.kubectl("-n", ns, "set", "image", "deployment/churn", f"server={V2}")
    k8s_cluster.kubectl("-n", ns, "rollout", "status", "deployment/churn", "--timeout=90s")
    return ns


def _deployment(cluster: Any, namespace: str) -> dict[str, Any]:
    out = cluster.kubectl("-n", namespace, "get", "deployment/churn", "-o", "json").stdout
    return dict(json.loads(out))


def _image(dep: dict[str, Any]) -> str:
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def _notices(app: MrcApp) -> str:
    return "\n".join(str(n.message) for n in app._notifications)


def _finished(app: MrcApp) -> JournalEntry | None:
    entries = app.workspace.journal.entries(model="churn")
    if entries and entries[0].outcome is not Outcome.INTENT:
        return entries[0]
    return None


async def _refused(pilot: Any, app: MrcApp, action: str) -> JournalEntry:
    """Wait for the action's journal row to close; check it failed with the conflict."""
    try:
        await wait_for(pilot, lambda: _finished(app) is not None, tries=600)
        await wait_for(pilot, lambda: "changed since" in _notices(app), tries=200)
    except AssertionError:
        raise AssertionError(f"{_notices(app)}\n{screen_text(app)}") from None
    await app.workers.wait_for_complete()
    entry = _finished(app)
    assert entry is not None
    assert (entry.action, entry.outcome) == (action, Outcome.FAILED), entry
    assert "changed since" in entry.error and "nothing was applied" in entry.error
    return entry


async def _rollouts_row(pilot: Any, app: MrcApp) -> None:
    """Open the Rollouts screen and wait until the Deployment's row shows it complete."""
    await pilot.press("3")
    await pilot.pause()
    await wait_for(pilot, lambda: "complete" in screen_text(app), tries=400)


async def _confirm_dialog(pilot: Any, app: MrcApp, dialog: type = YesConfirm) -> None:
    await wait_for(pilot, lambda: isinstance(app.screen, dialog), tries=400)


async def _confirm(pilot: Any) -> None:
    """Confirm the open dialog with a journalled reason: ``r``, the reason, ``enter``."""
    await pilot.press("r", *"seen", "enter")


async def test_set_image_refuses_a_change_made_while_the_image_was_typed(  # type: ignore[no-untyped-def]
    k8s_cluster, churn_v2, tmp_path
):
    ns = churn_v2
    app = _console(tmp_path, k8s_cluster.kubeconfig, k8s_cluster.context, ns)
    async with app.run_test(size=(120, 30)) as pilot:
        await _rollouts_row(pilot, app)
        await pilot.press("s")
        await pilot.pause()
        k8s_cluster.kubectl("-n", ns, "set", "image", "deployment/churn", f"server={V3}")
        field = app.screen.query_one("#rollouts-image")
        field.value = ""  # type: ignore[attr-defined]
        await pilot.press(*"registry.local/churn:v9", "enter")
        await _confirm_dialog(pilot, app)
        await _confirm(pilot)
        entry = await _refused(pilot, app, "rollout")
    assert "image registry.local/churn:v2 -> registry.local/churn:v3" in entry.error
    assert _image(_deployment(k8s_cluster, ns)) == V3
    app.workspace.close()


async def test_restart_refuses_a_change_made_while_the_dialog_was_open(  # type: ignore[no-untyped-def]
    k8s_cluster, churn_v2, tmp_path
):
    ns = churn_v2
    app = _console(tmp_path, k8s_cluster.kubeconfig, k8s_cluster.context, ns)
    async with app.run_test(size=(120, 30)) as pilot:
        await _rollouts_row(pilot, app)
        await pilot.press("r")
        await _confirm_dialog(pilot, app)
        k8s_cluster.kubectl("-n", ns, "scale", "deployment/churn", "--replicas=3")
        await _confirm(pilot)
        await _refused(pilot, app, "restart")
    dep = _deployment(k8s_cluster, ns)
    assert dep["spec"]["replicas"] == 3
    template_notes = dep["spec"]["template"]["metadata"].get("annotations") or {}
    assert "kubectl.kubernetes.io/restartedAt" not in template_notes
    app.workspace.close()


async def test_pause_refuses_an_annotation_edited_while_the_dialog_was_open(  # type: ignore[no-untyped-def]
    k8s_cluster, churn_v2, tmp_path
):
    ns = churn_v2
    app = _console(tmp_path, k8s_cluster.kubeconfig, k8s_cluster.context, ns)
    async with app.run_test(size=(120, 30)) as pilot:
        await _rollouts_row(pilot, app)
        await pilot.press("p")
        await _confirm_dialog(pilot, app)
        k8s_cluster.kubectl("-n", ns, "annotate", "deployment/churn", "team.example/owner=bob")
        await _confirm(pilot)
        entry = await _refused(pilot, app, "pause")
    assert "spec or annotations changed" in entry.error
    dep = _deployment(k8s_cluster, ns)
    assert dep["metadata"]["annotations"]["team.example/owner"] == "bob"
    assert not dep["spec"].get("paused")
    app.workspace.close()


async def test_rollback_from_the_rollbacks_screen_refuses_a_change_made_meanwhile(  # type: ignore[no-untyped-def]
    k8s_cluster, churn_v2, tmp_path
):
    ns = churn_v2
    app = _console(tmp_path, k8s_cluster.kubeconfig, k8s_cluster.context, ns)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        await wait_for(pilot, lambda: "churn:v1" in screen_text(app), tries=400)
        await pilot.press("down", "enter")  # revision 1, below the live one
        await wait_for(pilot, lambda: isinstance(app.screen, RollbackConfirm), tries=400)
        k8s_cluster.kubectl("-n", ns, "set", "image", "deployment/churn", f"server={V3}")
        await _confirm(pilot)
        await _refused(pilot, app, "rollback")
    assert _image(_deployment(k8s_cluster, ns)) == V3
    app.workspace.close()


async def test_one_key_rollback_cold_refuses_a_change_made_meanwhile(  # type: ignore[no-untyped-def]
    k8s_cluster, churn_v2, tmp_path, monkeypatch
):
    """``u`` before any preview was kept warm: the dialog reads it, the confirm still checks."""
    monkeypatch.setattr(Operations, "warm_history", lambda self, model, target: None)
    ns = churn_v2
    app = _console(tmp_path, k8s_cluster.kubeconfig, k8s_cluster.context, ns)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert ("churn", "cluster") not in app._previews
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, RollbackConfirm), tries=400)
        k8s_cluster.kubectl("-n", ns, "rollout", "pause", "deployment/churn")
        await _confirm(pilot)
        await _refused(pilot, app, "rollback")
    dep = _deployment(k8s_cluster, ns)
    assert dep["spec"].get("paused") is True and _image(dep) == V2
    app.workspace.close()


async def test_without_a_change_meanwhile_the_set_image_goes_ahead(  # type: ignore[no-untyped-def]
    k8s_cluster, churn_v2, tmp_path
):
    ns = churn_v2
    app = _console(tmp_path, k8s_cluster.kubeconfig, k8s_cluster.context, ns)
    async with app.run_test(size=(120, 30)) as pilot:
        await _rollouts_row(pilot, app)
        await pilot.press("s")
        await pilot.pause()
        app.screen.query_one("#rollouts-image").value = ""  # type: ignore[attr-defined]
        await pilot.press(*V3, "enter")
        await _confirm_dialog(pilot, app)
        await _confirm(pilot)
        await wait_for(pilot, lambda: _finished(app) is not None, tries=1200)
        await app.workers.wait_for_complete()
    entry = _finished(app)
    assert entry is not None and (entry.action, entry.outcome) == ("rollout", Outcome.DONE), entry
    assert _image(_deployment(k8s_cluster, ns)) == V3
    app.workspace.close()
