"""The deployment of docs/deploy.md, for real: the production server (gunicorn) and
two `qcluster` processes on PostgreSQL and the Redis broker. 1,000 items are
triggered over HTTP with an API token; one cluster is stopped with SIGTERM (as a
process manager stops it) mid-run; every item still ends exactly once."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from runs.models import Run, RunItem, StepRun, WorkItem
from runs.states import RUN_FINAL, RunState
from tests.factories import make_automation
from tests.runs.cluster import (
    ROOT,
    IdempotentEndpoint,
    cluster_env,
    processes,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SETTLED = RUN_FINAL | {RunState.UNRESOLVED}
RUNS, ITEMS_PER_RUN = 10, 100  # 1,000 items


def api_token_for(user) -> str:
    """A hashed API token for the deploy test's triggers (runs.ApiToken)."""
    from runs.api.tokens import api_token_create

    return api_token_create(user=user, name="deploy")[1]


def _require_postgres_and_redis():
    if connection.vendor != "postgresql" or not settings.Q_CLUSTER.get("redis"):
        pytest.skip(
            "SKIPPED deploy test: needs PostgreSQL and the Redis broker "
            "(DATABASE_URL=postgresql://…, REDIS_URL=redis://…)"
        )
    import redis

    try:
        redis.Redis.from_url(settings.Q_CLUSTER["redis"], socket_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.skip(f"SKIPPED deploy test: Redis does not answer ({exc})")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def production_server(env):
    """gunicorn as `./dev up` and docs/deploy.md start it; yields its base URL."""
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "runs_project.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--graceful-timeout",
            "10",
            "--no-control-socket",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def answers():
            assert server.poll() is None, "gunicorn exited at start"
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{base}/admin/login/", timeout=2).status_code == 200
            return False

        wait_for(answers, timeout=60, what="gunicorn to answer")
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _states(slug):
    return list(
        Run.objects.filter(automation__slug=slug).values_list("state", flat=True)
    )


@pytest.mark.timeout(420)
def test_production_server_and_two_clusters_survive_a_sigterm(db):
    _require_postgres_and_redis()
    admin = get_user_model().objects.create_superuser("deployer", password="unused")
    token = api_token_for(admin)
    with IdempotentEndpoint(delay=0.01) as endpoint:
        automation = make_automation(
            {"action": "builtin.echo", "batch_size": 50},
            {
                "action": "builtin.http_request",
                "batch_size": 20,
                "concurrency": 4,
                "max_attempts": 3,
                "retry_backoff_seconds": 0,
                "parameters": {"url": endpoint.url},
            },
            slug="deploy",
        )
        # this process's key: verify_audit below checks the checkpoints the
        # cluster's housekeeping signed with the key derived from it
        env = cluster_env(
            SECRET_KEY=settings.SECRET_KEY, DEBUG="0", RUNS_LEASE_SECONDS=5
        )
        with (
            # the web as docs/deploy.md runs it on PostgreSQL: persistent connections
            production_server({**env, "CONN_MAX_AGE": "60"}) as base,
            processes(
                ["qcluster"], ["qcluster"], ["housekeeping", "--every", "1"], env=env
            ) as (first, second, _housekeeping),
        ):

            def trigger(batch):
                inputs = [
                    {"n": batch * ITEMS_PER_RUN + i} for i in range(ITEMS_PER_RUN)
                ]
                return httpx.post(
                    f"{base}/api/v1/automations/deploy/runs/",
                    json={"inputs": inputs},
                    headers={
                        "Authorization": f"Token {token}",
                        "Idempotency-Key": f"deploy-{batch}",
                    },
                    timeout=60,
                )

            with ThreadPoolExecutor(max_workers=5) as pool:
                responses = list(pool.map(trigger, range(RUNS)))
            assert [r.status_code for r in responses] == [202] * RUNS, [
                r.text for r in responses if r.status_code != 202
            ]

            # SIGTERM a cluster while a worker of it holds items of the HTTP step
            # and most of the work is still to do
            def victim():
                for worker in StepRun.objects.filter(
                    run__automation=automation, state="running", step__order=2
                ).values_list("worker", flat=True):
                    pid = int(worker.rsplit(":", 1)[1])
                    with contextlib.suppress(ProcessLookupError):
                        group = os.getpgid(pid)
                        return next(
                            (p for p in (first, second) if p.pid == group), None
                        )
                return None

            cluster = wait_for(
                victim,
                timeout=120,
                interval=0.05,
                what="a cluster working the HTTP step",
            )
            done_before = WorkItem.objects.filter(
                run__automation=automation, step__order=2, state="done"
            ).count()
            # to its main process, as `kill PID`, `docker stop` and systemd with
            # KillMode=mixed do (a SIGTERM to every process of the cluster
            # deadlocks django-q2: docs/deploy.md)
            os.kill(cluster.pid, signal.SIGTERM)
            try:
                cluster.wait(timeout=60)  # it stops by itself
            except subprocess.TimeoutExpired:
                # django-q2's signal handler can deadlock (its issue 346): do what
                # systemd does after TimeoutStopSec; nothing may be lost either way
                warnings.warn("qcluster hung after SIGTERM; killed it", stacklevel=1)
                os.killpg(cluster.pid, signal.SIGKILL)
                cluster.wait()
            wait_for(
                lambda: set(_states("deploy")) <= SETTLED,
                timeout=240,
                interval=1,
                what="every run to settle",
            )
    assert done_before < RUNS * ITEMS_PER_RUN, "the SIGTERM landed after the work"
    runs = Run.objects.filter(automation=automation)
    assert runs.count() == RUNS
    assert set(runs.values_list("trigger_kind", flat=True)) == {"api"}
    assert set(runs.values_list("state", flat=True)) == {RunState.COMPLETED}
    for order in (1, 2):
        items = WorkItem.objects.filter(run__automation=automation, step__order=order)
        assert items.count() == RUNS * ITEMS_PER_RUN
        assert set(items.values_list("state", flat=True)) == {"done"}
        # beyond retries (failed attempts), no work item has two successes
        successes = {}
        for work_item_id in RunItem.objects.filter(
            run__automation=automation,
            step__order=order,
            outcome__in=("succeeded", "idempotent_replay"),
        ).values_list("work_item_id", flat=True):
            successes[work_item_id] = successes.get(work_item_id, 0) + 1
        assert len(successes) == RUNS * ITEMS_PER_RUN
        assert set(successes.values()) == {1}
    # each item's side effect happened, and none twice
    assert len(endpoint.effects) == RUNS * ITEMS_PER_RUN
    assert set(endpoint.effects.values()) == {1}
    call_command("verify_audit")
