"""Benchmark: the Rollouts screen with 1,000 targets.

Prints (never asserts):

* time from opening the screen to the full table (1,000 rows drawn);
* time to apply a batch of 50 changed states (new revision/image on 50 rows)
  with cell updates, against rebuilding the whole table (clear + 1,000 rows)
  measured in the same run, and their ratio.

The targets are in-memory stand-ins so the numbers are the console's own
(the Kubernetes listing itself is measured by bench_k8s).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from core.config import parse
from core.journal import Journal
from core.services.workspace import Workspace
from tests.support.repos import make_history_repo
from tests.support.targets import FIXED_NOW, ScriptedTarget, scripted_history
from tui.app import MrcApp

TARGETS = 1000
BATCH = 50


def _workspace(root: Path) -> tuple[Workspace, list[ScriptedTarget]]:
    repo = make_history_repo(root / "repo", commits=4)
    lines = []
    for i in range(TARGETS):
        lines.append(f'[[model]]\nname = "model-{i:04d}"\nrepo = "{repo.path}"\n')
        lines.append(
            f'  [[model.target]]\n  name = "prod"\n  kind = "kubernetes"\n'
            f'  deployment = "model-{i:04d}"\n'
        )
    config = parse("".join(lines), source=root / "mrc.toml")
    workspace = Workspace(config, journal=Journal(root / "j.sqlite3"), state_dir=root)
    targets = []
    for i in range(TARGETS):
        target = ScriptedTarget(
            f"model-{i:04d}", "prod", revisions=scripted_history("m", repo.shas)
        )
        workspace._targets[(target.model, "prod")] = target  # type: ignore[assignment]
        targets.append(target)
    return workspace, targets


async def _run(workspace: Workspace, targets: list[ScriptedTarget]) -> dict[str, float]:
    from tui.screens.rollouts import RolloutsScreen, Row

    app = MrcApp(workspace, clock=lambda: FIXED_NOW, animate=False)
    result: dict[str, float] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        start = time.perf_counter()
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, RolloutsScreen)
        while screen.table.row_count < TARGETS:
            await asyncio.sleep(0.01)
        await pilot.pause()
        result["first_full_table"] = time.perf_counter() - start

        rows = [
            Row(t.model, t.name, "kubernetes", t.status()) for t in targets
        ]  # the states on screen
        updates, rebuilds = [], []
        for round_ in range(5):
            changed = list(rows)
            for i in range(round_ * BATCH, (round_ + 1) * BATCH):
                state = rows[i].state
                assert state is not None
                changed[i] = replace(
                    rows[i],
                    state=replace(state, revision=10 + round_, image=f"repo/m:{round_}"),
                )
            t0 = time.perf_counter()
            screen.apply_rows(changed[round_ * BATCH : (round_ + 1) * BATCH])
            await pilot.pause()
            updates.append(time.perf_counter() - t0)
            rows = changed

            t0 = time.perf_counter()
            table = screen.table
            table.clear()
            screen.rows.clear()
            screen.apply_rows(rows)
            await pilot.pause()
            rebuilds.append(time.perf_counter() - t0)
        result["batch_update"] = statistics.median(updates)
        result["full_rebuild"] = statistics.median(rebuilds)
    return result


def main() -> None:
    """Run the benchmark and print its numbers."""
    with tempfile.TemporaryDirectory() as tmp:
        workspace, targets = _workspace(Path(tmp))
        numbers = asyncio.run(_run(workspace, targets))
    print(f"rollouts screen with {TARGETS} targets (120x40, headless)")
    print(f"  open -> full table          : {numbers['first_full_table'] * 1000:8.1f} ms")
    print(f"  apply {BATCH} changed states   : {numbers['batch_update'] * 1000:8.1f} ms (median)")
    print(f"  full rebuild (baseline)     : {numbers['full_rebuild'] * 1000:8.1f} ms (median)")
    print(
        f"  ratio batch / rebuild       : {numbers['batch_update'] / numbers['full_rebuild']:.2f}x"
    )


if __name__ == "__main__":
    main()
