"""Items in flight: a step calling an HTTP endpoint that answers after a set latency.

    .venv/bin/python benchmarks/in_flight.py [--latency-ms 50] [--workers 2]
        [--in-flight 1 16 32] [--seconds 4]

An HTTP endpoint (a threaded `http.server` in this process) answers every request
after `--latency-ms`, counting requests and distinct `Idempotency-Key`s. For each
`--in-flight` value, a one-step automation on `builtin.http_request` with that
`max_in_flight` (batch size 4 × in-flight, at least 100; concurrency = workers)
gets enough items for about `--seconds` at the limit, and the clock runs from
`run_start` until the run is completed, on one worker cluster (`manage.py
qcluster`, the project's Q_CLUSTER settings, `--workers` processes).

The limit is workers × in-flight / latency (each step run has that many calls
out at once, each taking the latency). The bar (DESIGN.md): >= 400 items/s at
50 ms with 2 workers. SQLite by default; set DATABASE_URL / REDIS_URL to measure
PostgreSQL / the Redis broker instead.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.setup import django_for_benchmark  # noqa: E402

BAR = 400  # items/s at 50 ms with 2 workers


class Endpoint(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, latency: float):
        super().__init__(("127.0.0.1", 0), Handler)
        self.latency = latency
        self.lock = threading.Lock()
        self.requests = 0
        self.keys = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: httpx pools the connections
    # headers and body leave in two writes: with Nagle's algorithm the body waits
    # for the client's delayed ACK (40 ms on Linux), which would be measured as
    # latency
    disable_nagle_algorithm = True

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        time.sleep(self.server.latency)
        with self.server.lock:
            self.server.requests += 1
            self.server.keys.add(self.headers.get("Idempotency-Key"))
            number = self.server.requests
        body = json.dumps({"id": number}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 16, 32])
    parser.add_argument("--seconds", type=float, default=4)
    args = parser.parse_args()
    latency = args.latency_ms / 1000

    django_for_benchmark(workers=args.workers, cluster_name="bench-in-flight")
    from django.conf import settings
    from django.db import connection

    from automations.definitions import automation_import
    from runs.models import Run, RunItem
    from runs.services import run_start
    from runs.states import RunState

    endpoint = Endpoint(latency)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()

    def automation(in_flight: int):
        return automation_import(
            {
                "slug": f"bench-in-flight-{in_flight}",
                "name": f"Bench in flight {in_flight}",
                "publish": True,
                "steps": [
                    {
                        "name": "call",
                        "action": "builtin.http_request",
                        "parameters": {"url": endpoint.url, "method": "POST"},
                        "batch_size": max(100, 4 * in_flight),
                        "concurrency": args.workers,
                        "max_in_flight": in_flight,
                    }
                ],
            }
        ).automation

    broker = "redis" if settings.Q_CLUSTER.get("redis") else "orm"
    print(
        f"database {connection.vendor}, broker {broker}, workers {args.workers}, "
        f"endpoint latency {args.latency_ms:g} ms, in flight {args.in_flight}"
    )
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=os.environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    figures = []
    try:
        # warm up: the cluster is ready once it has run a task
        warm = automation(1)
        run = run_start(automation=warm, inputs=[{"n": -1}])
        while Run.objects.values_list("state", flat=True).get(pk=run.pk) not in (
            RunState.COMPLETED,
            RunState.UNRESOLVED,
        ):
            time.sleep(0.1)
        for in_flight in args.in_flight:
            limit = args.workers * in_flight / latency
            items = max(int(limit * args.seconds), 20)
            auto = automation(in_flight)
            before = endpoint.requests
            inputs = [{"subject": f"item-{i}", "n": i} for i in range(items)]
            started = time.perf_counter()
            run = run_start(automation=auto, inputs=inputs)
            while True:
                state = Run.objects.values_list("state", flat=True).get(pk=run.pk)
                if state not in (RunState.PENDING, RunState.RUNNING):
                    break
                time.sleep(0.02)
            seconds = time.perf_counter() - started
            figures.append(
                (
                    in_flight,
                    items,
                    seconds,
                    limit,
                    state,
                    endpoint.requests - before,
                    RunItem.objects.filter(run=run).count(),
                )
            )
    finally:
        cluster.terminate()
        cluster.wait(timeout=30)
        endpoint.shutdown()

    for in_flight, items, seconds, limit, state, calls, run_items in figures:
        rate = items / seconds
        print(
            f"max_in_flight {in_flight:>3}: {items} items in {seconds:.2f}s = "
            f"{rate:,.0f} items/s; limit {args.workers} x {in_flight} / "
            f"{args.latency_ms:g} ms = {limit:,.0f}/s ({rate / limit:.0%} of it); "
            f"run {state}, {calls} requests, {run_items} run items"
        )
    top = max(figures, key=lambda f: f[1] / f[2])
    rate = top[1] / top[2]
    print(
        f"best: {rate:,.0f} items/s at max_in_flight {top[0]} "
        f"(bar: >= {BAR} items/s at 50 ms with 2 workers: "
        f"{'met' if rate >= BAR else 'not met'}); distinct keys sent "
        f"{len(endpoint.keys)} for {endpoint.requests} requests"
    )


if __name__ == "__main__":
    main()
