"""A tiny live model-server exporter for tests: real prometheus-client metrics over HTTP.

It serves, on 127.0.0.1 at a free port, what a model server exposes:

* ``model_prediction_score`` — histogram of prediction scores in [0, 1]
  (buckets 0.1 .. 1.0 and +Inf);
* ``model_feature_value{feature=...}`` — histogram per input feature;
* ``model_requests_total`` / ``model_errors_total`` — counters;
* ``model_latency_seconds`` — histogram.

Observations are deterministic: :meth:`Exporter.observe` records ``n``
predictions spread over the buckets exactly in proportion to the current
prediction distribution, which :meth:`Exporter.shift` changes on demand.

``token`` makes the endpoint answer 401 to a request without
``Authorization: Bearer <token>``. ``per_scrape`` records that many requests
just before every scrape is answered, so every scrape sees exactly one more
batch of traffic and any window of scrapes has the same distribution.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from core.domain import Histogram

BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: Weights per bucket of the scores before a shift: centred low.
BEFORE = (5, 20, 30, 20, 10, 6, 4, 3, 1, 1)
#: Weights after a shift: centred high.
AFTER = (1, 1, 3, 4, 6, 10, 20, 30, 20, 5)


def spread(n: int, weights: Sequence[float]) -> list[int]:
    """Split ``n`` into integer parts proportional to ``weights`` (largest remainders)."""
    total = float(sum(weights))
    raw = [n * w / total for w in weights]
    parts = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)
    for i in order[: n - sum(parts)]:
        parts[i] += 1
    return parts


class Exporter:
    """An HTTP /metrics endpoint in a thread, with a prediction distribution that can shift.

    ``url`` is the /metrics URL. Use as a context manager or call :meth:`stop`.
    """

    def __init__(
        self,
        features: Sequence[str] = ("age", "income"),
        *,
        token: str | None = None,
        per_scrape: int = 0,
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter
        from prometheus_client import Histogram as PromHistogram

        self.registry = CollectorRegistry()
        self.prediction = PromHistogram(
            "model_prediction_score", "Prediction scores.", buckets=BUCKETS, registry=self.registry
        )
        self.feature = PromHistogram(
            "model_feature_value",
            "Input feature values (scaled to [0, 1]).",
            ["feature"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter("model_requests", "Requests.", registry=self.registry)
        self.errors = Counter("model_errors", "Failed requests.", registry=self.registry)
        self.latency = PromHistogram(
            "model_latency_seconds", "Request latency.", registry=self.registry
        )
        self.features = tuple(features)
        self.weights: tuple[float, ...] = BEFORE
        self.feature_weights: dict[str, tuple[float, ...]] = {n: BEFORE for n in self.features}
        self.error_ratio = 0.0
        self.token = token
        self.per_scrape = per_scrape
        #: Scrapes answered, and requests refused for a missing or wrong token.
        self.scrapes = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._server, self._thread = self._serve()
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}/metrics"

    def shift(
        self,
        weights: Sequence[float] = AFTER,
        *,
        features: dict[str, Sequence[float]] | None = None,
        error_ratio: float | None = None,
    ) -> None:
        """Change the prediction distribution; optionally features' and the error ratio."""
        with self._lock:
            self.weights = tuple(weights)
            for name, w in (features or {}).items():
                self.feature_weights[name] = tuple(w)
            if error_ratio is not None:
                self.error_ratio = error_ratio

    def observe(self, n: int) -> None:
        """Record ``n`` requests: predictions and features drawn exactly from the weights."""
        with self._lock:
            for bucket, count in zip(BUCKETS, spread(n, self.weights), strict=True):
                for _ in range(count):
                    self.prediction.observe(bucket - 0.05)
            for name, weights in self.feature_weights.items():
                child = self.feature.labels(feature=name)
                for bucket, count in zip(BUCKETS, spread(n, weights), strict=True):
                    for _ in range(count):
                        child.observe(bucket - 0.05)
            self.requests.inc(n)
            self.errors.inc(round(n * self.error_ratio))
            for _ in range(n):
                self.latency.observe(0.02)

    def _serve(self) -> tuple[Any, threading.Thread]:
        from wsgiref.simple_server import make_server

        from prometheus_client import make_wsgi_app
        from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

        metrics_app = make_wsgi_app(self.registry)
        scrape_lock = threading.Lock()

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            wanted = f"Bearer {self.token}"
            if self.token is not None and environ.get("HTTP_AUTHORIZATION", "") != wanted:
                with self._lock:
                    self.refused += 1
                start_response("401 Unauthorized", [("Content-Type", "text/plain")])
                return [b"missing or wrong bearer token\n"]
            with scrape_lock:  # a scrape sees whole batches only
                if self.per_scrape:
                    self.observe(self.per_scrape)
                with self._lock:
                    self.scrapes += 1
                return metrics_app(environ, start_response)  # type: ignore[no-any-return]

        server = make_server("127.0.0.1", 0, app, ThreadingWSGIServer, handler_class=_SilentHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        return server, thread

    def stop(self) -> None:
        """Stop serving (the port then refuses connections)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def training_histogram(weights: Sequence[float], n: int = 1000) -> Histogram:
    """Return a reference histogram of ``n`` samples spread by ``weights`` over :data:`BUCKETS`."""
    counts, running = [], 0.0
    for count in spread(n, weights):
        running += count
        counts.append(running)
    return Histogram((*BUCKETS, float("inf")), (*counts, running))


def _histogram_lines(name: str, labels: str, cumulative: Sequence[int], ts: float) -> list[str]:
    sep = "," if labels else ""
    lines = [
        f'{name}_bucket{{{labels}{sep}le="{bound}"}} {count} {ts:.3f}'
        for bound, count in zip(BUCKETS, cumulative, strict=True)
    ]
    total = cumulative[-1]
    label_part = f"{{{labels}}}" if labels else ""
    lines.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {total} {ts:.3f}')
    lines.append(f"{name}_count{label_part} {total} {ts:.3f}")
    lines.append(f"{name}_sum{label_part} {total * 0.5:.3f} {ts:.3f}")
    return lines


def openmetrics_history(
    start: float, end: float, step: float, shift_at: float | None, per_step: int = 100
) -> str:
    """Return OpenMetrics text (with timestamps, ending in ``# EOF``) of a model's metrics.

    One sample of every series each ``step`` seconds in [start, end]:
    ``model_prediction_score`` and ``model_feature_value{feature="age"}`` move
    from :data:`BEFORE` to :data:`AFTER` after ``shift_at`` (None: never),
    ``feature="income"`` stays put; ``model_requests_total`` grows by
    ``per_step`` per step and ``model_errors_total`` by 10 % of that after the shift.
    """
    times = []
    t = start
    while t <= end:
        times.append(t)
        t += step

    def series(shifts: bool) -> list[tuple[float, list[int]]]:
        out, totals = [], [0] * len(BUCKETS)
        for i, at in enumerate(times):
            if i:
                weights = AFTER if shifts and shift_at is not None and at > shift_at else BEFORE
                parts = spread(per_step, weights)
                totals = [a + b for a, b in zip(totals, parts, strict=True)]
            cumulative, running = [], 0
            for c in totals:
                running += c
                cumulative.append(running)
            out.append((at, cumulative))
        return out

    lines = ["# TYPE model_prediction_score histogram", "# HELP model_prediction_score Scores."]
    for ts, cumulative in series(True):
        lines += _histogram_lines("model_prediction_score", "", cumulative, ts)
    lines += ["# TYPE model_feature_value histogram", "# HELP model_feature_value Features."]
    for feature, shifts in (("age", True), ("income", False)):
        for ts, cumulative in series(shifts):
            lines += _histogram_lines("model_feature_value", f'feature="{feature}"', cumulative, ts)
    lines += ["# TYPE model_requests counter", "# HELP model_requests Requests."]
    lines += [f"model_requests_total {i * per_step} {at:.3f}" for i, at in enumerate(times)]
    lines += ["# TYPE model_errors counter", "# HELP model_errors Errors."]
    errors = 0
    for at in times:
        if shift_at is not None and at > shift_at:
            errors += per_step // 10
        lines.append(f"model_errors_total {errors} {at:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
