"""An attempt ended: the one retry rule, and the failed attempt as a run item.

Python actions, robot releases, robots that exit holding an item and leases that
ran out all end an item's attempt here (the Python step run applies `retry_at` in
its bulk commit): an application error sends the item back to pending after the
step's backoff while attempts are left, and fails it after the last one.
"""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import ledger
from ..models import RunItem, WorkItem
from ..secrets.references import redactor_for
from ..states import FailureType, RunItemOutcome, WorkItemState
from .work_item import HELD_UNTIL, work_items_move

IN_PROGRESS = frozenset({WorkItemState.IN_PROGRESS})


def retry_backoff(step, attempt: int) -> float | None:
    """Seconds before the next attempt of an item whose attempt number `attempt`
    failed with an application error (the step's backoff, doubled per attempt), or
    None when that was its last attempt."""
    if attempt >= step.max_attempts:
        return None
    return step.retry_backoff_seconds * 2 ** (attempt - 1)


def retry_at(step, attempt: int, now):
    """When the item is due again after a failed attempt `attempt`; None: failed."""
    backoff = retry_backoff(step, attempt)
    if backoff is None:
        return None
    return now + timezone.timedelta(seconds=backoff)


def attempt_run_item(
    run,
    step,
    item,
    *,
    step_run_id,
    outcome,
    now,
    failure_type="",
    cause="",
    result_ref="",
) -> RunItem:
    """The run item recording how one attempt of `item` at `step` ended."""
    return RunItem(
        run=run,
        work_item_id=item.pk,
        step=step,
        step_run_id=step_run_id,
        action=step.action,
        subject=item.subject,
        parameters=step.parameters,
        attempt=item.attempts,
        idempotency_key=ledger.idempotency_key(run.pk, item.pk, step.action),
        outcome=outcome,
        result_ref=result_ref,
        failure_type=failure_type,
        failure_cause=cause,
        started_at=item.updated_at,
        finished_at=now,
    )


def attempts_fail(
    run,
    step,
    items,
    *,
    token,
    code: str,
    cause: str,
    step_run_id=None,
    failure_type: str = FailureType.APPLICATION,
    retry: bool = True,
    counters: dict | None = None,
    keep_failed_outputs: bool = False,
) -> tuple[list[int], list[int]]:
    """End the in-progress attempt of `items` (all of `step`, leased under `token`)
    as failed: each gets a failed run item; application errors go back to pending
    after the step's backoff while attempts are left (and `retry`), everything
    else fails. Outputs a robot made during an attempt that is retried are dropped
    with it (the next attempt makes them again); those of an item that failed for
    good too, unless `keep_failed_outputs` (a robot released the item as failed:
    the caller lets its outputs on, as Control Room does). Returns (retried ids,
    failed ids); raises LeaseLost (nothing written) when any item is no longer
    leased under `token`."""
    now = timezone.now()
    # a robot's release message, an engine error: no value of the step's secrets
    cause = redactor_for(step.parameters).text(cause)[:4000]
    failure = {
        "failure_type": failure_type,
        "failure_code": code[:100],
        "failure_message": cause,
    }
    due: dict = {}  # retry time -> ids
    failed, run_items = [], []
    for item in items:
        at = (
            retry_at(step, item.attempts, now)
            if (retry and failure_type == FailureType.APPLICATION)
            else None
        )
        (due.setdefault(at, []) if at is not None else failed).append(item.pk)
        run_items.append(
            attempt_run_item(
                run,
                step,
                item,
                now=now,
                outcome=RunItemOutcome.FAILED,
                step_run_id=step_run_id or item.lease_owner_id,
                failure_type=failure_type,
                cause=cause,
            )
        )
    counters = {"failed_items": F("failed_items") + len(failed), **(counters or {})}
    with transaction.atomic():
        for at, ids in due.items():
            work_items_move(
                run,
                ids,
                WorkItemState.PENDING,
                fence_token=token,
                allowed_from=IN_PROGRESS,
                updates={**failure, "available_at": at},
            )
        if failed:
            work_items_move(
                run,
                failed,
                WorkItemState.FAILED,
                fence_token=token,
                allowed_from=IN_PROGRESS,
                updates=failure,
            )
        retried = [pk for ids in due.values() for pk in ids]
        dropped = held_outputs_drop(retried + ([] if keep_failed_outputs else failed))
        if dropped:
            counters["total_items"] = F("total_items") - dropped
        ledger.append(run=run, run_items=run_items, counters=counters)
    return retried, failed


def held_outputs_drop(parent_ids: list[int]) -> int:
    """Delete the outputs still held for `parent_ids` (a robot made them during an
    attempt that failed: they never reached the next step) and their files; return
    how many. The caller holds the run's lock and adjusts its counters."""
    held = WorkItem.objects.filter(
        parent_id__in=parent_ids, state=WorkItemState.PENDING, available_at=HELD_UNTIL
    )
    outputs = list(held.prefetch_related("files"))
    if not outputs:
        return 0
    files = [stored.file for output in outputs for stored in output.files.all()]
    WorkItem.objects.filter(pk__in=[o.pk for o in outputs]).delete()
    # the stored files go once the rows are gone for good
    transaction.on_commit(lambda: [f.storage.delete(f.name) for f in files if f.name])
    return len(outputs)
