"""What people (admin, API) do to runs: stop, retry, resolve, archive, re-run.

Deciding on items awaiting approval is `approvals`.

Each service validates, changes state only through `runs.machines`, records who did
it, and raises RunsError / IllegalTransition with a message for anything refused;
nothing is half-done.
"""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from automations.models import TriggerKind

from .. import ledger
from ..engine.admission import run_reopen
from ..engine.children import child_items_reset, children_stop
from ..engine.progress import job_move_on, run_progress
from ..machines import run_move, step_runs_end, work_items_move
from ..models import Run, WorkItem
from ..states import (
    RUN_RETRYABLE,
    IllegalTransition,
    RunState,
    StepRunState,
    StopPendingItems,
    StopStepRuns,
    WorkItemState,
)
from .corrections import failed_inputs, payloads_reread_write, subjects_reread
from .errors import InvalidRequest
from .starting import run_start

# isort: split


def _label(actor) -> str:
    return actor.get_username() if getattr(actor, "pk", None) else "system"


def run_stop(
    run: Run,
    *,
    actor=None,
    step_runs: str = StopStepRuns.COMPLETE,
    pending_items: str = StopPendingItems.FAILED,
    reason: str = "",
) -> Run:
    """Stop a run. `complete`: in-flight step runs finish, no new ones start.
    `terminate`: in-flight step runs stop at their next item and those items fail
    "terminated". Pending items end `failed` or `done` as asked."""
    if step_runs not in StopStepRuns.values:
        raise InvalidRequest(
            f"step_runs must be one of {', '.join(StopStepRuns.values)}"
        )
    if pending_items not in StopPendingItems.values:
        raise InvalidRequest(
            f"pending_items must be one of {', '.join(StopPendingItems.values)}"
        )
    now = timezone.now()
    stop = {
        "stop_requested_at": now,
        "stop_requested_by": actor if getattr(actor, "pk", None) else None,
        "stop_options": {
            "step_runs": step_runs,
            "pending_items": pending_items,
            "by": _label(actor),
        },
    }
    with transaction.atomic():
        current = ledger.run_lock(run)
        step_runs_end(
            run,
            frm=StepRunState.QUEUED,
            to=StepRunState.CANCELLED,
            updates={"finished_at": now},
        )
        if current == RunState.PENDING:
            Run.objects.filter(pk=run.pk).update(**stop)
            run.refresh_from_db()
            ledger.append(
                run=run,
                events=[
                    ledger.audit_event(
                        verb="run.stop_requested",
                        run=run,
                        actor=actor,
                        after=stop["stop_options"],
                        reason=reason,
                    )
                ],
            )
            from ..engine.progress import settle_stop

            settle_stop(run)
        else:
            target = (
                RunState.TERMINATING
                if step_runs == StopStepRuns.TERMINATE
                else RunState.STOPPING
            )
            allowed = {RunState.RUNNING, RunState.AWAITING_INPUT}
            if target == RunState.TERMINATING:
                allowed.add(RunState.STOPPING)  # escalate a stop that takes too long
            if current not in allowed:
                raise IllegalTransition(
                    run,
                    current,
                    target,
                    reason=f"run {run.number} is {current}: only a pending, running or "
                    "awaiting run can be stopped",
                )
            run_move(
                run,
                target,
                actor=actor,
                verb="run.stop_requested",
                reason=reason,
                allowed_from=frozenset(allowed),
                updates=stop,
                details=stop["stop_options"],
            )
    if current == RunState.PENDING:
        job_move_on(run)
        return run
    # a job's stop reaches its child runs (after the job's own move committed: the
    # child's lock is never taken under the job's)
    children_stop(run, actor=actor, step_runs=step_runs, pending_items=pending_items)
    run_progress(run)
    run.refresh_from_db()
    return run


def _failed_ids(run: Run, work_item_ids) -> list[int]:
    if work_item_ids is None:
        ids = list(
            WorkItem.objects.filter(run=run, state=WorkItemState.FAILED).values_list(
                "pk", flat=True
            )
        )
        if not ids:
            raise InvalidRequest(
                f"run {run.number} has no failed work items", code="nothing_to_do"
            )
        return ids
    if not isinstance(work_item_ids, (list, tuple, set)) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in work_item_ids
    ):
        raise InvalidRequest("work_items must be a list of work item ids")
    if not work_item_ids:
        raise InvalidRequest("work_items is empty")
    return sorted(set(work_item_ids))


def run_retry(
    run: Run,
    *,
    actor=None,
    work_item_ids=None,
    reason: str = "",
    reread_subjects: bool = False,
) -> int:
    """Send failed items (all, or the ones named) back to pending; reopens the run.
    With `reread_subjects`, each item's subject is first read again from the run's
    subject source and its payload updated (`work_item.payload_reread`)."""
    ids = _failed_ids(run, work_item_ids)
    fresh, old = {}, {}
    if reread_subjects:  # the source is asked outside the lock
        fresh = subjects_reread(run, ids)
        old = dict(
            WorkItem.objects.filter(pk__in=list(fresh)).values_list("pk", "payload")
        )
    with transaction.atomic():
        current = ledger.run_lock(run)
        if current not in RUN_RETRYABLE | {RunState.RUNNING, RunState.AWAITING_INPUT}:
            raise IllegalTransition(
                run,
                current,
                RunState.RUNNING,
                reason=f"run {run.number} is {current}: failed items can be retried "
                "once it is running, unresolved, cancelled, failed or timed out",
            )
        events = [
            ledger.audit_event(
                verb="work_item.retried",
                run=run,
                actor=actor,
                reason=reason,
                before={"work_item": pk, "state": WorkItemState.FAILED},
                after={"state": WorkItemState.PENDING},
            )
            for pk in ids
        ]
        if fresh:
            payloads_reread_write(run, actor=actor, reason=reason, fresh=fresh, old=old)
        work_items_move(
            run,
            ids,
            WorkItemState.PENDING,
            allowed_from=frozenset({WorkItemState.FAILED}),
            updates={"available_at": timezone.now()},
            events=events,
            counters={"failed_items": F("failed_items") - len(ids)},
        )
        child_items_reset(run, ids)  # a job's item asks its child run again
        if current in RUN_RETRYABLE:
            updates = {}
            if run.version.run_timeout_seconds:
                updates["deadline_at"] = timezone.now() + timezone.timedelta(
                    seconds=run.version.run_timeout_seconds
                )
            run_reopen(
                run,
                actor=actor,
                verb="run.retried",
                reason=reason,
                updates={**updates, "stop_requested_at": None, "stop_options": {}},
                details={"work_items": len(ids)},
            )
    run_progress(run)
    return len(ids)


def run_resolve(run: Run, *, actor=None, note: str = "", work_item_ids=None) -> int:
    """Mark failed items resolved by a person, with a note (never shown as done).
    An unresolved run whose failures are all resolved becomes completed."""
    note = (note or "").strip()
    if not note:
        raise InvalidRequest(
            "a note is required to resolve work items", code="note_required"
        )
    ids = _failed_ids(run, work_item_ids)
    with transaction.atomic():
        current = ledger.run_lock(run)
        if current in (RunState.PENDING, RunState.STOPPING, RunState.TERMINATING):
            raise IllegalTransition(
                run,
                current,
                "resolved",
                reason=f"run {run.number} is {current}: "
                "wait until it settles to resolve",
            )
        events = [
            ledger.audit_event(
                verb="work_item.resolved",
                run=run,
                actor=actor,
                reason=note,
                before={"work_item": pk, "state": WorkItemState.FAILED},
                after={"state": WorkItemState.RESOLVED},
            )
            for pk in ids
        ]
        work_items_move(
            run,
            ids,
            WorkItemState.RESOLVED,
            allowed_from=frozenset({WorkItemState.FAILED}),
            updates={"note": note},
            events=events,
            counters={"failed_items": F("failed_items") - len(ids)},
        )
        if (
            current == RunState.UNRESOLVED
            and not WorkItem.objects.filter(
                run=run,
                state__in=[
                    WorkItemState.FAILED,
                    WorkItemState.PENDING,
                    WorkItemState.IN_PROGRESS,
                    WorkItemState.AWAITING_INPUT,
                ],
            ).exists()
        ):
            run_move(
                run,
                RunState.COMPLETED,
                actor=actor,
                verb="run.resolved",
                reason=note,
                allowed_from=frozenset({RunState.UNRESOLVED}),
            )
    return len(ids)


def _set_archived(run: Run, archived: bool, actor, reason: str) -> None:
    with transaction.atomic():
        _state, was = ledger.run_lock(run, "state", "archived")
        # an active run may be archived too, and keeps running to its end
        # (Kognitos: "archiving a running process will not pause or stop its
        # execution"); archived only hides it from the default lists
        changed = Run.objects.filter(pk=run.pk, archived=not archived).update(
            archived=archived
        )
        if not changed:
            raise IllegalTransition(
                run,
                "archived" if was else "not archived",
                "archived" if archived else "unarchived",
                reason=f"run {run.number} is already "
                f"{'archived' if was else 'not archived'}",
            )
        ledger.append(
            run=run,
            events=[
                ledger.audit_event(
                    verb="run.archived" if archived else "run.unarchived",
                    run=run,
                    actor=actor,
                    reason=reason,
                    before={"archived": was},
                    after={"archived": archived},
                )
            ],
        )
    run.archived = archived


def run_archive(run: Run, *, actor=None, reason: str = "") -> None:
    _set_archived(run, True, actor, reason)


def run_unarchive(run: Run, *, actor=None, reason: str = "") -> None:
    _set_archived(run, False, actor, reason)


def run_mark_test_case(
    run: Run, *, actor=None, is_test_case: bool = True, reason: str = ""
) -> None:
    """Flag a run as a test case (kept as a reference run of its automation), or
    remove the flag; recorded in the run's audit trail. Refused, with nothing
    written, when the run already has that flag."""
    with transaction.atomic():
        changed = Run.objects.filter(pk=run.pk, is_test_case=not is_test_case).update(
            is_test_case=is_test_case
        )
        if not changed:
            raise InvalidRequest(
                f"run {run.number} is already "
                f"{'a test case' if is_test_case else 'not a test case'}",
                code="nothing_to_do",
            )
        ledger.append(
            run=run,
            events=[
                ledger.audit_event(
                    verb="run.test_case_marked"
                    if is_test_case
                    else "run.test_case_unmarked",
                    run=run,
                    actor=actor,
                    reason=reason,
                    before={"is_test_case": not is_test_case},
                    after={"is_test_case": is_test_case},
                )
            ],
        )
    run.is_test_case = is_test_case


def run_rerun(
    run: Run,
    *,
    actor=None,
    version: str = "original",
    trigger_kind=TriggerKind.MANUAL,
    failed_only: bool = False,
) -> Run:
    """A new run with the same inputs, `rerun_of` set, on the original version or
    the latest published one, recorded with the caller's `trigger_kind`: a draft
    re-runs only when that is manual (a person in admin); an API re-run of a draft
    is refused by `run_start` (not quietly recorded as manual). `failed_only`:
    only the inputs whose items failed (refused when none did)."""
    if version not in ("original", "latest"):
        raise InvalidRequest("version must be 'original' or 'latest'")
    chosen = run.version if version == "original" else None
    return run_start(
        automation=run.automation,
        inputs=failed_inputs(run) if failed_only else run.inputs,
        trigger_kind=trigger_kind,
        actor=actor,
        version=chosen,
        rerun_of=run,
        # same inputs, same place in a queue (max_concurrent_runs)
        priority=run.priority,
    )
