"""CPU per item-step of the engine, client and server apart, in one process.

    DATABASE_URL=postgres://... REDIS_URL=redis://... \
        .venv/bin/python benchmarks/engine_cpu.py [--items 5000] [--batch-size 100]
        [--repeat 3] [--profile out.prof]

No cluster: `run_start` with N inputs, then every queued step run of the run is
executed in this process (`step_run_execute`) until the run is completed, so the
client's CPU is this process's (`time.process_time`) and the server's is the one
backend's (`/proc/<pg_backend_pid>/stat`, PostgreSQL on this host only; on
SQLite the database works in this process, so its CPU is the client's). Also
counted: the statements the client sent and their wall time. `--profile` writes
a cProfile of the last repeat's step runs. Throughput on a 2-core box shared
with other sessions drifts; CPU per item-step is what compares.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.setup import django_for_benchmark  # noqa: E402


def backend_cpu(pid: int | None) -> float:
    """Seconds of CPU (user + system) of the server process `pid` (None: no server
    process, 0)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", default="")
    args = parser.parse_args()

    django_for_benchmark(workers=1, cluster_name="cpu")
    from django.db import connection

    from automations.definitions import automation_import
    from runs.engine.step_runs import step_run_execute
    from runs.models import Run, StepRun
    from runs.services import run_start
    from runs.states import RunState, StepRunState

    automation = automation_import(
        {
            "slug": f"cpu-{args.batch_size}",
            "name": "CPU",
            "publish": True,
            "steps": [
                {
                    "name": f"echo {i}",
                    "action": "builtin.echo",
                    "batch_size": args.batch_size,
                }
                for i in (1, 2, 3)
            ],
        }
    ).automation
    # SQLite runs in this process: its work is in the client's CPU, server 0
    pid = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
    inputs = [{"subject": f"item-{i}", "n": i} for i in range(args.items)]
    statements = {"n": 0, "seconds": 0.0}

    def counted(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements["n"] += 1
            statements["seconds"] += time.perf_counter() - started

    item_steps = args.items * 3
    for repeat in range(args.repeat):
        run = run_start(automation=automation, inputs=inputs)
        profile = None
        if args.profile and repeat == args.repeat - 1:
            import cProfile

            profile = cProfile.Profile()
        statements.update(n=0, seconds=0.0)
        client, server, wall = (
            time.process_time(),
            backend_cpu(pid),
            time.perf_counter(),
        )
        with connection.execute_wrapper(counted):
            if profile:
                profile.enable()
            while True:
                queued = list(
                    StepRun.objects.filter(
                        run=run, state=StepRunState.QUEUED
                    ).values_list("pk", flat=True)
                )
                for pk in queued:
                    step_run_execute(pk)
                if not queued:
                    break
            if profile:
                profile.disable()
        wall = time.perf_counter() - wall
        client = time.process_time() - client
        server = backend_cpu(pid) - server
        state = Run.objects.values_list("state", flat=True).get(pk=run.pk)
        assert state == RunState.COMPLETED, state
        us = 1e6 / item_steps
        print(
            f"{item_steps} item-steps, batch {args.batch_size}: {wall:.2f}s wall "
            f"({item_steps / wall:,.0f}/s in one process); CPU per item-step: "
            f"client {client * us:.0f} us, server {server * us:.0f} us; "
            f"{statements['n']} statements "
            f"({statements['n'] / (item_steps / args.batch_size):.1f} per batch), "
            f"{statements['seconds'] * us:.0f} us of wall in them per item-step"
        )
        if profile:
            profile.dump_stats(args.profile)


if __name__ == "__main__":
    main()
