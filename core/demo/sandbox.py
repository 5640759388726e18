"""The demo sandbox: a model repository with a story, its server, traffic and a config.

:func:`build_sandbox` creates, in a couple of seconds and without network::

    <root>/
      churn-model/        git repository of a churn model (real commits, fixed clock)
      mrc.toml            local target + scrape metrics pointing at the stable port
      state/              MRC_STATE_DIR: journal, local target state, test output,
                          traffic-recent.jsonl (the last minute of requests and outcomes)
      shift               (absent) create it to shift the traffic's data
      sandbox.json        roles of the commits, the port, for tests and re-use

The repository's history, oldest first (authors and dates are fixed, so the
commit shas are the same on every machine for the same ``fixed_time``):

=========  ============  ===================================================
role       tag           what it is
=========  ============  ===================================================
v1         v1.0.0        initial logistic model (tenure, charges)
ci                       CI workflow and requirements
v2         v1.1.0        + support calls: better
docs                     README: serving API and metrics
v3         v1.2.0        + data usage, retuned: best; the live release
shift      v1.3.0        new scaler: tests pass, predictions shift in serving
failing                  experiment without tenure: quality tests fail
=========  ============  ===================================================

The *shift* release refits the input scaler on a different cohort but keeps
the weights (and the training reference histograms) of v1.2.0, the classic
training/serving skew: offline accuracy even looks fine, while the live
prediction distribution moves far from the training reference.

Every commit carries ``train.py``, the model's retraining script, and the
config's ``[model.retrain]`` runs it (executor ``local``) on the traffic's
recent requests (``state/traffic-recent.jsonl``): after a data shift (``S``)
it refits the weights on the shifted customers and writes a new training
reference, so releasing the retrained commit brings drift back down.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core import procs
from core.demo import churn
from core.errors import MrcError

FILES = Path(__file__).resolve().parent / "files"
MODEL = "churn"
TARGET = "local"
#: Commit dates end here unless ``fixed_time`` is given (keeps shas reproducible).
DEFAULT_END = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)

AUTHORS = {
    "maya": ("Maya Chen", "maya.chen@example.com"),
    "tom": ("Tom Okafor", "tom.okafor@example.com"),
    "priya": ("Priya Nair", "priya.nair@example.com"),
}

#: Requests the start-up burst sends beyond the drift window's minimum (errors, rounding).
BURST_MARGIN = 20
#: Seconds the start-up burst may take before it is given up.
BURST_TIMEOUT = 60.0

#: The shifting release's scaler divides by a much smaller spread than training did: the
#: scores are pushed towards 0 and 1 (same ranking, similar accuracy, a very different
#: distribution).
Q2_SPREAD = 0.4

CI_WORKFLOW = """\
name: tests
on: [push, pull_request]
jobs:
  quality:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - run: pip install -r requirements.txt pytest
      - run: python -m pytest -q
"""

PYPROJECT = """\
[project]
name = "churn-model"
requires-python = ">=3.11"
dependencies = ["prometheus-client>=0.20"]

[tool.pytest.ini_options]
pythonpath = ["."]
testpaths = ["tests"]
"""

README = """\
# churn-model

Predicts whether a customer will cancel their contract in the next 30 days.

* `model/`: logistic regression (`weights.json`) on standardised inputs (`scaler.json`)
* `tests/`: quality gate on the held-out customers in `data/holdout.csv`
* `reference/histograms.json`: prediction and input distributions on the training set,
  the reference for drift monitoring
* `server.py`: HTTP model server (`python server.py --port 8080`)
"""

README_API = """
## Serving API

| route | what |
|---|---|
| `POST /predict` | JSON features -> `{"score": p, "churn": bool}` |
| `GET /healthz` | 200 once the model is loaded |
| `GET /version` | model version and commit |
| `GET /metrics` | Prometheus metrics |

Metrics: `model_prediction_score` and `model_feature_value{feature=...}` histograms
(drift), `model_latency_seconds`, `model_requests_total`, `model_errors_total`.
"""


class SandboxError(MrcError):
    """The sandbox cannot be built where asked (e.g. a non-empty foreign directory)."""


@dataclass
class Background:
    """What :meth:`Sandbox.start_background` started; :meth:`stop` ends it (idempotent).

    ``ready`` is set once the server is live and the traffic runs (or the
    start failed: ``error`` then holds the exception).
    """

    target: Any
    traffic: subprocess.Popen[bytes] | None = None
    #: The process that sends the first window's burst when asked (see ``_fill_first_window``).
    burster: subprocess.Popen[bytes] | None = None
    owns_target: bool = False
    ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    _cancel: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until started; return False on timeout, raise the start's error if it failed."""
        if not self.ready.wait(timeout):
            return False
        if self.error is not None:
            raise self.error
        return True

    def stop(self) -> None:
        """Cancel a start still running (a burst in flight too); stop the traffic and servers."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        procs.unregister_cleanup(self.stop)
        if self._cancel is not None:
            self._cancel.cancel()
        with self._lock:
            traffic, burster = self.traffic, self.burster
        if burster is not None and burster.poll() is None:
            burster.kill()  # a burst in flight ends now: the start does not wait for it
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(30)
        if traffic is not None:
            procs.kill_group(traffic.pid, traffic, grace=1.0)
        if burster is not None:
            _end(burster)
        with contextlib.suppress(Exception):
            if self.owns_target:
                self.target.close()
            else:
                self.target.stop_all()


@dataclass
class Sandbox:
    """A built demo sandbox: its paths and the commit of every role in the story."""

    root: Path
    repo: Path
    config: Path
    state_dir: Path
    shift_file: Path
    port: int
    python: str
    commits: dict[str, str]
    tags: dict[str, str]
    seed: int = 7

    @property
    def good(self) -> tuple[str, ...]:
        """The releases that improve the model, oldest first."""
        return (self.commits["v1"], self.commits["v2"], self.commits["v3"])

    @property
    def shifting(self) -> str:
        """The release that passes its tests but shifts the predictions in production."""
        return self.commits["shift"]

    @property
    def failing(self) -> str:
        """The experiment whose quality tests fail."""
        return self.commits["failing"]

    @property
    def recent_inputs(self) -> Path:
        """The traffic's recent requests and outcomes (what ``train.py`` retrains on)."""
        return self.state_dir / "traffic-recent.jsonl"

    @property
    def url(self) -> str:
        """The stable base URL of the model server."""
        return f"http://127.0.0.1:{self.port}"

    def set_data_shift(self, on: bool) -> None:
        """Switch the traffic's data shift on or off (takes effect within a second)."""
        if on:
            self.shift_file.touch()
        else:
            self.shift_file.unlink(missing_ok=True)

    def start_background(
        self,
        workspace: Any = None,
        *,
        rate: float = 20.0,
        history: tuple[str, ...] = ("v2", "v3"),
        traffic: bool = True,
        wait: bool = True,
    ) -> Background:
        """Serve the live release on the local target and start the traffic generator.

        The traffic starts first (it waits for a server to answer) and, with
        a ``workspace``, so does the collection of its metrics source: the
        drift chart has a history from the first release on, long before the
        operator releases anything. Once the live release serves, the drift
        window is filled at once (a scrape, a burst of the configured
        ``min_samples`` requests, a scrape: :meth:`_fill_first_window`), so the
        first drift score needs no wait for the steady traffic.
        With a ``workspace`` (:class:`core.services.workspace.Workspace` of this
        sandbox's config) its target is used and the rollouts are journalled,
        so the console sees them; otherwise a target is opened here. On a
        fresh state dir the releases of ``history`` are rolled out in order
        (the last one stays live); on a re-used sandbox the recorded live
        revision is started again. Returns the handle that stops both.
        With ``wait`` False this happens in a thread and the handle returns at
        once (``Background.wait``/``ready``/``error`` tell how it went), so a
        console can draw its first frame meanwhile. Raises (with ``wait``) the
        target's errors: OperationFailed, Conflict...
        """
        from core.domain import Artifact

        owns = workspace is None
        if workspace is not None:
            target = workspace.target(MODEL, TARGET)
        else:
            from core.config import load_file
            from core.targets.local import LocalTarget

            config = load_file(self.config)
            model = config.models[0]
            target = LocalTarget.from_config(model, model.target(TARGET), self.state_dir)  # type: ignore[arg-type]
        from core.cancel import CancelToken

        background = Background(target, owns_target=owns, _cancel=CancelToken())
        procs.register_cleanup(background.stop)

        def run() -> None:
            cancel = background._cancel
            try:
                source = workspace.metrics(MODEL) if workspace is not None else None
                burst = 0 if source is None else workspace.model(MODEL).drift.min_samples
                if traffic:
                    with background._lock:
                        if not background._stopped:
                            background.traffic = self._start_traffic(rate)
                            if burst:
                                background.burster = self._start_burster(burst + BURST_MARGIN)
                if source is not None:
                    source.start()
                if target.history():
                    for _ in target.start(cancel=cancel):
                        pass
                else:
                    for role in history:
                        artifact = Artifact(commit=self.commits[role])
                        reason = f"release {self.tags.get(role, role)}"
                        steps: Iterator[Any]
                        if workspace is not None:
                            steps = workspace.run_rollout(
                                target, artifact, reason=reason, cancel=cancel
                            )
                        else:
                            steps = target.rollout(artifact, reason=reason, cancel=cancel)
                        for _ in steps:
                            pass
                if source is not None and background.burster is not None:
                    self._fill_first_window(source, background.burster)
            except BaseException as exc:
                background.error = exc
            finally:
                background.ready.set()

        if wait:
            run()
            if background.error is not None:
                background.stop()
                raise background.error
        else:
            background._thread = threading.Thread(target=run, name="demo-start", daemon=True)
            background._thread.start()
        return background

    def _fill_first_window(self, source: Any, burster: subprocess.Popen[bytes]) -> None:
        """Give the drift window its minimum of samples now, not after seconds of traffic.

        ``source`` counts samples from its first scrape on: it scrapes the live
        release once, ``burster`` (:meth:`_start_burster`, started while the
        releases rolled out) then sends its burst, and a second scrape sees
        them all. The requests come from that process, not from a thread of
        the console, which is busy drawing its first screens meanwhile. When
        the first scrape fails nothing is sent (the steady traffic and the
        background collection carry on as usual). Never raises
        BackendUnavailable.
        """
        from core.errors import BackendUnavailable

        try:
            source.scrape_once()
        except BackendUnavailable:
            _end(burster)  # recorded in the source's health; the background collection retries
            return
        try:
            burster.communicate(b"go\n", timeout=BURST_TIMEOUT)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            _end(burster)
        with contextlib.suppress(BackendUnavailable):
            source.scrape_once()

    def _start_burster(self, count: int) -> subprocess.Popen[bytes]:
        """Start the process that sends ``count`` requests once a line reaches its stdin.

        It exits without sending anything when its stdin closes first, e.g.
        because the console is gone. Raises OSError when it cannot start.
        """
        argv = self._traffic_argv("--burst", str(count), "--seed", str(self.seed + 2))
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self._traffic_env(),
        )

    def _start_traffic(self, rate: float) -> subprocess.Popen[bytes]:
        """Start the steady traffic generator behind a guard; raises OSError when it cannot."""
        argv = self._traffic_argv("--rate", f"{rate:g}", "--seed", str(self.seed))
        argv += ["--recent", str(self.recent_inputs)]
        env, log = self._traffic_env(), self.root / "traffic.log"
        return procs.spawn_guarded(argv, tag=str(self.state_dir), env=env, log_path=log)

    def _traffic_argv(self, *options: str) -> list[str]:
        """Return the command line of :mod:`core.demo.traffic` on this sandbox with ``options``."""
        module = [self.python, "-m", "core.demo.traffic"]
        return [*module, "--url", self.url, "--shift-file", str(self.shift_file), *options]

    def _traffic_env(self) -> dict[str, str]:
        """Return the environment of the traffic processes: the default child one, and us."""
        root = str(Path(churn.__file__).resolve().parents[2])
        pythonpath = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        return procs.child_environment(extra={"PYTHONPATH": pythonpath})


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Stop ``proc`` (closing its pipes, then killing it when still running) and reap it."""
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


# --------------------------------------------------------------------------
# Building


def build_sandbox(
    path: Path | str | None = None, *, seed: int = 7, fixed_time: datetime | None = None
) -> Sandbox:
    """Create the demo sandbox in ``path`` (a new temporary dir when None); return it.

    A directory that already holds a sandbox is re-used (its repository and
    state are kept; the config is rewritten, with a new port if the old one
    is taken). ``fixed_time`` anchors the commit dates (the last commit one
    hour before it); without it a constant date is used, so the shas are
    always the same. Raises SandboxError for a non-empty directory that is
    not a sandbox, or when git fails.
    """
    root = Path(path) if path is not None else Path(tempfile.mkdtemp(prefix="mrc-demo-"))
    root = root.expanduser().resolve()
    marker = root / "sandbox.json"
    if marker.is_file():
        return _reuse(root, marker)
    if root.exists() and any(root.iterdir()):
        raise SandboxError(f"{root} is not empty and holds no demo sandbox")
    root.mkdir(parents=True, exist_ok=True)
    repo = root / "churn-model"
    end = fixed_time or DEFAULT_END
    try:
        commits, tags = _make_repo(repo, seed, end)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(repo, ignore_errors=True)
        stderr = (
            exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        )
        raise SandboxError(f"git failed: {stderr or exc}") from exc
    sandbox = Sandbox(
        root=root,
        repo=repo,
        config=root / "mrc.toml",
        state_dir=root / "state",
        shift_file=root / "shift",
        port=churn_port(),
        python=sys.executable,
        commits=commits,
        tags=tags,
        seed=seed,
    )
    sandbox.state_dir.mkdir(mode=0o700, exist_ok=True)
    _write_config(sandbox)
    return sandbox


def churn_port() -> int:
    """Return a free port for the model server's stable address."""
    from core.targets.local import free_port

    return free_port()


def _reuse(root: Path, marker: Path) -> Sandbox:
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        sandbox = Sandbox(
            root=root,
            repo=root / "churn-model",
            config=root / "mrc.toml",
            state_dir=root / "state",
            shift_file=root / "shift",
            port=int(data["port"]),
            python=sys.executable,
            commits=dict(data["commits"]),
            tags=dict(data["tags"]),
            seed=int(data.get("seed", 7)),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SandboxError(f"{marker} is unreadable: {exc}") from exc
    if not _port_free(sandbox.port):
        sandbox.port = churn_port()
    sandbox.state_dir.mkdir(mode=0o700, exist_ok=True)
    _write_config(sandbox)
    return sandbox


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _toml(value: str) -> str:
    return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes


def _write_config(s: Sandbox) -> None:
    python = shlex.quote(s.python)
    features = ", ".join(
        _toml(f'model_feature_value{{feature="{name}"}}') for name in churn.FEATURES
    )
    text = f"""\
# The built-in demo of the Model Release Console (written by `mrc demo`).
# A churn model served by processes on this machine, metrics scraped from it.

[[model]]
name = "{MODEL}"
repo = "churn-model"
test_command = {_toml(f"{python} -m pytest -q -p no:cacheprovider")}
test_timeout = "2m"
quality = {{ accuracy = 0.72, auc = 0.75 }}

  [[model.target]]
  name = "{TARGET}"
  kind = "local"
  command = {_toml(f"{python} server.py --port {{port}}")}
  port = {s.port}
  health_path = "/healthz"
  keep = 5
  ready_timeout = "20s"

  [model.metrics]
  source = "scrape"
  url = {_toml(s.url + "/metrics")}
  refresh = "1s"
  prediction_histogram = "model_prediction_score"
  feature_histograms = [{features}]
  error_rate = "sum(rate(model_errors_total[1m])) / sum(rate(model_requests_total[1m]))"
  latency_p95 = "model_latency_seconds"
  throughput = "model_requests_total"

  [model.drift]
  method = "psi"
  warn = 0.1
  alert = 0.25
  reference = "training"
  reference_path = "reference/histograms.json"
  window = "30s"
  min_samples = 100

  [model.guard]
  duration = "1m"
  auto_rollback = false
  max_error_rate = 0.05
  max_drift = 0.25

  [model.retrain]
  command = {_toml(f"{python} train.py --inputs {shlex.quote(str(s.recent_inputs))}")}
  executor = "local"
  window = "30s"
  timeout = "2m"
"""
    tmp = s.config.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, s.config)
    marker = {
        "port": s.port,
        "commits": s.commits,
        "tags": s.tags,
        "seed": s.seed,
        "python": s.python,
    }
    (s.root / "sandbox.json").write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


class _Git:
    """Runs git in the sample repository with no user or system config."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        self.env.update(
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_TERMINAL_PROMPT="0",
            LC_ALL="C",
            TZ="UTC",
        )

    def __call__(self, *args: str) -> str:
        """Run ``git args``; return its stripped output. Raises CalledProcessError."""
        result = subprocess.run(
            ["git", "-C", str(self.repo), *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def run_input(self, stdin: bytes, *args: str) -> None:
        """Run ``git args`` with ``stdin`` as its input; raises CalledProcessError."""
        subprocess.run(
            ["git", "-C", str(self.repo), *args],
            env=self.env,
            input=stdin,
            check=True,
            capture_output=True,
        )


def _json(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"


def _holdout_csv(rows: list[tuple[churn.Customer, int]]) -> str:
    lines = [",".join([*churn.FEATURES, "churned"])]
    for c, y in rows:
        lines.append(",".join([*(f"{c[f]:g}" for f in churn.FEATURES), str(y)]))
    return "\n".join(lines) + "\n"


def _make_repo(repo: Path, seed: int, end: datetime) -> tuple[dict[str, str], dict[str, str]]:
    """Create the sample repository; return (role -> sha, role -> tag)."""
    rng = random.Random(seed)
    train_rows = churn.dataset(rng, 1500)
    holdout = churn.dataset(rng, 500)
    customers = [c for c, _ in train_rows]
    scaler = churn.fit_scaler(customers)
    q2 = churn.Scaler(
        dict(scaler.mean), {f: round(v * Q2_SPREAD, 3) for f, v in scaler.std.items()}
    )
    w1 = churn.train(train_rows, churn.FEATURES[:2], scaler)
    w2 = churn.train(train_rows, churn.FEATURES[:3], scaler)
    w3 = churn.train(train_rows, churn.FEATURES, scaler, l2=0.5)
    w5 = churn.train(train_rows, churn.FEATURES[1:], scaler, l2=0.5)

    def model_files(w: churn.Weights, version: str) -> dict[str, str]:
        return {
            "VERSION": version + "\n",
            "model/weights.json": _json(w.to_json()),
            "reference/histograms.json": _json(churn.reference_histograms(customers, w, scaler)),
        }

    base = FILES / "churn_model"
    initial = {
        str(p.relative_to(base)): p.read_text(encoding="utf-8")
        for p in sorted(base.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
    initial.update(
        {
            "README.md": README,
            "pyproject.toml": PYPROJECT,
            ".gitignore": "__pycache__/\n.pytest_cache/\n",
            "model/scaler.json": _json(scaler.to_json()),
            "data/holdout.csv": _holdout_csv(holdout),
            **model_files(w1, "1.0.0"),
        }
    )
    shifted_preprocess = (FILES / "changes" / "preprocess_new_scaler.py").read_text()
    # (role, author, days before the end, subject, body, files, tag)
    story: list[tuple[str, str, float, str, str, dict[str, str], str]] = [
        (
            "v1",
            "maya",
            24,
            "Initial churn model: logistic regression on tenure and charges",
            "Trained on 1,500 customers; held-out set of 500 in data/holdout.csv.",
            initial,
            "v1.0.0",
        ),
        (
            "ci",
            "tom",
            21,
            "ci: run the quality tests on every push",
            "",
            {".github/workflows/tests.yml": CI_WORKFLOW, "requirements.txt": "prometheus-client\n"},
            "",
        ),
        (
            "v2",
            "maya",
            16,
            "Add support-call count as a feature",
            "Customers who call support often are much more likely to leave.",
            model_files(w2, "1.1.0"),
            "v1.1.0",
        ),
        (
            "docs",
            "priya",
            12,
            "docs: describe the serving API and metrics",
            "",
            {"README.md": README + README_API},
            "",
        ),
        (
            "v3",
            "maya",
            7,
            "Add data usage and retune regularisation",
            "Lower L2 penalty after a sweep; accuracy and AUC up on the held-out set.",
            model_files(w3, "1.2.0"),
            "v1.2.0",
        ),
        (
            "shift",
            "priya",
            2,
            "Normalize inputs with new scaler fitted on Q2 customers",
            "Q2 customers on the new price plans vary much less in charges and usage;\n"
            "refit the scaler on them and clip outliers at 5 standard deviations.\n"
            "Weights unchanged: accuracy on the held-out set is up.",
            {
                "VERSION": "1.3.0\n",
                "model/preprocess.py": shifted_preprocess,
                "model/scaler_2026q2.json": _json(q2.to_json()),
            },
            "v1.3.0",
        ),
        (
            "failing",
            "maya",
            0,
            "Experiment: drop tenure feature for the privacy review",
            "Tenure is derived from the signup date, which legal asked us to drop.",
            {
                "VERSION": "1.4.0.dev0\n",
                "model/weights.json": _json(w5.to_json()),
                "reference/histograms.json": _json(
                    churn.reference_histograms(customers, w5, scaler)
                ),
            },
            "",
        ),
    ]
    repo.mkdir(parents=True)
    git = _Git(repo)
    git("init", "-q", "-b", "main")
    marks = repo / ".git" / "demo-marks"
    git.run_input(
        _fast_import_stream(story, end - timedelta(hours=1)),
        # Keep the one pack it writes: exploding its few dozen objects into loose files
        # (the default below 100 objects) took four times as long as the import itself.
        "-c",
        "fastimport.unpackLimit=0",
        "fast-import",
        "--quiet",
        "--done",
        f"--export-marks={marks}",
    )
    shas = dict(line.split() for line in marks.read_text(encoding="ascii").splitlines())
    marks.unlink()
    git("reset", "-q", "--hard", "main")  # the work tree and index of the last commit
    commits = {role: shas[f":{n}"] for n, (role, *_) in enumerate(story, 1)}
    tags = {role: tag for role, *_, tag in story if tag}
    return commits, tags


def _fast_import_stream(
    story: list[tuple[str, str, float, str, str, dict[str, str], str]], last: datetime
) -> bytes:
    """Return the ``git fast-import`` input that commits ``story`` on main and tags it.

    Each commit is marked with its 1-based position in ``story``; its files are
    added or replaced (mode 100644) on top of the previous commit. The commits
    are those ``git commit -m`` would make with the same identity and date.
    """

    def data(text: str) -> bytes:
        raw = text.encode("utf-8")
        return b"data %d\n%s\n" % (len(raw), raw)

    out: list[bytes] = []
    for n, (_role, who, days, subject, body, files, tag) in enumerate(story, 1):
        name, email = AUTHORS[who]
        stamp = f"{int((last - timedelta(days=days)).timestamp())} +0000"
        message = subject + ("\n\n" + body if body else "") + "\n"
        out.append(f"commit refs/heads/main\nmark :{n}\n".encode())
        out.append(f"author {name} <{email}> {stamp}\n".encode())
        out.append(f"committer {name} <{email}> {stamp}\n".encode())
        out.append(data(message))
        for path, content in files.items():
            out.append(f"M 100644 inline {path}\n".encode())
            out.append(data(content))
        out.append(b"\n")
        if tag:
            out.append(f"reset refs/tags/{tag}\nfrom :{n}\n\n".encode())
    out.append(b"done\n")
    return b"".join(out)
