"""Prometheus metrics, computed from the database at scrape time.

Every value comes from rows every process shares (runs, step runs, run items,
deliveries, inbound messages, django-q2's schedule), so any gunicorn worker that
answers a scrape gives the same figures as any other, and a qcluster needs no
exporter of its own: correct across processes by construction, no
multiprocess-mode files. A scrape makes a fixed number of queries, whatever the
number of rows (`SCRAPE_QUERIES`), each named below with the index it uses.

Counters are counts of rows that are only ever added (step runs, run items,
inbound messages, SLA breaches); retention deleting old runs lowers them, which
Prometheus reads as a counter reset.
"""

from django.db import connection
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from ..conf import runs_settings
from ..states import RUN_ACTIVE, RunItemOutcome, RunState, WorkItemState
from . import health

# step runs are cut at RUNS_STEP_RUN_BUDGET_SECONDS (60 by default), so the
# buckets stop a little past it
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
WAITING_FOR_PEOPLE = (RunState.UNRESOLVED, RunState.AWAITING_INPUT)
# runs whose pending items are waiting for a worker (pending runs wait for
# admission, the active ones for a step run)
PENDING_ITEM_RUN_STATES = frozenset({RunState.PENDING, *RUN_ACTIVE})
SCRAPE_QUERIES = 8


def _run_counts():
    """Runs by automation and state, and whether the automation has a
    `max_concurrent_runs` (its pending runs wait for admission). One aggregate
    pass over the runs table joined to automations by primary key (every row
    counts, so no index narrows it; PostgreSQL reads it with a sequential or
    index-only scan); the limit is the automation's, so it adds no group."""
    from ..models import Run

    return (
        Run.objects.values_list(
            "automation__slug", "state", "automation__max_concurrent_runs"
        )
        .annotate(n=Count("pk"))
        .order_by()
    )


def _seconds_sql(vendor: str, start: str, end: str) -> str:
    """SQL for the seconds from `start` to `end` (two datetime columns), in the
    database's own functions: per row, without a Python function per value
    (Django's duration arithmetic on SQLite calls one, ten times slower).
    julianday's doubles are good to some tens of microseconds."""
    if vendor == "sqlite":
        return f"((julianday({end}) - julianday({start})) * 86400.0)"
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


def _step_runs():
    """Per (automation, step name): items processed, and the finished step runs'
    durations bucketed. One pass over the step runs table (one row per batch
    task, not per item), each duration computed once in a derived table and
    grouped by step; the few groups are then joined to steps, versions and
    automations by primary key for their names."""
    from automations.models import Automation, AutomationVersion, Step

    from ..models import StepRun

    vendor = connection.vendor
    qn = connection.ops.quote_name
    seconds = _seconds_sql(vendor, "started_at", "finished_at")
    bucket_sums = ", ".join(
        f"SUM(CASE WHEN d <= {bound!r} THEN 1 ELSE 0 END) AS b{i}"
        for i, bound in enumerate(DURATION_BUCKETS)
    )
    bucket_columns = ", ".join(f"t.b{i}" for i in range(len(DURATION_BUCKETS)))
    sql = f"""
        SELECT a.slug, s.name, t.processed, t.finished, t.seconds, {bucket_columns}
        FROM (
            SELECT step_id, SUM(items_processed) AS processed, COUNT(d) AS finished,
                   SUM(d) AS seconds, {bucket_sums}
            FROM (
                SELECT step_id, items_processed,
                       CASE WHEN finished_at IS NOT NULL AND started_at IS NOT NULL
                            THEN {seconds} END AS d
                FROM {qn(StepRun._meta.db_table)}
            ) per_step_run
            GROUP BY step_id
        ) t
        JOIN {qn(Step._meta.db_table)} s ON s.id = t.step_id
        JOIN {qn(AutomationVersion._meta.db_table)} v ON v.id = s.version_id
        JOIN {qn(Automation._meta.db_table)} a ON a.id = v.automation_id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    # one step name in several versions: one series
    merged: dict[tuple, list] = {}
    for slug, step, processed, finished, seconds, *buckets in rows:
        # PostgreSQL sums are Decimals: counts as int, seconds as float
        numbers = [
            int(processed or 0),
            int(finished or 0),
            float(seconds or 0),
            *(int(n or 0) for n in buckets),
        ]
        if (slug, step) in merged:
            merged[(slug, step)] = [
                a + b for a, b in zip(merged[(slug, step)], numbers)
            ]
        else:
            merged[(slug, step)] = numbers
    return [(slug, step, *numbers) for (slug, step), numbers in sorted(merged.items())]


def _failed_items():
    """Failed attempts per (automation, step name): run items with outcome
    failed, read through the partial index run_item_failed_step (only failed
    rows are in it)."""
    from ..models import RunItem

    return (
        RunItem.objects.filter(outcome=RunItemOutcome.FAILED)
        .values_list("step__version__automation__slug", "step__name")
        .annotate(n=Count("pk"))
        .order_by()
    )


def _oldest_pending(now):
    """Per automation, when its longest-waiting due pending item became
    available. Runs in a pending or active state by run_state_number, then their
    items by work_item_claim (run first); finished runs' items are never read."""
    from ..models import WorkItem

    return (
        WorkItem.objects.filter(
            state=WorkItemState.PENDING,
            available_at__lte=now,
            run__state__in=PENDING_ITEM_RUN_STATES,
        )
        .values_list("run__automation__slug")
        .annotate(oldest=Min("available_at"))
        .order_by()
    )


def _webhook_deliveries():
    """Pending (the backlog) and given-up deliveries, with the oldest pending:
    the status prefix of webhook_delivery_due (delivered rows are not read)."""
    from ..webhooks.models import DeliveryStatus, WebhookDelivery

    return (
        WebhookDelivery.objects.filter(
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED]
        )
        .values_list("status")
        .annotate(n=Count("pk"), oldest=Min("created_at"))
        .order_by()
    )


def _email_outcomes():
    """Inbound messages by outcome and reason: inbound_outcome (outcome, reason,
    received_at) covers it."""
    from ..mail.models import InboundMessage

    return (
        InboundMessage.objects.values_list("outcome", "reason")
        .annotate(n=Count("pk"))
        .order_by()
    )


def _sla_breaches():
    """SLA breaches by automation and kind: the breach table (one row per
    breached run) joined to runs and automations by primary key."""
    from .models import RunSlaBreach

    return (
        RunSlaBreach.objects.values_list("run__automation__slug", "kind")
        .annotate(n=Count("pk"))
        .order_by()
    )


class RunsCollector:
    """A prometheus-client custom collector: every scrape reads the database."""

    def describe(self):
        # nothing to describe up front: registering must not query the database
        return []

    def collect(self):
        now = timezone.now()
        yield from self._runs()
        yield from self._steps()
        yield from self._pending(now)
        yield from self._webhooks(now)
        yield from self._email()
        yield from self._sla()
        yield from self._workers(now)

    def _runs(self):
        runs = GaugeMetricFamily(
            "runs_runs", "Runs by automation and state.", labels=["automation", "state"]
        )
        waiting = GaugeMetricFamily(
            "runs_runs_waiting_for_people",
            "Runs that wait for a person: unresolved or awaiting input.",
            labels=["automation"],
        )
        admission = GaugeMetricFamily(
            "runs_runs_waiting_admission",
            "Runs that wait for a slot of their automation's max_concurrent_runs "
            "(pending, of an automation with a limit).",
            labels=["automation"],
        )
        per_automation, per_limit = {}, {}
        for slug, state, limit, n in _run_counts():
            runs.add_metric([slug, state], n)
            per_automation.setdefault(slug, 0)
            per_limit.setdefault(slug, 0)
            if state in WAITING_FOR_PEOPLE:
                per_automation[slug] += n
            # a pending run of an automation without a limit is on its way to a
            # worker (its step run is queued); with one, it waits for a slot
            if state == RunState.PENDING and limit is not None:
                per_limit[slug] += n
        for slug, n in sorted(per_automation.items()):
            waiting.add_metric([slug], n)
        for slug, n in sorted(per_limit.items()):
            admission.add_metric([slug], n)
        yield runs
        yield waiting
        yield admission

    def _steps(self):
        labels = ["automation", "step"]
        processed = CounterMetricFamily(
            "runs_step_items_processed",
            "Work item attempts the step's step runs processed.",
            labels=labels,
        )
        failed = CounterMetricFamily(
            "runs_step_items_failed",
            "Failed work item attempts of the step (each retried failure counts).",
            labels=labels,
        )
        durations = HistogramMetricFamily(
            "runs_step_run_duration_seconds",
            "Time from a step run's start to its end (finished step runs).",
            labels=labels,
        )
        for row in _step_runs():
            slug, step, total, count, seconds, *bucket_counts = row
            processed.add_metric([slug, step], total or 0)
            buckets = [
                (repr(bound), n) for bound, n in zip(DURATION_BUCKETS, bucket_counts)
            ]
            buckets.append(("+Inf", count))
            durations.add_metric([slug, step], buckets, float(seconds))
        for slug, step, n in _failed_items():
            failed.add_metric([slug, step], n)
        yield processed
        yield failed
        yield durations

    def _pending(self, now):
        oldest = GaugeMetricFamily(
            "runs_oldest_pending_item_age_seconds",
            "How long the longest-waiting pending item (due, of a pending or "
            "active run) has waited for a worker.",
            labels=["automation"],
        )
        for slug, available_at in _oldest_pending(now):
            oldest.add_metric([slug], max(0.0, (now - available_at).total_seconds()))
        yield oldest

    def _webhooks(self, now):
        from ..webhooks.models import DeliveryStatus

        rows = {status: (n, first) for status, n, first in _webhook_deliveries()}
        pending, first = rows.get(DeliveryStatus.PENDING, (0, None))
        yield GaugeMetricFamily(
            "runs_webhook_backlog", "Webhook deliveries not yet delivered.", pending
        )
        yield GaugeMetricFamily(
            "runs_webhook_oldest_pending_age_seconds",
            "Age of the oldest undelivered webhook delivery (0: none).",
            max(0.0, (now - first).total_seconds()) if first else 0.0,
        )
        yield GaugeMetricFamily(
            "runs_webhook_deliveries_failed",
            "Webhook deliveries given up after their last attempt.",
            rows.get(DeliveryStatus.FAILED, (0, None))[0],
        )

    def _email(self):
        messages = CounterMetricFamily(
            "runs_email_messages",
            "Messages met by the e-mail trigger, by outcome and rejection reason.",
            labels=["outcome", "reason"],
        )
        for outcome, reason, n in _email_outcomes():
            messages.add_metric([outcome, reason], n)
        yield messages

    def _sla(self):
        breaches = CounterMetricFamily(
            "runs_sla_breaches",
            "Runs that broke their SLA (lead time or pending age), once each.",
            labels=["automation", "kind"],
        )
        for slug, kind, n in _sla_breaches():
            breaches.add_metric([slug, kind], n)
        yield breaches

    def _workers(self, now):
        overdue = health.housekeeping_overdue_seconds(now)
        try:
            alive = health.clusters_alive()
        except Exception:  # noqa: BLE001 - a down Redis is /readyz's to report
            alive = None
        if alive is None:
            # the ORM broker with a per-process cache: only "some cluster fired
            # the housekeeping schedule on time" can be known
            on_time = overdue is not None and (
                overdue <= runs_settings.READY_CLUSTER_SECONDS
            )
            alive = int(on_time)
        yield GaugeMetricFamily(
            "runs_worker_clusters_alive",
            "django-q2 clusters reporting now (with the ORM broker and a "
            "per-process cache: 1 if one fired housekeeping on time, else 0).",
            alive,
        )
        yield GaugeMetricFamily(
            "runs_housekeeping_overdue_seconds",
            "How long the housekeeping schedule has been due without a cluster "
            "firing it (0: on time).",
            overdue or 0.0,
        )


registry = CollectorRegistry(auto_describe=False)
registry.register(RunsCollector())
