"""Real worker clusters and a counting HTTP endpoint for the fault tests."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The URL of the database the tests run on, for processes they start."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host = f"{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}"
    return f"postgresql://{user}{password}@{host}/{s['NAME']}"


def cluster_env(**extra) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        # the queue this test process sends to (ORM: a key; Redis: a list)
        Q_CLUSTER_NAME=settings.Q_CLUSTER["name"],
        Q_WORKERS="2",
        Q_TIMEOUT="20",
        Q_RETRY="25",
        RUNS_STEP_RUN_BUDGET_SECONDS="5",
        RUNS_LEASE_SECONDS="4",
        RUNS_ACTION_MODULES="tests.actions",
        LOG_LEVEL="ERROR",
        PYTHONPATH=str(ROOT),
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


@contextlib.contextmanager
def processes(*commands, env):
    started = []
    try:
        for command in commands:
            started.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", *command],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        yield started
    finally:
        # SIGTERM to the main process only, as `kill PID` and systemd's
        # KillMode=mixed do: django-q2's sentinel dies at once on a SIGTERM of its
        # own, leaving the main process deadlocked on the stop event (docs/deploy.md)
        for proc in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class IdempotentEndpoint:
    """An HTTP API that honours Idempotency-Key like a real one: the first request
    with a key has the side effect; repeats replay it. Counts both."""

    def __init__(self, delay: float = 0.0):
        self.requests = Counter()
        self.effects = Counter()
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                key = self.headers.get("Idempotency-Key", "")
                with endpoint.lock:
                    endpoint.requests[key] += 1
                    if endpoint.requests[key] == 1:
                        endpoint.effects[key] += 1
                if delay:
                    time.sleep(delay)
                body = json.dumps({"id": f"rec-{abs(hash(key)) % 10**8}"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
