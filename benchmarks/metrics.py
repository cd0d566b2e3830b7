"""/metrics at scale: one scrape at 1,000 and 100,000 finished runs.

Prints the number of SQL queries at both sizes (must be equal) and the median CPU
and wall time of a scrape. Rows come from admin_scale's bulk insert (each run: two
work items, two run items, one in ten failed) plus one finished step run per
step of each run, and 100 open runs with a pending item each.

    .venv/bin/python benchmarks/metrics.py            # SQLite in a temp dir
    DATABASE_URL=postgresql://... .venv/bin/python benchmarks/metrics.py

It prints figures; it is not a test.
"""

import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# admin_scale's import sets the environment up and calls django.setup()
from benchmarks.admin_scale import SIZES, insert_runs, setup

REPEATS = 10


def insert_step_runs(automation, since_number):
    from runs.models import Run, StepRun

    steps = list(automation.latest_published_version().steps.order_by("order"))
    rows = []
    for run_id, created in Run.objects.filter(number__gt=since_number).values_list(
        "pk", "created_at"
    ):
        for i, step in enumerate(steps):
            start = created + timedelta(seconds=i)
            rows.append(
                StepRun(
                    run_id=run_id,
                    step=step,
                    state="finished",
                    items_processed=1,
                    created_at=start,
                    queued_at=start,
                    started_at=start,
                    finished_at=start + timedelta(milliseconds=50 * (i + 1)),
                )
            )
    StepRun.objects.bulk_create(rows, batch_size=1000)


def insert_open_runs(automation, start):
    from runs.models import Run, Sequence, WorkItem

    version = automation.latest_published_version()
    step = version.steps.order_by("order").first()
    runs = [
        Run(
            number=start + n + 1,
            automation=automation,
            version=version,
            trigger_kind="api",
            state="running",
        )
        for n in range(100)
    ]
    Run.objects.bulk_create(runs)
    WorkItem.objects.bulk_create(WorkItem(run=run, step=step) for run in runs)
    Sequence.objects.update_or_create(name="run", defaults={"value": start + 100})


def measure(client):
    from django.db import connection

    client.get("/metrics")  # warm
    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get("/metrics")
    assert response.status_code == 200
    cpu, wall = [], []
    for _ in range(REPEATS):
        c0, w0 = time.process_time(), time.perf_counter()
        client.get("/metrics")
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return len(queries), statistics.median(cpu), statistics.median(wall)


def main():
    from django.db import connection
    from django.test import Client

    automation, _user = setup()
    client = Client()
    inserted = 0
    print(f"database: {connection.vendor}")
    for size in SIZES:
        insert_runs(automation, inserted, size - inserted)
        insert_step_runs(automation, inserted)
        inserted = size
        insert_open_runs(automation, inserted)
        inserted += 100
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        queries, cpu, wall = measure(client)
        print(
            f"{size:>7} runs: {queries} queries, scrape median "
            f"{cpu * 1000:.1f} ms CPU, {wall * 1000:.1f} ms wall"
        )


if __name__ == "__main__":
    main()
