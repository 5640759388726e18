"""HTTP model server of the churn model.

    python server.py --port 8080

* ``POST /predict``: a JSON object of features (or ``{"features": {...}}``)
  -> ``{"score": p, "churn": bool, "version": ..., "commit": ...}``
* ``GET /healthz``: 200 once the model is loaded
* ``GET /version``: the model version and the commit being served
* ``GET /metrics``: Prometheus metrics: histograms of prediction scores,
  input features and latency; request and error counters
"""

from __future__ import annotations

import argparse
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import model
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

ROOT = Path(__file__).resolve().parent
VERSION = (ROOT / "VERSION").read_text().strip()
COMMIT = os.environ.get("MRC_COMMIT", "unknown")

REGISTRY = CollectorRegistry()
PREDICTION = Histogram(
    "model_prediction_score",
    "Churn probability returned by /predict.",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    registry=REGISTRY,
)
FEATURE = Histogram(
    "model_feature_value",
    "Raw input feature values received by /predict.",
    ["feature"],
    buckets=(1, 2, 3, 5, 8, 12, 18, 24, 36, 48, 60, 80, 100, 120),
    registry=REGISTRY,
)
LATENCY = Histogram(
    "model_latency_seconds",
    "Time spent answering /predict.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=REGISTRY,
)
REQUESTS = Counter("model_requests", "Prediction requests received.", registry=REGISTRY)
ERRORS = Counter("model_errors", "Prediction requests that failed.", registry=REGISTRY)
for _name in model.FEATURES:
    FEATURE.labels(feature=_name)

MODEL = model.load()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes

    def reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reply_json(self, status: int, data: object) -> None:
        self.reply(status, json.dumps(data).encode())

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self.reply(200, b"ok\n", "text/plain")
        elif self.path == "/version":
            self.reply_json(200, {"model": "churn", "version": VERSION, "commit": COMMIT})
        elif self.path == "/metrics":
            self.reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        else:
            self.reply_json(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        if self.path != "/predict":
            self.reply_json(404, {"error": f"no route {self.path}"})
            return
        started = time.perf_counter()
        REQUESTS.inc()
        try:
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length) or b"{}")
            features = payload.get("features", payload) if isinstance(payload, dict) else None
            if not isinstance(features, dict):
                raise model.InvalidInput("expected a JSON object of features")
            score = MODEL.predict(features)
        except (ValueError, model.InvalidInput) as exc:
            ERRORS.inc()
            self.reply_json(400, {"error": str(exc)})
            return
        for name in model.FEATURES:
            FEATURE.labels(feature=name).observe(float(features[name]))
        PREDICTION.observe(score)
        self.reply_json(
            200,
            {"score": round(score, 6), "churn": score >= 0.5, "version": VERSION, "commit": COMMIT},
        )
        LATENCY.observe(time.perf_counter() - started)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the churn model over HTTP.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"churn model {VERSION} ({COMMIT[:8]}) on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
