"""Periodic housekeeping: nothing is left in progress, waiting or queued forever.

Each part of a pass is isolated (`housekeeping_part`): one that fails is logged and
named under `errors` in the pass's report, and the other parts still run, so one
bad row (a trigger, a run) never stops the rest of housekeeping.
"""

import contextlib
import logging

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from runs.conf import runs_settings

from ..evidence.checkpoints import checkpoints_sign
from ..models import Run, StepRun
from ..ops.sla import sla_breaches_check
from ..states import RUN_ACTIVE, STEP_RUN_ACTIVE, RunState, StepRunState, WorkItemState
from .admission import admissions_sweep
from .approvals import approvals_expire
from .children import jobs_collect
from .dispatch import enqueue
from .progress import leases_reap, run_progress, run_terminating_expired, run_time_out

log = logging.getLogger("runs.engine")

HOUSEKEEPING_TASK = "runs.tasks.housekeeping"


def housekeeping_part(report: dict, name: str, part, *args) -> None:
    """`report[name] = part(*args)`, or, when it raises, the error logged and
    named in `report["errors"][name]`: the caller goes on with its next part.

    Each part commits its own writes; inside a transaction already (a test, a
    caller's atomic block) it gets a savepoint, so that a failed statement does not
    abort the parts after it.
    """
    block = (
        transaction.atomic()
        if connection.in_atomic_block
        else (contextlib.nullcontext())
    )
    try:
        with block:
            report[name] = part(*args)
    except Exception as exc:
        log.exception("housekeeping: %s failed; the other parts go on", name)
        report.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"[:500]


def housekeeping() -> dict:
    """One pass: expired leases, lost tasks, run timeouts, stuck terminations,
    approval deadlines, runs whose items came out of backoff, waiting runs with a
    free slot, and jobs whose child runs settled."""
    now = timezone.now()
    report: dict = {}
    housekeeping_part(report, "leases", leases_reap, now)
    housekeeping_part(report, "requeued", _requeue_lost, now)
    housekeeping_part(report, "timed_out", _time_out, now)
    housekeeping_part(report, "terminating_failed", _terminating_expire, now)
    housekeeping_part(report, "approvals_expired", approvals_expire, now)
    housekeeping_part(report, "progressed", _progress_idle, now)
    # waiting runs where a slot is free (a limit raised or removed; the safety net
    # of the admission done when a run ends)
    housekeeping_part(report, "admitted", admissions_sweep)
    housekeeping_part(report, "jobs_collected", jobs_collect)
    # signed heads of the ledger chains that moved (docs/evidence.md)
    housekeeping_part(report, "checkpoints", checkpoints_sign)
    housekeeping_part(report, "sla_breached", sla_breaches_check, now)
    return report


def _requeue_lost(now) -> int:
    # A queued step run nobody picked up within a lease (the Redis broker loses
    # tasks when a worker dies): queue it again. A duplicate finds it taken.
    stale = now - timezone.timedelta(seconds=runs_settings.LEASE_SECONDS)
    lost = StepRun.objects.filter(state=StepRunState.QUEUED, queued_at__lt=stale)
    requeued = 0
    for step_run_id in lost.values_list("pk", flat=True):
        with transaction.atomic():
            StepRun.objects.filter(pk=step_run_id).update(queued_at=now)
            enqueue(step_run_id)
        requeued += 1
    return requeued


def _time_out(now) -> int:
    timed_out = Run.objects.filter(state__in=RUN_ACTIVE, deadline_at__lt=now).exclude(
        state__in=[RunState.STOPPING, RunState.TERMINATING]
    )
    return sum(run_time_out(run) for run in timed_out.select_related("version"))


def _terminating_expire(now) -> int:
    limit = runs_settings.TERMINATING_TIMEOUT_SECONDS
    stuck = Run.objects.filter(
        state=RunState.TERMINATING,
        stop_requested_at__lt=now - timezone.timedelta(seconds=limit),
    )
    return sum(run_terminating_expired(run, limit) for run in stuck)


def _progress_idle(now) -> int:
    # Runs with work due and no step run, or with nothing left in flight.
    idle = (
        Run.objects.filter(state__in=RUN_ACTIVE)
        .filter(
            Q(
                work_items__state=WorkItemState.PENDING,
                work_items__available_at__lte=now,
            )
            | Q(state__in=[RunState.STOPPING, RunState.TERMINATING])
        )
        .exclude(step_runs__state__in=STEP_RUN_ACTIVE)
        .distinct()
    )
    progressed = 0
    for run in idle:
        run_progress(run)
        progressed += 1
    return progressed


def housekeeping_schedule_sync() -> None:
    """Keep one django-q2 schedule that runs housekeeping (at its one-minute floor)."""
    from django_q.models import Schedule

    minutes = max(1, runs_settings.HOUSEKEEPING_SECONDS // 60)
    Schedule.objects.update_or_create(
        name="runs:housekeeping",
        defaults={
            "func": HOUSEKEEPING_TASK,
            "schedule_type": Schedule.MINUTES,
            "minutes": minutes,
            "repeats": -1,
        },
    )
