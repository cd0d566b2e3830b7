"""Deciding what a run does next once work moves: start, wait, finish, stop."""

import logging
import types

from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from automations.models import Step

from .. import ledger
from ..machines import run_move, step_run_move, step_runs_end, work_items_move
from ..machines.attempt import attempt_run_item, attempts_fail
from ..machines.work_item import LeaseLost
from ..models import Run, RunItem, StepRun, WorkItem
from ..states import (
    RUN_ACTIVE,
    STEP_RUN_ACTIVE,
    FailureType,
    IllegalTransition,
    RunItemOutcome,
    RunState,
    StepRunState,
    StopPendingItems,
    WorkItemState,
)
from .admission import run_settle
from .children import CHILD_SETTLED, children_active, children_collect
from .dispatch import pending_step_runs_ensure

log = logging.getLogger("runs.engine")

# failure codes set by a stop rather than by an action
STOP_CODES = ("stopped", "terminated", "cancelled")


def _item_counts(run: Run) -> dict[str, int]:
    return dict(
        WorkItem.objects.filter(run=run)
        .values_list("state")
        .annotate(n=Count("id"))
        .order_by()
    )


def run_progress(run: Run) -> str:
    """Move `run` on from what its items and step runs say; return its state.

    Running: start step runs for pending items; when nothing is pending or in
    flight, wait for people or child runs (awaiting_input) or finish (completed,
    completed_no_action, unresolved). Stopping or terminating: once nothing is in
    flight (no child run either), settle the remaining items as the stop asked and
    end cancelled (or unresolved when actions failed). A child run that this call
    settled moves its job on.
    """
    before = run.state
    state = _progress(run)
    if state in CHILD_SETTLED and state != before:
        job_move_on(run)
    return state


def job_move_on(child: Run) -> None:
    """A child run settled: its job takes the outcome. Called after the child's
    own move committed (the callers hold no lock then), so the job's lock is never
    taken under the child's; a move this misses, housekeeping's `jobs_collect`
    catches."""
    if child.parent_id:
        parent = Run.objects.filter(pk=child.parent_id).first()
        if parent is not None:
            run_progress(parent)


def _progress(run: Run) -> str:
    with transaction.atomic():
        current = ledger.run_lock(run)
        if current not in RUN_ACTIVE:
            return current
        run.refresh_from_db()
        counts = _item_counts(run)
        if (
            counts.get(WorkItemState.AWAITING_INPUT)
            and current in (RunState.RUNNING, RunState.AWAITING_INPUT)
            and children_collect(run)
        ):
            counts = _item_counts(run)
        in_flight = (
            counts.get(WorkItemState.IN_PROGRESS, 0)
            or StepRun.objects.filter(run=run, state__in=STEP_RUN_ACTIVE).exists()
        )
        if current in (RunState.STOPPING, RunState.TERMINATING):
            if in_flight or children_active(run):
                return current
            return settle_stop(run)
        if counts.get(WorkItemState.PENDING):
            pending_step_runs_ensure(run)
            if current == RunState.AWAITING_INPUT:
                run_move(
                    run, RunState.RUNNING, actor_label="engine", verb="run.resumed"
                )
            return run.state
        if in_flight:
            return current
        if counts.get(WorkItemState.AWAITING_INPUT):
            if current == RunState.RUNNING:
                run_move(run, RunState.AWAITING_INPUT, actor_label="engine")
            return run.state
        if current == RunState.AWAITING_INPUT:
            # the last decision was taken: the run resumes only to finish
            run_move(run, RunState.RUNNING, actor_label="engine", verb="run.resumed")
        if counts.get(WorkItemState.FAILED):
            final = RunState.UNRESOLVED
        elif (
            run.actions_invoked == 0
            and not RunItem.objects.filter(
                run=run, outcome=RunItemOutcome.IDEMPOTENT_REPLAY
            ).exists()
        ):
            final = RunState.COMPLETED_NO_ACTION
        else:
            final = RunState.COMPLETED
        run_settle(run, final, actor_label="engine", details=_summary(run))
        return final


def _summary(run: Run) -> dict:
    run.refresh_from_db(
        fields=["total_items", "failed_items", "actions_invoked", "subjects_matched"]
    )
    return {
        "total_items": run.total_items,
        "failed_items": run.failed_items,
        "actions_invoked": run.actions_invoked,
        "subjects_matched": run.subjects_matched,
    }


def settle_stop(run: Run) -> str:
    """Nothing is in flight any more: apply the stop's pending-items option."""
    option = run.stop_options.get("pending_items", StopPendingItems.FAILED)
    open_rows = list(
        WorkItem.objects.filter(
            run=run, state__in=[WorkItemState.PENDING, WorkItemState.AWAITING_INPUT]
        ).values_list("pk", "state", "step_id", "subject", "attempts", "updated_at")
    )
    open_items = [(row[0], row[1]) for row in open_rows]
    by = run.stop_requested_by
    label = run.stop_options.get("by", "")
    to_done = (
        [pk for pk, state in open_items if state == WorkItemState.PENDING]
        if (option == StopPendingItems.DONE)
        else []
    )
    to_fail = [pk for pk, _ in open_items if pk not in set(to_done)]
    events = [
        ledger.audit_event(
            verb="work_item.stopped",
            run=run,
            actor=by,
            actor_label=label,
            before={"work_item": pk, "state": state},
            after={
                "state": WorkItemState.DONE if pk in to_done else WorkItemState.FAILED
            },
        )
        for pk, state in open_items
    ]
    for chunk_start in range(0, len(to_done), 5000):
        work_items_move(
            run, to_done[chunk_start : chunk_start + 5000], WorkItemState.DONE
        )
    for chunk_start in range(0, len(to_fail), 5000):
        chunk = to_fail[chunk_start : chunk_start + 5000]
        work_items_move(
            run,
            chunk,
            WorkItemState.FAILED,
            updates={
                "failure_type": FailureType.BUSINESS,
                "failure_code": "stopped",
                "failure_message": "stopped before it ran",
            },
            counters={"failed_items": F("failed_items") + len(chunk)},
        )
    ledger.append(run=run, events=events, run_items=_stop_run_items(run, open_rows))
    action_failures = (
        WorkItem.objects.filter(run=run, state=WorkItemState.FAILED)
        .exclude(failure_code__in=STOP_CODES)
        .exists()
    )
    final = RunState.UNRESOLVED if action_failures else RunState.CANCELLED
    run_settle(run, final, actor_label="engine", details=_summary(run))
    return final


def _stop_run_items(run: Run, rows: list) -> list[RunItem]:
    """One `skipped` run item per item a stop settled before its action ran, the
    stop as its cause (GRC: "items that haven't started yet are skipped …
    cancellation is recorded")."""
    if not rows:
        return []
    steps = {s.pk: s for s in Step.objects.filter(pk__in={row[2] for row in rows})}
    options = run.stop_options
    cause = (
        f"run stopped by {options.get('by') or 'system'} "
        f"({options.get('step_runs', 'complete')}, pending items "
        f"{options.get('pending_items', StopPendingItems.FAILED)}) before it ran"
    )
    now = timezone.now()
    return [
        attempt_run_item(
            run,
            steps[step_id],
            types.SimpleNamespace(
                pk=pk, subject=subject, attempts=attempts, updated_at=updated_at
            ),
            step_run_id=None,
            outcome=RunItemOutcome.SKIPPED,
            now=now,
            cause=cause,
        )
        for pk, _state, step_id, subject, attempts, updated_at in rows
    ]


def _force_fail_open(run: Run, *, code: str, message: str) -> int:
    """Fail every open item of a run (timeout, run failure, stuck termination)."""
    ids = list(
        WorkItem.objects.filter(
            run=run,
            state__in=[
                WorkItemState.PENDING,
                WorkItemState.IN_PROGRESS,
                WorkItemState.AWAITING_INPUT,
            ],
        ).values_list("pk", flat=True)
    )
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        work_items_move(
            run,
            chunk,
            WorkItemState.FAILED,
            updates={
                "failure_type": FailureType.APPLICATION,
                "failure_code": code,
                "failure_message": message,
            },
            counters={"failed_items": F("failed_items") + len(chunk)},
        )
    step_runs_end(
        run,
        frm=StepRunState.QUEUED,
        to=StepRunState.CANCELLED,
        updates={"finished_at": timezone.now()},
    )
    return len(ids)


def _end_run(run: Run, to: str, *, reason: str, code: str, error: str = "") -> bool:
    """End a run the engine gives up on: the run moves to `to`, its open items fail
    with `code`, its queued step runs are cancelled and running ones failed (their
    late writes are fenced off). False when the run had already moved on."""
    now = timezone.now()
    try:
        with transaction.atomic():
            run_settle(
                run,
                to,
                actor_label="engine",
                reason=reason,
                updates={"error": error[:4000]} if error else None,
            )
            _force_fail_open(
                run, code=code, message=(error or code.replace("_", " "))[:4000]
            )
            step_runs_end(
                run,
                frm=StepRunState.RUNNING,
                to=StepRunState.FAILED,
                updates={"finished_at": now, "error": reason},
            )
    except IllegalTransition:
        return False
    job_move_on(run)
    return True


def run_fail(run: Run, error: str) -> bool:
    """The run itself broke (e.g. an unknown action): fail it and its open items."""
    return _end_run(run, RunState.FAILED, reason=error, code="run_failed", error=error)


def run_time_out(run: Run) -> bool:
    """The run passed its timeout: it ends timed_out, open items fail "timed out"."""
    return _end_run(
        run,
        RunState.TIMED_OUT,
        code="timed_out",
        reason=f"run timeout of {run.version.run_timeout_seconds}s passed",
    )


def run_terminating_expired(run: Run, timeout: int) -> bool:
    """A run left terminating longer than allowed becomes failed."""
    return _end_run(
        run,
        RunState.FAILED,
        code="terminated",
        reason=f"still terminating after {timeout}s",
        error=f"did not finish terminating within {timeout}s",
    )


def items_release(run: Run, items: list, *, cause: str, token) -> int:
    """Give in-progress items of a lost or broken step run back: pending while
    attempts are left (after the step's backoff), failed after the last one. Each is
    recorded as a failed attempt in the run's ledger (see `attempts_fail`)."""
    if not items:
        return 0
    steps = {s.pk: s for s in Step.objects.filter(pk__in={i.step_id for i in items})}
    by_step: dict = {}
    for item in items:
        by_step.setdefault(item.step_id, []).append(item)
    with transaction.atomic():
        for step_id, of_step in by_step.items():
            attempts_fail(
                run,
                steps[step_id],
                of_step,
                token=token,
                code="lease_expired",
                cause=cause,
            )
    return len(items)


def leases_reap(now=None) -> int:
    """Step runs and items whose lease expired (their worker died) come back."""
    now = now or timezone.now()
    reaped = 0
    for step_run in StepRun.objects.filter(
        state=StepRunState.RUNNING, lease_expires_at__lt=now
    ).only("pk", "lease_token", "state"):
        step_run_move(
            step_run,
            StepRunState.FAILED,
            lease_token=step_run.lease_token,
            updates={"error": "lease expired: worker lost", "finished_at": now},
        )
    expired = WorkItem.objects.filter(
        state=WorkItemState.IN_PROGRESS, lease_expires_at__lt=now
    ).select_related("run")
    by_token: dict = {}
    for item in expired:
        by_token.setdefault((item.run_id, item.lease_token), []).append(item)
    touched = {}
    for (run_id, token), items in by_token.items():
        try:
            reaped += items_release(
                items[0].run, items, cause="lease expired (worker lost)", token=token
            )
        except LeaseLost:
            continue  # its worker came back and heartbeated meanwhile
        touched[run_id] = items[0].run
    for run in touched.values():
        run_progress(run)
    return reaped
