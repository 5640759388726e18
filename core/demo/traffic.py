"""Steady prediction traffic for the demo's model server.

    python -m core.demo.traffic --url http://127.0.0.1:8080 --rate 20 --shift-file PATH \
        --recent PATH

Sends about ``rate`` ``POST /predict`` requests per second, each a customer
drawn from the seeded population of :mod:`core.demo.churn`. While the file
``--shift-file`` exists the customers come from the *shifted* population
(newer, pricier contracts): a data shift, as opposed to a model change. A
small fraction of requests (``--bad``) omits a feature so the error counter
moves. Runs until killed; started by the console behind a guard
(:mod:`core.procs`) so it dies with it.

With ``--burst N`` it sends nothing until a line arrives on its standard
input, then sends ``N`` requests at once (:func:`burst`), prints how many got
a 200 and exits; it exits at once when its input closes first. So a caller can
start it ahead of time and have the requests sent, from another process,
the moment it needs them.

With ``--recent`` the last ``--keep`` valid requests and their observed
outcome (whether that customer churned, drawn from the ground truth of
:func:`core.demo.churn.churn_probability`) are kept in that file, one JSON
object a line (``{"t": unix seconds, "features": {...}, "churned": 0|1}``),
rewritten atomically about once a second: the data the sample model's
``train.py`` retrains on.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

from core.demo.churn import churn_probability, customer

#: Recent requests kept by ``--recent`` (a minute of traffic at the demo's 20 per second).
KEEP = 1200


class Recent:
    """The last ``keep`` requests and their outcomes, written atomically to ``path``."""

    def __init__(self, path: Path, keep: int = KEEP, seed: int = 0) -> None:
        self.path = path
        self.rows: deque[str] = deque(maxlen=keep)
        self.rng = random.Random(seed)  # outcomes: apart from the customers' own stream
        self.dirty = False

    def add(self, when: float, features: dict[str, float]) -> None:
        """Keep one answered request with the outcome its customer goes on to have."""
        churned = 1 if self.rng.random() < churn_probability(features) else 0
        row = {"t": round(when, 3), "features": features, "churned": churned}
        self.rows.append(json.dumps(row, separators=(",", ":")))
        self.dirty = True

    def flush(self) -> None:
        """Replace the file with the kept rows (write a temporary file, then rename)."""
        if not self.dirty:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text("\n".join(self.rows) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full or vanished state dir: try again next time
            return
        self.dirty = False


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


def burst(url: str, count: int, seed: int, shifted: bool = False, connections: int = 4) -> int:
    """Send ``count`` valid requests back to back (no pacing); return how many got a 200.

    Customers come from a stream seeded with ``seed`` (the shifted population
    when ``shifted``), so the same ones are sent whatever the order. They go
    over ``connections`` keep-alive connections at once, which keeps the
    forwarder and the server busy while each waits for the other. A
    connection stops early, after the first request the server does not
    answer, when it cannot be reached.
    """
    rng = random.Random(seed)
    bodies = [json.dumps(customer(rng, shifted)).encode() for _ in range(count)]
    answered = [0] * connections

    def send(index: int) -> None:
        sender = Sender(url)
        try:
            for body in bodies[index::connections]:
                status = sender.post("/predict", body)
                if status == 0:
                    break
                answered[index] += status == 200
        finally:
            if sender.conn is not None:
                sender.conn.close()

    threads = [
        threading.Thread(target=send, args=(i,), name=f"demo-burst-{i}", daemon=True)
        for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(answered)


def run(
    url: str,
    rate: float,
    shift_file: Path | None,
    seed: int,
    bad: float = 0.005,
    limit: int | None = None,
    recent: Recent | None = None,
) -> int:
    """Send requests at ``rate`` per second until killed (or ``limit`` requests); return sent.

    ``recent`` keeps the answered requests (flushed about once a second and at the end).
    """
    rng = random.Random(seed)
    sender = Sender(url)
    interval = 1.0 / rate
    shifted = False
    checked = 0.0
    sent = 0
    next_at = time.monotonic()
    while limit is None or sent < limit:
        now = time.monotonic()
        if now - checked >= 1.0:
            if shift_file is not None:
                shifted = shift_file.exists()
            if recent is not None:
                recent.flush()
            checked = now
        features: dict[str, float] = customer(rng, shifted)
        if rng.random() < bad:
            features.pop("support_calls")
        status = sender.post("/predict", json.dumps(features).encode())
        if status == 0:
            time.sleep(0.5)  # server down (between restarts): do not spin
            next_at = time.monotonic()
        elif status == 200 and recent is not None:
            recent.add(time.time(), features)
        sent += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0:
            next_at = time.monotonic()  # fell behind: do not burst to catch up
    if recent is not None:
        recent.flush()
    return sent


def _burst_when_asked(url: str, count: int, seed: int, shift_file: Path | None) -> int:
    """Wait for a line on stdin, send the burst, print how many got a 200; return 0.

    Returns 1 without sending anything when stdin closes first (the caller is gone).
    The customers are the shifted ones when ``shift_file`` exists at that moment.
    """
    if not sys.stdin.readline():
        return 1
    shifted = shift_file is not None and shift_file.exists()
    print(burst(url, count, seed, shifted=shifted), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and send traffic (or one ``--burst``).

    Returns 0 after ``--count`` requests or a burst, 1 when a burst was never asked for.
    """
    parser = argparse.ArgumentParser(description="Send demo prediction traffic.")
    parser.add_argument("--url", required=True, help="base URL of the model server")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--shift-file", type=Path, default=None, help="shift while this exists")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bad", type=float, default=0.005, help="fraction of invalid requests")
    parser.add_argument("--count", type=int, default=None, help="stop after this many requests")
    parser.add_argument("--recent", type=Path, default=None, help="keep recent requests here")
    parser.add_argument("--keep", type=int, default=KEEP, help="how many recent requests to keep")
    parser.add_argument(
        "--burst",
        type=int,
        default=None,
        metavar="N",
        help="once a line arrives on stdin, send N requests at once, print how many got a 200",
    )
    args = parser.parse_args(argv)
    if args.burst is not None:
        return _burst_when_asked(args.url, args.burst, args.seed, args.shift_file)
    if args.rate <= 0:
        parser.error("--rate must be positive")
    if args.keep <= 0:
        parser.error("--keep must be positive")
    recent = None if args.recent is None else Recent(args.recent, args.keep, args.seed + 1)
    run(args.url, args.rate, args.shift_file, args.seed, args.bad, args.count, recent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
