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
   LIVE_LABEL_APP) for the same window. Goal <= 3x its CPU seconds.

Run: ``.venv/bin/python -m tests.benchmarks bench_rollouts_watch`` (starts the
control plane through tests/services unless ``make services-up`` already did).
MRC_BENCH_SECONDS sets the idle window (default 30).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from core.config import parse
from core.journal import Journal
from core.services.workspace import Workspace
from core.targets import kubernetes as k8s
from core.targets.k8s_api import api_for, apps_path
from tests.benchmarks.bench_k8s import _manifest
from tests.benchmarks.bench_startup import LIVE_LABEL_APP
from tests.benchmarks.summary import record
from tests.benchmarks.terminal import PtySession
from tests.support.repos import make_history_repo

DEPLOYMENTS = int(os.environ.get("MRC_BENCH_DEPLOYMENTS", "1000"))
ROUNDS = 7
SECONDS = float(os.environ.get("MRC_BENCH_SECONDS", "30"))
IDLE_GOAL = 3.0


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


def _poll_round(workspace: Workspace) -> float:
    """Return the seconds one polling round (1,000 status reads, 16 at a time) takes."""
    pairs = [(m.name, t.name) for m in workspace.config.models for t in m.targets]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda p: workspace.target(*p).status(), pairs))
    return time.perf_counter() - started


def _idle_cpu(config: Path, state: Path) -> tuple[float, float]:
    """Return CPU seconds of the live-label app and of the console over the same window."""
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
    env = {**os.environ, "XDG_STATE_HOME": str(state / "xdg")}
    console = PtySession([sys.executable, "-m", "tui.cli", "--config", str(config)], env=env)
    try:
        console.wait_for(b"Commits", timeout=120)
        console.type("3")
        console.wait_for(b"m0000", timeout=120)
        console.read_for(10)  # the first table and the initial list settle
        before = console.cpu_seconds()
        console.read_for(SECONDS)
        console_cpu = console.cpu_seconds() - before
    finally:
        console.close()
    return label_cpu, console_cpu


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
            label_cpu, console_cpu = _idle_cpu(config_path, root)
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
    print(f"  idle CPU over {SECONDS:.0f}s (per minute): console {console_cpu * scale:.2f} s, ")
    print(
        f"    bare app with a label every 1s {label_cpu * scale:.2f} s; ratio "
        f"{console_cpu / max(label_cpu, 1e-3):.2f}x (goal <= {IDLE_GOAL:g}x)"
    )
    record("Rollouts change latency, 1,000 Deployments", "1 s goal", median, 1.0, 1.0)
    record(
        "Rollouts idle CPU, 1,000 watched targets",
        "label every 1s",
        console_cpu,
        max(label_cpu, 1e-3),
        IDLE_GOAL,
    )


if __name__ == "__main__":
    main()
