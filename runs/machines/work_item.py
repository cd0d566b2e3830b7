"""Work item state machine: bulk conditional moves with their ledger rows."""

from django.db import transaction
from django.utils import timezone

from .. import ledger
from ..models import Run, WorkItem
from ..states import WORK_ITEM_TRANSITIONS, IllegalTransition, WorkItemState


class LeaseLost(Exception):
    """The step run no longer holds the lease on items it tried to write."""


def work_items_move(
    run: Run,
    ids: list[int],
    to: str,
    *,
    allowed_from: frozenset[str] | None = None,
    fence_token=None,
    updates: dict | None = None,
    run_items: list = (),
    events: list = (),
    counters: dict | None = None,
) -> int:
    """Move every item in `ids` (all of one run) to `to`, or none of them.

    With `fence_token`, only items still leased under that token move; a mismatch
    raises LeaseLost and rolls the caller's transaction back. The run items and audit
    events given are appended to the run's chain in the same transaction, with
    `counters` (run field updates) in the same UPDATE as the chain head.
    """
    allowed = WORK_ITEM_TRANSITIONS[to]
    if allowed_from is not None:
        allowed = allowed & frozenset(allowed_from)
    fields = {"state": to, "updated_at": timezone.now(), **(updates or {})}
    if to == WorkItemState.IN_PROGRESS:
        if not fields.get("lease_token"):
            raise ValueError("an item in progress needs a lease token")
    else:
        fields.update(lease_token=None, lease_owner=None, lease_expires_at=None)
    ids = list(ids)
    with transaction.atomic():
        query = WorkItem.objects.filter(pk__in=ids, run=run, state__in=allowed)
        if fence_token is not None:
            query = query.filter(lease_token=fence_token)
        changed = query.update(**fields) if ids else 0
        if changed != len(ids):
            if fence_token is not None:
                raise LeaseLost(
                    f"{len(ids) - changed} of {len(ids)} items are no longer leased "
                    "by this step run"
                )
            blocked = (
                WorkItem.objects.filter(pk__in=ids)
                .exclude(state__in=allowed)
                .values_list("pk", "state")[:5]
            )
            described = ", ".join(f"{pk} is {state}" for pk, state in blocked)
            missing = len(ids) - WorkItem.objects.filter(pk__in=ids, run=run).count()
            if missing:
                described = ", ".join(
                    filter(None, [described, f"{missing} not in run {run.number}"])
                )
            raise IllegalTransition(
                WorkItem(),
                "",
                to,
                reason=f"work items cannot move to {to}: {described}",
            )
        ledger.append(run=run, events=list(events), run_items=list(run_items), counters=counters)
    return changed
