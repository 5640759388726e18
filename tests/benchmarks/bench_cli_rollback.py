"""``mrc rollback MODEL --yes --no-wait`` end to end versus ``kubectl rollout undo``.

Both are measured as a user runs them: a new process each time, wall time
from start to exit, and both stop once the API server accepted the patch.
``mrc`` loads its configuration, opens the journal, reads the Deployment and
its ReplicaSets, writes the intent row, patches and records the outcome;
``kubectl`` reads and patches and exits. Goal: ratio <= 3 (recorded in
:mod:`tests.benchmarks.summary`). ``mrc rollback --yes`` (which also waits for
the rollout to complete, as ``kubectl rollout status`` would) is timed too and
printed for information. Each round rolls one Deployment back per tool
(alternating between two revisions), waiting after each for its rollout to
complete so every measurement starts on a settled cluster.

``mrc`` runs as an installed program does: with its bytecode cached (in a
cache directory of this run, so the working tree is not written to, and
warmed by one untimed run), since ``PYTHONDONTWRITEBYTECODE`` would make
every run compile every module again.

Run: ``.venv/bin/python -m tests.benchmarks.bench_cli_rollback`` (starts the
control plane through tests/services unless ``make services-up`` already did).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

from tests.benchmarks.summary import record
from tests.benchmarks.terminal import cached_bytecode_env

ROUNDS = 7
#: Rounds of the waited ``mrc rollback --yes`` (printed, not recorded).
WAITED_ROUNDS = 3
#: Goal for the ratio of ``mrc rollback --no-wait`` to ``kubectl rollout undo``.
GOAL = 3.0
ROOT = Path(__file__).resolve().parents[2]


def _manifest(ns: str, name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "server", "image": image}]},
            },
        },
    }


def _settle(cluster: Any, ns: str, name: str) -> None:
    cluster.kubectl("-n", ns, "rollout", "status", f"deployment/{name}", "--timeout=60s")


def _mrc_command() -> list[str]:
    script = Path(sys.executable).parent / "mrc"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tui.cli"]


def main() -> int:
    """Measure both tools on a control plane from tests/services; print the ratio; return 0."""
    from tests.services.fixtures import _Services

    services = _Services()
    ns = f"bench-{uuid.uuid4().hex[:8]}"
    cluster = None
    work = Path(tempfile.mkdtemp(prefix="mrc-bench-rollback-"))
    try:
        cluster = services.k8s()
        cluster.kubectl("create", "namespace", ns)
        for name in ("by-kubectl", "by-mrc"):
            for image in ("reg/churn:1", "reg/churn:2"):
                cluster.kubectl_apply(_manifest(ns, name, image))
                _settle(cluster, ns, name)
        repo = work / "repo"
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        config = work / "mrc.toml"
        config.write_text(
            textwrap.dedent(
                f"""\
                [[model]]
                name = "churn"
                repo = "{repo}"

                  [[model.target]]
                  name = "cluster"
                  kind = "kubernetes"
                  kubeconfig = "{cluster.kubeconfig}"
                  context = "{cluster.context}"
                  namespace = "{ns}"
                  deployment = "by-mrc"
                  container = "server"
                """
            )
        )
        env = cached_bytecode_env(
            work / "pycache", MRC_STATE_DIR=str(work / "state"), PYTHONPATH=str(ROOT)
        )
        waited = [*_mrc_command(), "--config", str(config), "rollback", "churn", "--yes"]
        mrc = [*waited, "--no-wait"]
        kubectl = [
            str(cluster.kubectl_path),
            f"--kubeconfig={cluster.kubeconfig}",
            "-n",
            ns,
            "rollout",
            "undo",
            "deployment/by-kubectl",
        ]
        subprocess.run(mrc, check=True, capture_output=True, env=env, cwd=ROOT)  # warm caches
        _settle(cluster, ns, "by-mrc")
        mrc_times, kubectl_times, waited_times = [], [], []
        for _ in range(WAITED_ROUNDS):
            started = time.perf_counter()
            subprocess.run(waited, check=True, capture_output=True, env=env, cwd=ROOT)
            waited_times.append(time.perf_counter() - started)
            _settle(cluster, ns, "by-mrc")
        for _ in range(ROUNDS):
            started = time.perf_counter()
            subprocess.run(kubectl, check=True, capture_output=True, env=env)
            kubectl_times.append(time.perf_counter() - started)
            _settle(cluster, ns, "by-kubectl")  # measure each on a quiet cluster

            started = time.perf_counter()
            done = subprocess.run(mrc, capture_output=True, text=True, env=env, cwd=ROOT)
            mrc_times.append(time.perf_counter() - started)
            if done.returncode != 0:
                raise RuntimeError(f"mrc rollback failed ({done.returncode}): {done.stderr}")
            _settle(cluster, ns, "by-mrc")
        startup = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([*_mrc_command(), "--version"], check=True, capture_output=True, env=env)
            startup.append(time.perf_counter() - started)
        imports = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", "from kubernetes import client, config; client.ApiClient"],
                check=True,
                env=env,
            )
            imports.append(time.perf_counter() - started)
        mrc_ms = statistics.median(mrc_times) * 1000
        kubectl_ms = statistics.median(kubectl_times) * 1000
        waited_ms = statistics.median(waited_times) * 1000
        print(
            f"rollback end to end: `mrc rollback churn --yes --no-wait` {mrc_ms:.0f} ms, "
            f"`kubectl rollout undo` {kubectl_ms:.0f} ms (median wall time of {ROUNDS}); "
            f"ratio {mrc_ms / kubectl_ms:.2f}x (goal <= {GOAL:g}x)"
        )
        print(
            f"  of which process start (`mrc --version`) {min(startup) * 1000:.0f} ms; mrc "
            "journals intent and outcome, kubectl does not; for reference, a process that "
            "imports the official kubernetes client (mrc does not) takes "
            f"{min(imports) * 1000:.0f} ms"
        )
        print(
            f"  `mrc rollback churn --yes` (waits for the rollout to complete) "
            f"{waited_ms:.0f} ms (median of {WAITED_ROUNDS})"
        )
        record("mrc rollback --no-wait (CLI)", "kubectl rollout undo", mrc_ms, kubectl_ms, GOAL)
    finally:
        if cluster is not None:
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
