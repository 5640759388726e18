"""Steady prediction traffic for the demo's model server.

    python -m core.demo.traffic --url http://127.0.0.1:8080 --rate 20 --shift-file PATH

Sends about ``rate`` ``POST /predict`` requests per second, each a customer
drawn from the seeded population of :mod:`core.demo.churn`. While the file
``--shift-file`` exists the customers come from the *shifted* population
(newer, pricier contracts): a data shift, as opposed to a model change. A
small fraction of requests (``--bad``) omits a feature so the error counter
moves. Runs until killed; started by the console behind a guard
(:mod:`core.procs`) so it dies with it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from core.demo.churn import customer


class Sender:
    """A keep-alive HTTP connection that reconnects after errors."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes) -> int:
        """Send one request; return the status, or 0 when the server could not be reached."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request("POST", path, body, {"Content-Type": "application/json"})
                response = self.conn.getresponse()
                response.read()
                return response.status
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    return 0
        return 0


def run(
    url: str,
    rate: float,
    shift_file: Path | None,
    seed: int,
    bad: float = 0.005,
    limit: int | None = None,
) -> int:
    """Send requests at ``rate`` per second until killed (or ``limit`` requests); return sent."""
    rng = random.Random(seed)
    sender = Sender(url)
    interval = 1.0 / rate
    shifted = False
    checked = 0.0
    sent = 0
    next_at = time.monotonic()
    while limit is None or sent < limit:
        now = time.monotonic()
        if shift_file is not None and now - checked >= 1.0:
            shifted = shift_file.exists()
            checked = now
        features: dict[str, float] = customer(rng, shifted)
        if rng.random() < bad:
            features.pop("support_calls")
        if sender.post("/predict", json.dumps(features).encode()) == 0:
            time.sleep(0.5)  # server down (between restarts): do not spin
            next_at = time.monotonic()
        sent += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0:
            next_at = time.monotonic()  # fell behind: do not burst to catch up
    return sent


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and send traffic; returns 0 only with ``--count``."""
    parser = argparse.ArgumentParser(description="Send demo prediction traffic.")
    parser.add_argument("--url", required=True, help="base URL of the model server")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--shift-file", type=Path, default=None, help="shift while this exists")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bad", type=float, default=0.005, help="fraction of invalid requests")
    parser.add_argument("--count", type=int, default=None, help="stop after this many requests")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be positive")
    run(args.url, args.rate, args.shift_file, args.seed, args.bad, args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
