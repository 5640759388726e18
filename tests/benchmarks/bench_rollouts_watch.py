"""Benchmark: the Rollouts screen following 1,000 Deployments on the real control plane.

1. Change latency: 1,000 Deployments in one namespace, one console target
   each, the Rollouts screen open (headless Pilot app, 120x40). One
   Deployment's image is patched; measured from the API server's answer to
   the PATCH (its acknowledgement) to the row showing the new image on the
   screen (state applied and the screen refreshed). Median of ROUNDS. The
   baseline is the 1 s goal itself: ratio = latency / 1 s, goal <= 1. The
   polling design it replaces showed a change after up to POLL_SECONDS (3 s)
   plus one round of 1,000 status reads, printed for comparison.
2. Idle CPU: the console (``mrc --config``) in a pty at 120x40 on the
   Rollouts screen with the same 1,000 targets, nothing changing, against a
   bare Textual app updating one label per second (bench_startup's
   LIVE_LABEL_APP) for the same window. Goal <= 3x its CPU seconds. "Nothing
   changing" needs a wait: the control plane's Deployment controller takes
   minutes to write the status of 1,000 new Deployments (about 7 changes per
   second on two cores), so the window starts once every Deployment is
   settled; the watch events seen during the window are printed.
3. Busy CPU (printed, no goal): the same console for the same window while
   BUSY_PATCHES Deployments a second get a new image (each one a few watch
   events as the controller rolls it out), against the same bare app.

Run: ``.venv/bin/python -m tests.benchmarks bench_rollouts_watch`` (starts the
control plane through tests/services unless ``make services-up`` already did;
about five minutes, most of it waiting for the controller to settle).
MRC_BENCH_SECONDS sets the idle window (default 30).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from core.cancel import CancelToken
from core.config import parse
from core.errors import MrcError
from core.journal import Journal
from core.services.workspace import Workspace
from core.targets import k8s_status as st
from core.targets import kubernetes as k8s
from core.targets.k8s_api import api_for, apps_path, closer
from tests.benchmarks.bench_k8s import _manifest
from tests.benchmarks.bench_startup import LIVE_LABEL_APP
from tests.benchmarks.summary import record
from tests.benchmarks.terminal import PtySession
from tests.support.repos import make_history_repo

DEPLOYMENTS = int(os.environ.get("MRC_BENCH_DEPLOYMENTS", "1000"))
ROUNDS = 7
SECONDS = float(os.environ.get("MRC_BENCH_SECONDS", "30"))
IDLE_GOAL = 3.0
#: Image patches a second during the busy window.
BUSY_PATCHES = 2.0
#: Seconds to wait for the Deployment controller to settle 1,000 new Deployments.
SETTLE_TIMEOUT = 600.0


def _config_text(repo: Path, cluster: Any, ns: str) -> str:
    parts = []
    for index in range(DEPLOYMENTS):
        name = f"m{index:04d}"
        parts.append(
            f'[[model]]\nname = "{name}"\nrepo = "{repo}"\n'
            f'  [[model.target]]\n  name = "bench"\n  kind = "kubernetes"\n'
            f'  kubeconfig = "{cluster.kubeconfig}"\n  context = "{cluster.context}"\n'
            f'  namespace = "{ns}"\n  deployment = "{name}"\n  container = "model"\n'
        )
    return "".join(parts)


def _create(api: Any, ns: str) -> None:
    started = time.perf_counter()

    def create(index: int) -> None:
        api.request(
            "POST",
            apps_path(ns, "deployments"),
            body=_manifest(f"m{index:04d}", f"reg/model:{index % 7}", 0),
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(create, range(DEPLOYMENTS)))
    print(f"created {DEPLOYMENTS} Deployments in {time.perf_counter() - started:.1f} s")


def _patch_image(api: Any, ns: str, name: str, image: str) -> float:
    """Patch the image; return perf_counter() when the API server acknowledged it."""
    api.request(
        "PATCH",
        apps_path(ns, "deployments", name),
        body={"spec": {"template": {"spec": {"containers": [{"name": "model", "image": image}]}}}},
        content_type=k8s.STRATEGIC_PATCH,
        timeout=10,
    )
    return time.perf_counter()


async def _latency(workspace: Workspace, api: Any, ns: str) -> tuple[list[float], float]:
    """Return the change latencies (s) and the time to the first full table (s)."""
    from tui.app import MrcApp
    from tui.screens.rollouts import RolloutsScreen

    app = MrcApp(workspace, animate=False)
    latencies = []
    async with app.run_test(size=(120, 40)) as pilot:
        started = time.perf_counter()
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, RolloutsScreen)
        deadline = started + 300
        while sum(1 for r in screen.rows.values() if r.state is not None) < DEPLOYMENTS:
            if time.perf_counter() > deadline:
                errors = {r.error for r in screen.rows.values() if r.state is None}
                raise RuntimeError(
                    f"{len(screen.rows)} rows after 300 s; errors: {sorted(errors)[:3]}"
                )
            await asyncio.sleep(0.05)
        await pilot.pause()
        first = time.perf_counter() - started
        for round_ in range(ROUNDS):
            name = f"m{(round_ * 137) % DEPLOYMENTS:04d}"
            key = f"{name}/bench"
            image = f"reg/model:bench-{round_}"
            acked = await asyncio.to_thread(_patch_image, api, ns, name, image)
            deadline = acked + 30
            while True:
                row = screen.rows[key]
                if row.state is not None and row.state.image == image:
                    break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{key} never showed {image}")
                await asyncio.sleep(0.002)
            await pilot.pause()  # the refresh that puts it on screen
            latencies.append(time.perf_counter() - acked)
            await asyncio.sleep(0.3)
    return latencies, first


def _settled(dep: dict[str, Any]) -> bool:
    """Return whether the Deployment controller has nothing left to write for ``dep``."""
    meta, status = dep.get("metadata") or {}, dep.get("status") or {}
    if int(status.get("observedGeneration", 0)) < int(meta.get("generation", 0)):
        return False
    progressing = st.find_condition(dep, "Progressing")
    return (
        st.evaluate(dep).done
        and progressing is not None
        and progressing.get("reason") == "NewReplicaSetAvailable"
        and st.find_condition(dep, "Available") is not None
    )


def _wait_settled(api: Any, ns: str) -> float:
    """Wait until every Deployment of ``ns`` is settled; return the seconds waited.

    Lists the Deployments, then follows their watch (listing again when the
    watch breaks, e.g. 410 Gone) until none is left unsettled. Raises
    RuntimeError after SETTLE_TIMEOUT.
    """
    started = time.perf_counter()
    path = apps_path(ns, "deployments")
    pending: set[str] = {""}
    rv = ""
    while pending:
        if time.perf_counter() - started > SETTLE_TIMEOUT:
            raise RuntimeError(f"{len(pending)} Deployments still changing after {SETTLE_TIMEOUT}s")
        try:
            if not rv:
                items, rv = api.list_all(path, timeout=30)
                pending = {dep["metadata"]["name"] for dep in items if not _settled(dep)}
            for event in api.watch(path, query=[("resourceVersion", rv)], timeout=30):
                obj = event.get("object") or {}
                meta = obj.get("metadata") or {}
                rv = str(meta.get("resourceVersion", rv))
                if event.get("type") == "DELETED" or _settled(obj):
                    pending.discard(meta.get("name", ""))
                elif event.get("type") in ("ADDED", "MODIFIED"):
                    pending.add(meta.get("name", ""))
                if not pending:
                    break
        except MrcError:
            rv = ""  # list again
    return time.perf_counter() - started


class _EventCount:
    """Counts the Deployment watch events of a namespace while running (a thread)."""

    def __init__(self, api: Any, ns: str) -> None:
        self.count = 0
        self._cancel = CancelToken()
        _, rv = api.list_all(apps_path(ns, "deployments"), timeout=30, query=[("limit", 1)])
        self._thread = threading.Thread(
            target=self._run, args=(api, ns, rv), name="bench-events", daemon=True
        )
        self._thread.start()

    def _run(self, api: Any, ns: str, rv: str) -> None:
        current: list[Any] = []
        self._cancel.on_cancel(closer(current))
        while not self._cancel.cancelled:
            query = [("resourceVersion", rv), ("allowWatchBookmarks", "true")]
            try:
                for event in api.watch(
                    apps_path(ns, "deployments"),
                    query=query,
                    timeout=30,
                    cancel=self._cancel,
                    current=current,
                ):
                    obj = event.get("object") or {}
                    rv = str((obj.get("metadata") or {}).get("resourceVersion", rv))
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self.count += 1
            except Exception:
                if self._cancel.wait(1):
                    return

    def stop(self) -> int:
        """Stop counting; return the events seen."""
        self._cancel.cancel()
        self._thread.join(timeout=10)
        return self.count


def _poll_round(workspace: Workspace) -> float:
    """Return the seconds one polling round (1,000 status reads, 16 at a time) takes."""
    pairs = [(m.name, t.name) for m in workspace.config.models for t in m.targets]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda p: workspace.target(*p).status(), pairs))
    return time.perf_counter() - started


def _idle_cpu(config: Path, state: Path, api: Any, ns: str) -> dict[str, float]:
    """Return CPU seconds of the live-label app and of the console over windows of SECONDS.

    Keys: ``label``; ``idle`` and ``idle_events`` (the console with every
    Deployment settled, and the watch events seen meanwhile); ``busy`` and
    ``busy_events`` (the console while BUSY_PATCHES images a second change).
    """
    script = state / "live.py"
    script.write_text(LIVE_LABEL_APP)
    label = PtySession([sys.executable, str(script)])
    try:
        label.wait_for(b"live-app-ready")
        label.read_for(1)
        before = label.cpu_seconds()
        label.read_for(SECONDS)
        label_cpu = label.cpu_seconds() - before
    finally:
        label.close()
    result = {"label": label_cpu}
    env = {**os.environ, "XDG_STATE_HOME": str(state / "xdg")}
    console = PtySession([sys.executable, "-m", "tui.cli", "--config", str(config)], env=env)
    try:
        console.wait_for(b"Commits", timeout=120)
        console.type("3")
        console.wait_for(b"m0000", timeout=120)
        console.read_for(10)  # the first table and the initial list settle
        events = _EventCount(api, ns)
        before = console.cpu_seconds()
        console.read_for(SECONDS)
        result["idle"] = console.cpu_seconds() - before
        result["idle_events"] = events.stop()
        events = _EventCount(api, ns)
        stop = threading.Event()
        patcher = threading.Thread(target=_patch_steadily, args=(api, ns, stop), daemon=True)
        before = console.cpu_seconds()
        patcher.start()
        console.read_for(SECONDS)
        result["busy"] = console.cpu_seconds() - before
        stop.set()
        patcher.join(timeout=30)
        result["busy_events"] = events.stop()
    finally:
        console.close()
    return result


def _patch_steadily(api: Any, ns: str, stop: threading.Event) -> None:
    """Give BUSY_PATCHES Deployments a second a new image until ``stop`` is set."""
    index = 0
    while not stop.wait(1 / BUSY_PATCHES):
        index += 1
        name = f"m{(index * 389) % DEPLOYMENTS:04d}"
        _patch_image(api, ns, name, f"reg/model:busy-{index}")


def main() -> None:
    """Run both measures on a control plane from tests/services; print and record them."""
    from tests.services.fixtures import _Services

    services = _Services()
    ns = f"bench-watch-{uuid.uuid4().hex[:8]}"
    cluster = None
    try:
        cluster = services.k8s()
        cluster.kubectl("create", "namespace", ns)
        api = api_for(cluster.context, cluster.kubeconfig)
        _create(api, ns)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            repo = make_history_repo(root / "repo", commits=3)
            config_path = root / "mrc.toml"
            config_path.write_text(_config_text(repo.path, cluster, ns))
            (root / "state").mkdir()
            workspace = Workspace(
                parse(config_path.read_text(), source=config_path),
                journal=Journal(root / "state" / "journal.sqlite3"),
                state_dir=root / "state",
            )
            latencies, first = asyncio.run(_latency(workspace, api, ns))
            poll = _poll_round(workspace)
            workspace.close()
            settle = _wait_settled(api, ns)
            print(f"waited {settle:.0f} s for the Deployment controller to settle")
            cpu = _idle_cpu(config_path, root, api, ns)
    finally:
        if cluster is not None:
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        services.close()
    median = statistics.median(latencies)
    print(f"rollouts screen watching {DEPLOYMENTS} Deployments (120x40, headless)")
    print(f"  open -> {DEPLOYMENTS} states on screen : {first * 1000:8.1f} ms")
    print(
        f"  API ack -> row on screen     : {median * 1000:8.1f} ms median of {ROUNDS} "
        f"(min {min(latencies) * 1000:.1f}, max {max(latencies) * 1000:.1f}); goal <= 1000 ms"
    )
    print(
        f"  polling it replaces          : up to 3000 ms wait + {poll * 1000:.0f} ms "
        f"per round of {DEPLOYMENTS} status reads"
    )
    scale = 60.0 / SECONDS
    label_cpu = max(cpu["label"], 1e-3)
    print(
        f"  idle CPU over {SECONDS:.0f}s (per minute): console {cpu['idle'] * scale:.2f} s "
        f"({cpu['idle_events']:.0f} Deployment events meanwhile), "
    )
    print(
        f"    bare app with a label every 1s {cpu['label'] * scale:.2f} s; ratio "
        f"{cpu['idle'] / label_cpu:.2f}x (goal <= {IDLE_GOAL:g}x)"
    )
    print(
        f"  busy CPU ({BUSY_PATCHES:g} new images/s, {cpu['busy_events']:.0f} Deployment events):"
        f" console {cpu['busy'] * scale:.2f} s per minute; ratio {cpu['busy'] / label_cpu:.2f}x"
    )
    record("Rollouts change latency, 1,000 Deployments", "1 s goal", median, 1.0, 1.0)
    record(
        "Rollouts idle CPU, 1,000 watched targets",
        "label every 1s",
        cpu["idle"],
        label_cpu,
        IDLE_GOAL,
    )


if __name__ == "__main__":
    main()
