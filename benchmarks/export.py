"""Export: 1,000,000 run items through the streaming audit CSV and through
django-import-export, in one run. Prints rows per second and peak memory growth
of each, and the ratio. Bars: streaming >= 10x faster, growth < 50 MB.

    .venv/bin/python benchmarks/export.py [--items 1000000] [--subset 100000]

The database is a throwaway SQLite file in a temp dir (or DATABASE_URL). Rows are
inserted with the engine's `insert_rows` (executemany), but they are valid: every
run's run items carry the ledger's real hashes and the run holds the chain head,
so `verify_audit` accepts them. Layout: runs of 100 run items each (10 work items,
10 attempts per item), a run.created audit event per run.

django-import-export builds the whole export in memory (a tablib Dataset), so on
this 2-core box it is measured on `--subset` run items (the first runs) and its
time is extrapolated per row to the full size; the output says so. Each export
runs in a forked child, so its peak RSS (VmHWM) is its own.
"""

import argparse
import os
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "runs_project.settings")
# a throwaway database: a key made for this process (the settings need one)
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
if not os.environ.get("DATABASE_URL"):
    os.environ["RUNS_VAR_DIR"] = tempfile.mkdtemp(prefix="runs-export-bench-")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

ITEMS_PER_RUN = 100
WORK_ITEMS_PER_RUN = 10


def status_kb(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def setup(total_items: int):
    from automations.definitions import automation_import
    from runs.engine.bulk import work_item_row
    from runs.ledger import PreparedRunItems, _chain, audit_event
    from runs.models import AuditEvent, Run, Sequence, WorkItem
    from runs.sql import insert_rows

    call_command("migrate", verbosity=0)
    automation = automation_import(
        {
            "slug": "bench-export",
            "name": "Bench export",
            "publish": True,
            "steps": [
                {
                    "name": "notify",
                    "action": "builtin.echo",
                    "parameters": {"url": '=HYPERLINK("x")'},
                }
            ],
        }
    ).automation
    version = automation.latest_published_version()
    step = version.steps.get()
    runs = total_items // ITEMS_PER_RUN
    now = timezone.now()
    t0 = time.perf_counter()
    for first in range(1, runs + 1, 500):
        with transaction.atomic():
            batch = []
            for number in range(first, min(first + 500, runs + 1)):
                batch.append(
                    Run(
                        id=uuid.uuid4(),
                        number=number,
                        automation=automation,
                        version=version,
                        trigger_kind="api",
                        run_by_label="bench",
                        inputs=[],
                        state="completed",
                        created_at=now,
                        started_at=now,
                        completed_at=now,
                        total_items=WORK_ITEMS_PER_RUN,
                        actions_invoked=ITEMS_PER_RUN,
                        current_step="notify",
                    )
                )
            Run.objects.bulk_create(batch)
            insert_rows(
                WorkItem,
                [
                    {
                        **work_item_row(
                            run_id=run.pk,
                            step_id=step.pk,
                            payload={"subject": f"acct:{run.number}:{i}"},
                            subject=f"acct:{run.number}:{i}",
                            now=now,
                        ),
                        "state": "done",
                    }
                    for run in batch
                    for i in range(WORK_ITEMS_PER_RUN)
                ],
            )
            work_items = {}
            for run_id, pk in (
                WorkItem.objects.filter(run__in=[r.pk for r in batch])
                .values_list("run_id", "pk")
                .order_by("id")
            ):
                work_items.setdefault(run_id, []).append(pk)
            events, rows = [], []
            for run in batch:
                event = audit_event(
                    verb="run.created",
                    run=run,
                    actor_label="bench",
                    after={"state": "pending"},
                )
                seq, prev = _chain([event], 0, "")
                events.append(event)
                run_rows = []
                for n in range(ITEMS_PER_RUN):
                    wi = work_items[run.pk][n % WORK_ITEMS_PER_RUN]
                    failed = n % 10 == 9
                    run_rows.append(
                        {
                            "work_item_id": wi,
                            "subject": f"acct:{run.number}:{n % WORK_ITEMS_PER_RUN}",
                            "attempt": n // WORK_ITEMS_PER_RUN + 1,
                            "idempotency_key": f"{run.pk}:{wi}:{n}",
                            "outcome": "failed" if failed else "succeeded",
                            "result_ref": "" if failed else f"ref-{wi}",
                            "failure_type": "application" if failed else "",
                            "failure_cause": "upstream unavailable" if failed else "",
                            "started_at": now,
                        }
                    )
                shared = {
                    "run_id": run.pk,
                    "step_id": step.pk,
                    "step_run_id": None,
                    "action": "builtin.echo",
                    "parameters": {"url": '=HYPERLINK("x")'},
                    "finished_at": now,
                }
                rows.append((run, PreparedRunItems(shared, run_rows), seq, prev))
            AuditEvent.objects.bulk_create(events)
            for run, prepared, seq, prev in rows:
                run.ledger_seq, run.ledger_hash = prepared.link_and_insert(seq, prev)
            Run.objects.bulk_update(batch, ["ledger_seq", "ledger_hash"])
    Sequence.objects.update_or_create(name="run", defaults={"value": runs})
    return runs, time.perf_counter() - t0


def measure(label, work):
    """Run `work()` in a forked child; return (rows, seconds, peak RSS growth MB)."""
    connections.close_all()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        base = status_kb("VmRSS")
        t0 = time.perf_counter()
        rows = work()
        seconds = time.perf_counter() - t0
        growth = (status_kb("VmHWM") - base) / 1024
        os.write(write, f"{rows} {seconds} {growth}".encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 4096):
        data += chunk
    os.waitpid(pid, 0)
    rows, seconds, growth = data.split()
    return int(rows), float(seconds), float(growth)


def streaming(limit_runs=None):
    def work():
        from runs.exports import audit_csv
        from runs.models import Run

        runs = Run.objects.all()
        if limit_runs:
            runs = runs.filter(number__lte=limit_runs)
        lines = 0
        for chunk in audit_csv(runs):  # chunks of whole lines; no cell has a newline
            lines += chunk.count("\r\n")
        return lines - 1  # header

    return work


def import_export(limit_runs):
    def work():
        from import_export.formats.base_formats import CSV

        from runs.models import RunItem
        from runs.resources import RunItemResource

        rows = RunItem.objects.filter(run__number__lte=limit_runs).order_by(
            "run", "seq"
        )
        dataset = RunItemResource().export(queryset=rows)
        text = CSV().export_data(dataset)
        assert text
        return len(dataset)

    return work


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=100_000)
    args = parser.parse_args()
    print(f"database: {connections['default'].vendor}", flush=True)
    runs, seconds = setup(args.items)
    print(
        f"inserted {runs:,} runs, {runs * ITEMS_PER_RUN:,} run items "
        f"(+{runs:,} audit events) in {seconds:.1f}s",
        flush=True,
    )

    rows, s_time, s_mem = measure("streaming", streaming())
    s_rate = rows / s_time
    print(
        f"streaming audit CSV, all {rows:,} rows: {s_time:.1f}s, "
        f"{s_rate:,.0f} rows/s, peak RSS growth {s_mem:.1f} MB",
        flush=True,
    )

    subset_runs = args.subset // ITEMS_PER_RUN
    sub_rows, sub_time, sub_mem = measure("streaming subset", streaming(subset_runs))
    print(
        f"streaming audit CSV, subset {sub_rows:,} rows: {sub_time:.1f}s, "
        f"{sub_rows / sub_time:,.0f} rows/s, peak RSS growth {sub_mem:.1f} MB",
        flush=True,
    )

    ie_rows, ie_time, ie_mem = measure("import-export", import_export(subset_runs))
    ie_rate = ie_rows / ie_time
    print(
        f"django-import-export RunItemResource, subset {ie_rows:,} rows: "
        f"{ie_time:.1f}s, {ie_rate:,.0f} rows/s, peak RSS growth {ie_mem:.1f} MB",
        flush=True,
    )
    full = runs * ITEMS_PER_RUN
    print(
        f"django-import-export extrapolated per row to {full:,} rows: "
        f"{full / ie_rate:.0f}s, memory ~{ie_mem * full / ie_rows:,.0f} MB "
        "(it holds the whole Dataset in memory: growth scales with rows)"
    )
    ratio = s_rate / ie_rate
    print(
        f"speed ratio streaming / import-export: {ratio:.1f}x (bar >= 10x): "
        f"{'PASS' if ratio >= 10 else 'FAIL'}"
    )
    print(
        f"streaming peak memory growth on {rows:,} rows: {s_mem:.1f} MB "
        f"(bar < 50 MB): {'PASS' if s_mem < 50 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
