"""Approval deadlines: items nobody decided on in time fail (engine work, run by
housekeeping). Telling the approvers of items that begin to wait is
`runs.approvers`."""

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import ledger
from ..machines import work_items_move
from ..models import Run, WorkItem
from ..states import FailureType, IllegalTransition, WorkItemState
from .progress import run_progress

log = logging.getLogger("runs.engine")


def approvals_expire(now=None) -> int:
    """Items past their approval deadline fail (business: nobody decided in time)."""
    now = now or timezone.now()
    expired = WorkItem.objects.filter(
        state=WorkItemState.AWAITING_INPUT, approval_deadline__lt=now
    ).select_related("run")
    by_run: dict = {}
    for item in expired:
        by_run.setdefault(item.run_id, (item.run, []))[1].append(item.pk)
    count = 0
    for run, ids in by_run.values():
        try:
            _approvals_expire_run(run, ids)
        except IllegalTransition as exc:
            # Decided (or stopped) since it was read: its transaction rolled back,
            # and what is still awaiting input expires on the next pass. The other
            # runs go on.
            log.info("approvals of run %s not expired now: %s", run.number, exc)
            continue
        count += len(ids)
        run_progress(run)
    return count


def _approvals_expire_run(run: Run, ids: list[int]) -> None:
    """Fail the expired items of one run, all or none (IllegalTransition)."""
    events = [
        ledger.audit_event(
            verb="work_item.approval_expired",
            run=run,
            actor_label="engine",
            before={"work_item": pk, "state": WorkItemState.AWAITING_INPUT},
            after={"state": WorkItemState.FAILED},
        )
        for pk in ids
    ]
    with transaction.atomic():
        work_items_move(
            run,
            ids,
            WorkItemState.FAILED,
            allowed_from=frozenset({WorkItemState.AWAITING_INPUT}),
            updates={
                "failure_type": FailureType.BUSINESS,
                "failure_code": "approval_expired",
                "failure_message": "no decision before the approval deadline",
            },
            events=events,
            counters={"failed_items": F("failed_items") + len(ids)},
        )
