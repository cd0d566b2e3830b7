"""Admin at scale: the runs changelist and a run page at 1,000 and 100,000 runs.

Prints, for each page: the number of SQL queries at both sizes (must be equal) and
the median time per request, and the time ratio 100k / 1k (bar: <= 1.5).

    .venv/bin/python benchmarks/admin_scale.py            # SQLite in a temp dir
    DATABASE_URL=postgresql://... .venv/bin/python benchmarks/admin_scale.py

Rows are bulk-inserted for speed, but they are valid rows: each run has two work
items, two run items and an audit event, chained with the ledger's real hashes
(`manage.py verify_audit` accepts them). It prints figures; it is not a test.
"""

import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "runs_project.settings")
# a throwaway database: a key made for this process (the settings need one)
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
if not os.environ.get("DATABASE_URL"):
    os.environ["RUNS_VAR_DIR"] = tempfile.mkdtemp(prefix="runs-admin-scale-")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

SIZES = (1_000, 100_000)
REPEATS = 25
# Shown for information, not under the bar: the dashboard's work grows with the
# runs of its 14-day window (the 100k data set has 100x more runs per day), not
# with the size of the table.
INFO_ONLY = {"admin index (dashboard)"}
BATCH = 5_000


def setup():
    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    from automations.definitions import automation_import

    automation = automation_import(
        {
            "slug": "bench-admin",
            "name": "Bench admin",
            "publish": True,
            "steps": [
                {"name": "check", "action": "builtin.echo"},
                {"name": "notify", "action": "builtin.echo"},
            ],
        }
    ).automation
    user = get_user_model().objects.create_superuser("bench", password="bench")
    return automation, user


def insert_runs(automation, start, count):
    """Bulk-insert `count` finished runs numbered from `start + 1`, with items and
    a valid ledger chain each."""
    from runs.ledger import _chain
    from runs.models import AuditEvent, Run, RunItem, Sequence, WorkItem

    version = automation.latest_published_version()
    steps = list(version.steps.order_by("order"))
    now = timezone.now()
    rng = random.Random(start)
    for offset in range(0, count, BATCH):
        runs, items, events, run_items = [], [], [], []
        for n in range(start + offset + 1, start + min(offset + BATCH, count) + 1):
            created = now - timedelta(minutes=rng.randint(0, 60 * 24 * 365))
            failed = rng.random() < 0.1
            run = Run(
                id=uuid.uuid4(),
                number=n,
                automation=automation,
                version=version,
                trigger_kind="api",
                run_by_label="bench",
                inputs=[{"subject": f"acct:{n}"}],
                state="unresolved" if failed else "completed",
                created_at=created,
                started_at=created,
                completed_at=created + timedelta(seconds=rng.randint(1, 600)),
                total_items=2,
                output_items=1,
                failed_items=int(failed),
                subjects_matched=1,
                actions_invoked=2,
                current_step=steps[-1].name,
                archived=rng.random() < 0.05,
            )
            runs.append(run)
            pair = [
                WorkItem(
                    run=run,
                    step=steps[0],
                    state="done",
                    subject=f"acct:{n}",
                    payload={"subject": f"acct:{n}"},
                    attempts=1,
                    created_at=created,
                    updated_at=created,
                    available_at=created,
                ),
                WorkItem(
                    run=run,
                    step=steps[1],
                    state="failed" if failed else "done",
                    subject=f"acct:{n}",
                    payload={"subject": f"acct:{n}"},
                    attempts=1,
                    failure_type="business" if failed else "",
                    failure_code="bench" if failed else "",
                    created_at=created,
                    updated_at=created,
                    available_at=created,
                ),
            ]
            items.append(pair)
            events.append(
                AuditEvent(
                    run=run,
                    chain=str(run.pk),
                    actor_label="bench",
                    verb="run.created",
                    object_type="runs.run",
                    object_id=str(run.pk),
                    after={"state": "pending"},
                    created_at=created,
                )
            )
        with transaction.atomic():
            Run.objects.bulk_create(runs, batch_size=1000)
            WorkItem.objects.bulk_create(
                [i for pair in items for i in pair], batch_size=1000
            )
            for run, pair, event in zip(runs, items, events):
                chain = [event]
                ris = [
                    RunItem(
                        run=run,
                        work_item=item,
                        step=item.step,
                        action="builtin.echo",
                        subject=item.subject,
                        attempt=1,
                        idempotency_key=f"{run.pk}:{item.pk}:builtin.echo",
                        outcome="failed" if item.state == "failed" else "succeeded",
                        failure_type=item.failure_type,
                        started_at=item.created_at,
                        finished_at=item.created_at,
                    )
                    for item in pair
                ]
                seq, head = _chain(chain, 0, "")
                seq, head = _chain(ris, seq, head)
                run.ledger_seq, run.ledger_hash = seq, head
                run_items.extend(ris)
            AuditEvent.objects.bulk_create(events, batch_size=1000)
            RunItem.objects.bulk_create(run_items, batch_size=1000)
            Run.objects.bulk_update(
                runs, ["ledger_seq", "ledger_hash"], batch_size=1000
            )
    Sequence.objects.update_or_create(name="run", defaults={"value": start + count})
    if connection.vendor == "postgresql" or connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def measure(client, url):
    """(queries, median CPU seconds, median wall seconds) of one GET of `url`.

    CPU time (time.process_time) is the figure compared: on a shared machine the
    wall clock also measures the other processes.
    """
    client.get(url)  # warm caches
    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    cpu, wall = [], []
    for _ in range(REPEATS):
        begin_cpu, begin = time.process_time(), time.perf_counter()
        client.get(url)
        cpu.append(time.process_time() - begin_cpu)
        wall.append(time.perf_counter() - begin)
    return len(queries), statistics.median(cpu), statistics.median(wall)


def main():
    from automations.services import workspace_grant
    from runs.models import Run

    automation, user = setup()
    client = Client()
    client.force_login(user)
    # a person with a role in the automation's workspace only (issue 15): their
    # lists are narrowed by the workspace rule, the superuser's are not
    member = get_user_model().objects.create_user("member", password="member")
    workspace_grant(user=member, workspace=automation.workspace, role="viewer")
    member_client = Client()
    member_client.force_login(member)
    pages = {
        "runs changelist": lambda: reverse("admin:runs_run_changelist"),
        "changelist, state filter": lambda: (
            reverse("admin:runs_run_changelist") + "?state__exact=unresolved"
        ),
        "changelist, search subject": lambda: (
            reverse("admin:runs_run_changelist") + f"?q=acct:{len_runs() // 2}"
        ),
        "run page": lambda: reverse(
            "admin:runs_run_change",
            args=[
                Run.objects.order_by("number").values_list("pk", flat=True)[
                    len_runs() // 2
                ]
            ],
        ),
        "admin index (dashboard)": lambda: reverse("admin:index"),
    }
    results = {}
    inserted = 0
    for size in SIZES:
        began = time.perf_counter()
        insert_runs(automation, inserted, size - inserted)
        inserted = size
        print(
            f"inserted {size:,} runs (+items, run items, audit events) in "
            f"{time.perf_counter() - began:.1f}s",
            flush=True,
        )
        for name, url in pages.items():
            results[(name, size)] = measure(client, url())
        results[(MEMBER, size)] = measure(
            member_client, reverse("admin:runs_run_changelist")
        )
    small, large = SIZES
    print(
        f"\nAdmin at scale ({connection.vendor}, median of {REPEATS} requests; "
        "ms = CPU ms, wall ms in brackets)"
    )
    print(
        f"{'page':28} {'queries 1k':>10} {'queries 100k':>12} {'ms 1k':>14} "
        f"{'ms 100k':>14} {'ratio':>6}"
    )
    worst = 0.0
    names = [*pages, MEMBER]
    for name in names:
        (q1, c1, w1), (q2, c2, w2) = results[(name, small)], results[(name, large)]
        ratio = c2 / c1
        if name in INFO_ONLY:
            flag = "  (information: grows with runs per day)"
        else:
            worst = max(worst, ratio)
            flag = "" if q1 == q2 and ratio <= 1.5 else "  <-- over the bar"
        print(
            f"{name:28} {q1:>10} {q2:>12} {c1 * 1000:>6.1f} ({w1 * 1000:>5.1f}) "
            f"{c2 * 1000:>6.1f} ({w2 * 1000:>5.1f}) {ratio:>6.2f}{flag}"
        )
    same = all(results[(n, small)][0] == results[(n, large)][0] for n in names)
    print(
        f"\nworst time ratio 100k/1k: {worst:.2f} (bar <= 1.5); query counts "
        f"{'equal' if same else 'DIFFER'}"
    )


MEMBER = "changelist, workspace member"


def len_runs():
    from runs.models import Run

    return Run.objects.order_by("-number").values_list("number", flat=True).first()


if __name__ == "__main__":
    main()
