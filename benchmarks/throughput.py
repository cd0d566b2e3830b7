"""Throughput: work items through a 3-step echo automation, engine vs one task per item.

    .venv/bin/python benchmarks/throughput.py [--items 10000] [--workers 2]
        [--batch-size 100 500] [--clusters 1]

Every phase runs in this one process against one database (a fresh SQLite file in
WAL unless DATABASE_URL is set) with `--clusters` worker clusters (`manage.py
qcluster`, the project's tuned Q_CLUSTER settings, `--workers` each):

- engine: `run_start` with N inputs; the clock stops when the run is completed.
  Item-steps = N x 3.
- anchor: the same N items sent as one django-q2 task each (`async_task`), each task
  putting its item through the same three echo actions in memory, with no ledger at
  all; the clock stops when the queue is drained. Item-steps = N x 3.
- floor (PostgreSQL only, right before each engine phase): the same N items through
  three steps by a bare psycopg loop in this process (`benchmarks/floor.py`: claim
  with SKIP LOCKED, COPY run items and next items, mark done, commit), per batch
  size.

The engine is measured once per `--batch-size` (default: 100, the product's default
step batch size, and 500, what a no-op step would be given for throughput); the
anchor once. The bars (DESIGN.md): on SQLite engine item-steps/s >= 10x the
anchor's; on PostgreSQL + Redis >= 5x the anchor's and >= 50% of the floor's, and
`run_start` of the N inputs <= 0.2 s. Set DATABASE_URL / REDIS_URL to measure
PostgreSQL / the Redis broker.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.setup import django_for_benchmark  # noqa: E402


def anchor_task(payload: dict) -> dict:
    """One item through three echo steps, as a plain django-q2 task would do it."""
    from automations.actions import ActionContext, get_action

    echo = get_action("builtin.echo").func
    for _ in range(3):
        context = ActionContext(
            payload=payload,
            parameters={},
            run=None,
            step=None,
            work_item=None,
            subject="",
            attempt=1,
            idempotency_key="",
            should_stop=lambda: False,
        )
        payload = echo(context)[0]
    return payload


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--clusters", type=int, default=1)
    args = parser.parse_args()

    django_for_benchmark(workers=args.workers, cluster_name="bench")
    from django.conf import settings
    from django.db import connection, transaction
    from django_q.models import OrmQ
    from django_q.tasks import async_task

    from automations.definitions import automation_import
    from benchmarks.floor import floor_rate
    from runs.models import Run
    from runs.services import run_start
    from runs.states import RunState

    automations = {
        size: automation_import(
            {
                "slug": f"bench-{size}",
                "name": f"Bench {size}",
                "publish": True,
                "steps": [
                    {"name": f"echo {i}", "action": "builtin.echo", "batch_size": size}
                    for i in (1, 2, 3)
                ],
            }
        ).automation
        for size in args.batch_size
    }
    floor = (
        automation_import(
            {
                "slug": "bench-floor",
                "name": "Bench floor",
                "publish": True,
                "steps": [
                    {"name": f"echo {i}", "action": "builtin.echo"} for i in (1, 2, 3)
                ],
            }
        ).automation
        if connection.vendor == "postgresql"
        else None
    )
    floors = {}
    inputs = [{"subject": f"item-{i}", "n": i} for i in range(args.items)]
    broker = "redis" if settings.Q_CLUSTER.get("redis") else "orm"
    print(
        f"database {connection.vendor}, broker {broker}, clusters {args.clusters}, "
        f"workers {args.workers} each, "
        f"items {args.items}, steps 3, batch sizes {args.batch_size}"
    )

    clusters = [
        subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=os.environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(args.clusters)
    ]
    engine = {}
    try:
        # warm up: the cluster is ready once it has run a task
        # (its own run: a reused database may hold runs that never complete)
        warm = run_start(automation=automations[args.batch_size[0]], inputs=[{}])
        while (
            Run.objects.values_list("state", flat=True).get(pk=warm.pk)
            != RunState.COMPLETED
        ):
            time.sleep(0.1)

        for size, automation in automations.items():
            if floor is not None:
                # right before the engine, the clusters idle: the box's speed
                # drifts over minutes
                floors[size] = floor_rate(floor, args.items, size)
            started = time.perf_counter()
            run = run_start(automation=automation, inputs=inputs)
            start_seconds = time.perf_counter() - started
            while (
                Run.objects.values_list("state", flat=True).get(pk=run.pk)
                != RunState.COMPLETED
            ):
                time.sleep(0.05)
            engine[size] = (run, time.perf_counter() - started, start_seconds)

        started = time.perf_counter()
        with transaction.atomic():
            for payload in inputs:
                async_task("benchmarks.throughput.anchor_task", payload)
        enqueued = time.perf_counter() - started
        if broker == "orm":
            while OrmQ.objects.exists():
                time.sleep(0.05)
        else:
            from django_q.brokers import get_broker

            queue = get_broker()
            while queue.queue_size() or queue.lock_size():
                time.sleep(0.05)
        anchor_seconds = time.perf_counter() - started
    finally:
        for cluster in clusters:
            cluster.terminate()
        for cluster in clusters:
            cluster.wait(timeout=30)

    from django.db.models import Count, Max, Min

    from runs.models import StepRun

    item_steps = args.items * 3
    anchor_rate = item_steps / anchor_seconds
    print(
        "one django-q2 task per item: "
        f"{item_steps} item-steps in {anchor_seconds:.2f}s "
        f"= {anchor_rate:,.0f}/s (enqueue {enqueued:.2f}s)"
    )
    postgresql = connection.vendor == "postgresql"
    for size, (run, seconds, start_seconds) in engine.items():
        rate = item_steps / seconds
        run.refresh_from_db()
        print(
            f"engine, batch {size}: {item_steps} item-steps in {seconds:.2f}s "
            f"= {rate:,.0f}/s; "
            f"engine/anchor: {rate / anchor_rate:.1f}x "
            f"(bar: >= {5 if postgresql else 10}x)"
        )
        if size in floors:
            floor, floor_seconds = floors[size]
            print(
                f"  floor, batch {size}: {item_steps} item-steps in "
                f"{floor_seconds:.2f}s = {floor:,.0f}/s; "
                f"engine/floor: {rate / floor:.0%} (bar: >= 50%)"
            )
        print(
            f"  run_start {start_seconds:.3f}s"
            f"{' (bar: <= 0.2s)' if postgresql else ''}; first step run started "
            f"{(run.started_at - run.created_at).total_seconds():.2f}s after creation"
        )
        step_runs = (
            StepRun.objects.filter(run=run)
            .values_list("step__order")
            .annotate(n=Count("id"), first=Min("started_at"), last=Max("finished_at"))
            .order_by("step__order")
        )
        for order, count, first, last in step_runs:
            print(
                f"  step {order}: {count} step run(s), working "
                f"{(last - first).total_seconds():.2f}s"
            )


if __name__ == "__main__":
    main()
