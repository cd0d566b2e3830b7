"""SLA alerts: a run past its automation's lead time, or with a work item pending
too long, tells the owners and fires `run.sla_breached`, once per run.

Two thresholds:
- lead time: `Automation.sla_seconds` (definition key `"sla_seconds"`); a run that
  is still unfinished that long after it was created, or that finished later
  than that (seen within LATE_FINISH_LOOKBACK of its deadline);
- pending age: RUNS_SLA_PENDING_SECONDS (unset: off); a due pending item of a
  pending or active run that has waited that long for a worker.

Housekeeping calls `sla_breaches_check` every pass. The RunSlaBreach row (its
primary key is the run) is the claim: it is written with the notifications and
the webhook deliveries in one transaction, so a second pass, or a second
cluster's housekeeping at the same time, finds the run taken and sends nothing.
"""

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Min
from django.utils import timezone

from ..conf import runs_settings
from ..states import RUN_ACTIVE, RunState, WorkItemState
from .models import RunSlaBreach, SlaKind

log = logging.getLogger("runs.ops")

# runs that have not finished (unresolved counts as finished: its lead time is
# known, and people are told about it as unresolved)
OPEN_RUN_STATES = frozenset({RunState.PENDING, *RUN_ACTIVE})
# a run that ended after its deadline is still alerted if a pass sees it within
# this long of the deadline (a pass that saw it open already has)
LATE_FINISH_LOOKBACK = timedelta(hours=1)


def _lead_time_breaches(now) -> dict:
    """{run id: (seconds, limit)} of runs past their automation's sla_seconds."""
    from automations.models import Automation

    from ..models import Run

    found = {}
    slas = dict(
        Automation.objects.filter(sla_seconds__isnull=False).values_list(
            "pk", "sla_seconds"
        )
    )
    if not slas:
        return found
    # open runs (run_state_number: few rows, whatever the history)
    for run_id, automation_id, created_at in Run.objects.filter(
        state__in=OPEN_RUN_STATES,
        automation_id__in=slas,
        sla_breach__isnull=True,
    ).values_list("pk", "automation_id", "created_at"):
        limit = slas[automation_id]
        age = (now - created_at).total_seconds()
        if age > limit:
            found[run_id] = (age, limit)
    # runs that finished late, with their deadline in the last lookback
    # (run_created_at: a bounded range per automation)
    for automation_id, limit in slas.items():
        deadline = now - timedelta(seconds=limit)
        late = Run.objects.filter(
            automation_id=automation_id,
            created_at__gte=deadline - LATE_FINISH_LOOKBACK,
            created_at__lt=deadline,
            completed_at__gt=F("created_at") + timedelta(seconds=limit),
            sla_breach__isnull=True,
        ).values_list("pk", "created_at", "completed_at")
        for run_id, created_at, completed_at in late:
            found.setdefault(
                run_id, ((completed_at - created_at).total_seconds(), limit)
            )
    return found


def _pending_age_breaches(now) -> dict:
    """{run id: (seconds, limit)} of runs with a due item pending over
    RUNS_SLA_PENDING_SECONDS (runs by run_state_number, their items by
    work_item_claim)."""
    from ..models import WorkItem

    limit = runs_settings.SLA_PENDING_SECONDS
    if not limit:
        return {}
    rows = (
        WorkItem.objects.filter(
            state=WorkItemState.PENDING,
            available_at__lt=now - timedelta(seconds=limit),
            run__state__in=OPEN_RUN_STATES,
            run__sla_breach__isnull=True,
        )
        .values_list("run_id")
        .annotate(oldest=Min("available_at"))
        .order_by()
    )
    return {run_id: ((now - oldest).total_seconds(), limit) for run_id, oldest in rows}


def run_sla_breach(*, run, kind: str, seconds: float, limit: int) -> bool:
    """Record that `run` broke its SLA and tell the owners and the webhooks, unless
    it was recorded before. Returns whether this call recorded it."""
    from ..mail.models import NotificationMode
    from ..mail.notifications import (
        SLA_BREACHED,
        notifications_record,
        notifications_send,
    )
    from ..webhooks.models import SLA_BREACHED_EVENT
    from ..webhooks.services import deliveries_create

    try:
        with transaction.atomic():
            RunSlaBreach.objects.create(
                run=run, kind=kind, seconds=seconds, limit_seconds=limit
            )
            rows = notifications_record(run=run, state=SLA_BREACHED)
            deliveries_create(
                run_id=run.pk,
                before=run.state,
                after=run.state,
                event=SLA_BREACHED_EVENT,
            )
            immediate = [r.pk for r in rows if r.mode == NotificationMode.IMMEDIATE]
            if immediate:
                # a send lost to a crash stays in the outbox: notifications_send_due
                transaction.on_commit(lambda: notifications_send(ids=immediate))
    except IntegrityError:
        return False  # another pass took it
    log.warning(
        "run %s of %s broke its SLA (%s: %.0fs over a limit of %ss)",
        run.number,
        run.automation.slug,
        kind,
        seconds,
        limit,
        extra={"run_id": str(run.pk)},
    )
    return True


def sla_breaches_check(now=None) -> int:
    """One housekeeping pass: record every new breach. Never raises (a broken
    check must not stop the rest of housekeeping); returns breaches recorded."""
    from ..models import Run

    now = now or timezone.now()
    try:
        found = {
            run_id: (SlaKind.PENDING_AGE, *seen)
            for run_id, seen in _pending_age_breaches(now).items()
        }
        # a run over both thresholds is one breach, named by its lead time
        found.update(
            (run_id, (SlaKind.LEAD_TIME, *seen))
            for run_id, seen in _lead_time_breaches(now).items()
        )
        recorded = 0
        runs = Run.objects.select_related("automation").filter(pk__in=list(found))
        for run in runs.order_by("number"):
            kind, seconds, limit = found[run.pk]
            recorded += run_sla_breach(run=run, kind=kind, seconds=seconds, limit=limit)
        return recorded
    except Exception:
        log.exception("SLA check failed")
        return 0
