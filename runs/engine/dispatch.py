"""Creating step runs and handing them to django-q2 after commit."""

import logging
import math
import os
from contextlib import nullcontext

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from automations.models import Step

from .. import ledger
from ..models import Run, StepRun, WorkItem
from ..states import STEP_RUN_ACTIVE, RunState, WorkItemState

log = logging.getLogger("runs.engine")

STEP_RUN_TASK = "runs.tasks.step_run_execute"


_brokers: dict = {}


def _broker():
    """This process's django-q2 broker. `async_task` builds a broker per call unless
    given one, and django-q2's Redis broker opens a new connection pool, so a new
    connection to Redis, each time: a trigger paid for a TCP connect. Keyed by
    process (a forked worker makes its own) and by the broker's settings."""
    from django_q.brokers import get_broker
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf

    key = (os.getpid(), Conf.CLUSTER_NAME, repr(Conf.REDIS), Conf.ORM)
    broker = _brokers.get(key)
    if broker is None:
        _brokers.clear()
        broker = get_broker()
        if type(broker) is ORM:
            broker = _orm_broker_class()(list_key=broker.list_key)
        _brokers[key] = broker
    return broker


def _orm_broker_class():
    """django-q2's ORM broker whose `enqueue` writes the task row in one plain
    INSERT: through the ORM (`OrmQ.objects.create`) the statement was compiled for
    every task, a tenth of an API trigger's time. The row is the one django-q2
    writes (its cluster name, the signed payload, unlocked now); everything else,
    the cluster's dequeue among it, is django-q2's own."""
    from django.db import connections
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf
    from django_q.models import OrmQ

    class OrmBroker(ORM):
        def enqueue(self, task):
            database = connections[Conf.ORM]
            quote = database.ops.quote_name
            columns = ", ".join(quote(name) for name in ("key", "payload", "lock"))
            sql = (
                f"INSERT INTO {quote(OrmQ._meta.db_table)} ({columns}) "
                "VALUES (%s, %s, %s) RETURNING id"
            )
            now = database.ops.adapt_datetimefield_value(timezone.now())
            with database.cursor() as cursor:
                cursor.execute(sql, [self.list_key or Conf.CLUSTER_NAME, task, now])
                return cursor.fetchone()[0]

    return OrmBroker


def enqueue(step_run_id: int) -> None:
    """Queue the step run's task with the current transaction.

    On Redis (not transactional) the task is sent once the transaction commits. On
    django-q2's ORM broker its row is written in the transaction itself: committed
    with the step run or not at all, and on SQLite one write lock per trigger
    instead of two (the task row used to take the lock again after the commit).
    With Q_SYNC, where sending runs the task, it runs after the commit.

    The database is the truth: a task that is lost (Redis) is re-queued by
    housekeeping, and one delivered twice finds its step run taken and does nothing.
    """
    if (
        enqueue_writes_row()
        and transaction.get_connection(settings.Q_CLUSTER["orm"]).in_atomic_block
    ):
        _send(step_run_id)
        return
    transaction.on_commit(lambda: _send(step_run_id))


def enqueue_writes_row() -> bool:
    """True when a task is queued by a row written in the caller's transaction
    (django-q2's ORM broker, not run synchronously); False when it is sent after
    the commit (Redis, or Q_SYNC)."""
    return bool(settings.Q_CLUSTER.get("orm")) and not settings.Q_CLUSTER.get("sync")


def _send(step_run_id: int) -> None:
    # django_q.tasks loads django_q's models: importing it with this module
    # would need the app registry ready before runs.models is imported
    from django_q.tasks import async_task

    # django-q2's ORM broker closes "old" connections whenever it is called
    # outside a transaction, which in a request is the request's own connection:
    # it then reconnects for the rest of the request (and on SQLite the close
    # checkpoints the WAL). Called in a transaction, or in a block of its own, it
    # keeps the connection.
    orm_broker = settings.Q_CLUSTER.get("orm")
    outside = orm_broker and not transaction.get_connection(orm_broker).in_atomic_block
    with transaction.atomic(using=orm_broker) if outside else nullcontext():
        async_task(
            STEP_RUN_TASK,
            step_run_id,
            task_name=f"step-run-{step_run_id}",
            q_options={
                "timeout": settings.Q_CLUSTER.get("timeout"),
                "broker": _broker(),
            },
        )


def step_runs_ensure(run: Run, step) -> list[StepRun]:
    """Start step runs for `step` while it has pending items, up to its concurrency.

    Called whenever items become pending (run start, outputs of the step before,
    retries, approvals, housekeeping), so the next step starts as soon as its first
    items exist. The run row lock keeps two callers from overshooting concurrency.
    """
    with transaction.atomic():
        state = ledger.run_lock(run)
        if state not in (RunState.PENDING, RunState.RUNNING, RunState.AWAITING_INPUT):
            return []
        active = StepRun.objects.filter(
            run=run, step=step, state__in=STEP_RUN_ACTIVE
        ).count()
        room = step.concurrency - active
        if room <= 0:
            return []
        # items in backoff are not due yet: housekeeping starts them when they are
        pending = WorkItem.objects.filter(
            run=run,
            step=step,
            state=WorkItemState.PENDING,
            available_at__lte=timezone.now(),
        )[: room * step.batch_size].count()
        if not pending:
            return []
        wanted = min(room, math.ceil(pending / step.batch_size))
        return _step_runs_create(run, step, wanted)


def pending_step_runs_ensure(run: Run) -> None:
    """`step_runs_ensure` for every step of the run with pending items (a run
    that resumes, or a retried run admitted: its items may be of any step)."""
    step_ids = (
        WorkItem.objects.filter(run=run, state=WorkItemState.PENDING)
        .values_list("step_id", flat=True)
        .distinct()
        .order_by()
    )
    for step in Step.objects.filter(pk__in=list(step_ids)):
        step_runs_ensure(run, step)


def step_runs_start(run: Run, step, items: int) -> list[StepRun]:
    """The first step runs of a run created in the current transaction with `items`
    pending items of `step`, all due now: no step run exists yet and the run's
    insert already holds its row, so nothing needs re-reading or re-counting."""
    return _step_runs_create(run, step, first_step_runs_wanted(step, items))


def first_step_runs_wanted(step, items: int) -> int:
    """How many step runs a run's first `items` pending items of `step` start."""
    return min(step.concurrency, math.ceil(items / step.batch_size))


def _step_runs_create(run: Run, step, wanted: int) -> list[StepRun]:
    created = StepRun.objects.bulk_create(
        [StepRun(run=run, step=step) for _ in range(wanted)]
    )
    for step_run in created:
        enqueue(step_run.pk)
    return created
