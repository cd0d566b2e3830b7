"""Step run state machine (engine-internal: its moves are not audit events)."""

from django.db import transaction

from ..models import StepRun, WorkItem
from ..states import (
    STEP_RUN_TRANSITIONS,
    IllegalTransition,
    StepRunState,
    WorkItemState,
)
from .work_item import LeaseLost


def step_run_move(
    step_run: StepRun,
    to: str,
    *,
    lease_token=None,
    updates: dict | None = None,
) -> bool:
    """Move a step run; with `lease_token`, only while it still holds that lease.

    Returns False (nothing written) when the fence does not match: a stale worker's
    move changes nothing. Raises IllegalTransition when the state does not allow it.
    """
    allowed = STEP_RUN_TRANSITIONS[to]
    query = StepRun.objects.filter(pk=step_run.pk, state__in=allowed)
    if lease_token is not None:
        query = query.filter(lease_token=lease_token)
    with transaction.atomic():
        changed = query.update(state=to, **(updates or {}))
        if not changed:
            current = (
                StepRun.objects.filter(pk=step_run.pk)
                .values_list("state", "lease_token")
                .first()
            )
            if current is None:
                raise StepRun.DoesNotExist(f"step run {step_run.pk} does not exist")
            state, token = current
            if lease_token is not None and token != lease_token:
                return False
            raise IllegalTransition(step_run, state, to)
    step_run.state = to
    for name, value in (updates or {}).items():
        setattr(step_run, name, value)
    return True


def step_runs_end(run, *, frm: str, to: str, updates: dict | None = None) -> int:
    """Move every step run of `run` that is in state `frm` to `to` (a run stopped,
    failed or timed out: its queued step runs are cancelled, its running ones
    failed). Refused when the machine does not allow frm -> to."""
    if frm not in STEP_RUN_TRANSITIONS[to]:
        raise IllegalTransition(StepRun(), frm, to)
    fields = {"state": to, **(updates or {})}
    if to not in (StepRunState.QUEUED, StepRunState.RUNNING):
        fields.setdefault("lease_token", None)
        fields.setdefault("lease_expires_at", None)
    return StepRun.objects.filter(run=run, state=frm).update(**fields)


def step_run_lease_extend(step_run_id: int, token, expires) -> None:
    """The heartbeat: extend the lease of a running step run and of the items it
    holds, fenced by its lease token (LeaseLost, nothing written, once it lost it).
    The items first, then the step run: the order every writer takes them in."""
    with transaction.atomic():
        WorkItem.objects.filter(
            lease_token=token, state=WorkItemState.IN_PROGRESS
        ).update(lease_expires_at=expires)
        if not StepRun.objects.filter(
            pk=step_run_id, lease_token=token, state=StepRunState.RUNNING
        ).update(lease_expires_at=expires):
            raise LeaseLost(f"step run {step_run_id} no longer holds its lease")
