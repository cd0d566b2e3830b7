"""Step run state machine (engine-internal: its moves are not audit events)."""

from django.db import transaction

from ..models import StepRun
from ..states import STEP_RUN_TRANSITIONS, IllegalTransition


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
