"""Periodic housekeeping: nothing is left in progress, waiting or queued forever."""

import logging

from django.db.models import Q
from django.utils import timezone

from runs.conf import runs_settings

from ..models import Run, StepRun
from ..ops.sla import sla_breaches_check
from ..states import RUN_ACTIVE, STEP_RUN_ACTIVE, RunState, StepRunState, WorkItemState
from .dispatch import enqueue
from .progress import leases_reap, run_progress, run_terminating_expired, run_time_out

log = logging.getLogger("runs.engine")

HOUSEKEEPING_TASK = "runs.tasks.housekeeping"


def housekeeping() -> dict:
    """One pass: expired leases, lost tasks, run timeouts, stuck terminations,
    approval deadlines, and runs whose items came out of backoff."""
    from ..services.operator import approvals_expire

    now = timezone.now()
    report = {"leases": leases_reap(now)}

    # A queued step run nobody picked up within a lease (the Redis broker loses
    # tasks when a worker dies): queue it again. A duplicate finds it taken.
    stale = now - timezone.timedelta(seconds=runs_settings.LEASE_SECONDS)
    lost = StepRun.objects.filter(state=StepRunState.QUEUED, queued_at__lt=stale)
    report["requeued"] = 0
    for step_run_id in lost.values_list("pk", flat=True):
        from django.db import transaction

        with transaction.atomic():
            StepRun.objects.filter(pk=step_run_id).update(queued_at=now)
            enqueue(step_run_id)
        report["requeued"] += 1

    timed_out = Run.objects.filter(state__in=RUN_ACTIVE, deadline_at__lt=now).exclude(
        state__in=[RunState.STOPPING, RunState.TERMINATING]
    )
    report["timed_out"] = sum(run_time_out(run) for run in timed_out.select_related("version"))

    limit = runs_settings.TERMINATING_TIMEOUT_SECONDS
    stuck = Run.objects.filter(
        state=RunState.TERMINATING,
        stop_requested_at__lt=now - timezone.timedelta(seconds=limit),
    )
    report["terminating_failed"] = sum(run_terminating_expired(run, limit) for run in stuck)

    report["approvals_expired"] = approvals_expire(now)

    # Runs with work due and no step run, or with nothing left in flight.
    idle = Run.objects.filter(state__in=RUN_ACTIVE).filter(
        Q(work_items__state=WorkItemState.PENDING, work_items__available_at__lte=now)
        | Q(state__in=[RunState.STOPPING, RunState.TERMINATING])
    ).exclude(
        step_runs__state__in=STEP_RUN_ACTIVE
    ).distinct()
    report["progressed"] = 0
    for run in idle:
        run_progress(run)
        report["progressed"] += 1
    report["sla_breached"] = sla_breaches_check(now)  # never raises
    return report


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
