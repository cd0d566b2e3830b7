"""API throughput: trigger requests/s against the production server, next to a bare
authenticated DRF endpoint (GET /api/v1/me/) on the same server, and the ratio
(bar: trigger >= 50% of bare).

    .venv/bin/python benchmarks/api.py [--seconds 10] [--rounds 5] [--clients 4]
        [--server gunicorn|runserver] [--web-workers 2] [--threads 4]

Each endpoint is measured for `--seconds` in all, in `--rounds` slices taken in
turn (bare, trigger, keyed trigger, bare, ...), so that the load of a shared box,
which drifts over a minute, weighs on the three alike.

Starts gunicorn (as `./dev up` does, DEBUG off) on a free 127.0.0.1 port over a
fresh SQLite database in a temporary directory (or DATABASE_URL if set: a scratch
database; REDIS_URL, if set, is the broker the trigger enqueues on), with no worker
cluster (runs stay pending: this measures the API), and the trigger throttle off.
Prints figures; it is not a test.
"""

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup(env) -> str:
    """Migrate, create a superuser token and a published automation; return token."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
    )
    script = """
from django.contrib.auth import get_user_model
from runs.api.tokens import api_token_create
from automations.definitions import automation_import
user, _ = get_user_model().objects.get_or_create(username="bench", is_superuser=True)
automation_import({"slug": "bench", "name": "Bench", "publish": True,
                   "steps": [{"name": "echo", "action": "builtin.echo"}],
                   "triggers": [{"kind": "api"}]})
print(api_token_create(user=user, name="bench")[1])
"""
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def hammer(base, token, seconds, clients, make_request) -> tuple[float, dict]:
    counts: dict = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker():
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Token {token}"}, timeout=30
        ) as client:
            while time.monotonic() < deadline:
                status = make_request(client).status_code
                with lock:
                    counts[status] = counts.get(status, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return sum(counts.values()) / elapsed, counts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved slices per measurement"
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--server", choices=["gunicorn", "runserver"], default="gunicorn"
    )
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--server-log", help="file for the server's output")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="runs-bench-api-")
    env = {
        **os.environ,
        "RUNS_VAR_DIR": tmp,
        "RUNS_API_TRIGGER_RATE": "",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "LOG_LEVEL": "ERROR",
    }
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
    # a throwaway database: a key made for this process (the settings need one)
    env.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    token = setup(env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if args.server == "gunicorn":
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "runs_project.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.web_workers),
            "--threads",
            str(args.threads),
            "--no-control-socket",
        ]
        server_name = f"gunicorn {args.web_workers} workers x {args.threads} threads"
    else:
        command = [
            sys.executable,
            "manage.py",
            "runserver",
            f"127.0.0.1:{port}",
            "--noreload",
        ]
        server_name = "runserver --noreload"
    log = open(args.server_log, "w") if args.server_log else subprocess.DEVNULL  # noqa: SIM115
    server = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/api/v1/me/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = json.dumps({"inputs": [{"subject": "bench"}]})
        post = {"content": body, "headers": {"Content-Type": "application/json"}}

        def bare(client):
            return client.get("/api/v1/me/")

        def trigger(client):
            return client.post("/api/v1/automations/bench/runs/", **post)

        def trigger_keyed(client):
            headers = {**post["headers"], "Idempotency-Key": uuid.uuid4().hex}
            return client.post(
                "/api/v1/automations/bench/runs/", content=body, headers=headers
            )

        hammer(base, token, 1, args.clients, bare)  # warm up
        hammer(base, token, 1, args.clients, trigger)
        # interleaved slices, so that a shared box's load drifting over the minute
        # weighs on every measurement alike: the ratios compare like with like
        measured = {}
        for _ in range(args.rounds):
            for name, fn in [
                ("bare GET /api/v1/me/", bare),
                ("trigger POST", trigger),
                ("trigger POST + Idempotency-Key", trigger_keyed),
            ]:
                slice_ = args.seconds / args.rounds
                rps, counts = hammer(base, token, slice_, args.clients, fn)
                elapsed, statuses = measured.get(name, (0.0, {}))
                for status, count in counts.items():
                    statuses[status] = statuses.get(status, 0) + count
                measured[name] = (elapsed + sum(counts.values()) / rps, statuses)
        results = {
            name: (sum(statuses.values()) / elapsed, statuses)
            for name, (elapsed, statuses) in measured.items()
        }
    finally:
        server.terminate()
        server.wait(10)
    database = env["DATABASE_URL"].split("://")[0]
    print(
        f"API benchmark: {server_name}, {database}"
        f"{' + Redis broker' if env.get('REDIS_URL') else ''}, {args.clients} clients, "
        f"{args.seconds:g} s each in {args.rounds} interleaved slices, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    for name, (rps, counts) in results.items():
        print(f"  {name:34s} {rps:8.1f} req/s   statuses {counts}")
    bare_rps = results["bare GET /api/v1/me/"][0]
    trigger_rps = results["trigger POST"][0]
    keyed_rps = results["trigger POST + Idempotency-Key"][0]
    ratio = trigger_rps / bare_rps
    verdict = "met" if ratio >= 0.5 else "NOT met"
    print(f"  trigger / bare ratio: {ratio:.2f} (bar >= 0.50: {verdict})")
    print(
        f"  keyed trigger / trigger ratio: {keyed_rps / trigger_rps:.2f} "
        f"(time per request x{trigger_rps / keyed_rps:.2f})"
    )


if __name__ == "__main__":
    main()
