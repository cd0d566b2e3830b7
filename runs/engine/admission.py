"""Run admission: an automation's `max_concurrent_runs`.

A run of an automation with a limit is created `pending` and *waits*: it has its
work items but no step run. It is *admitted* (pending → running, verb
`run.started`, its first step runs queued) when fewer than the limit of the
automation's runs occupy a slot (`RUN_OCCUPYING`: running, awaiting_input,
stopping, terminating). Waiting runs are admitted by `priority`, higher first,
then oldest (`created_at`, then `number`).

Admission is decided in three places, each in the transaction that changed the
count: `run_start` (a new run), `run_settle` (a move out of an occupying state,
which frees a slot), and housekeeping (`admissions_sweep`, the safety net: a limit
raised or removed, an admission that failed).

Locks: the automation row (`SELECT ... FOR NO KEY UPDATE`, so it never blocks the
foreign-key checks of inserts that name the automation) serialises deciders of
one automation, so two clusters racing for one free slot admit one run. The order
is: the run that moved (its row is already locked), then its automation row, then
waiting runs (`SKIP LOCKED`: one locked by a stop is passed over, so whoever holds
the automation row never waits on a run), then their items and step runs. A new
run is inserted before its automation row is locked, for the same reason. SQLite
has no row locks: its IMMEDIATE transaction is the one writer.
"""

import logging

from django.db import DatabaseError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from automations.models import Automation, Step

from ..machines import run_move
from ..models import Run, StepRun
from ..states import (
    RUN_OCCUPYING,
    RUN_RETRYABLE,
    STEP_RUN_ACTIVE,
    IllegalTransition,
    RunState,
)
from .dispatch import pending_step_runs_ensure, step_runs_start

log = logging.getLogger("runs.engine")

# the order waiting runs start in; the index run_waiting_queue serves it
WAITING_ORDER = ("-priority", "created_at", "number")


def waiting_runs(automation_id):
    """The automation's waiting runs in the order they are admitted: pending and
    without a queued or running step run (a pending run with one is already on
    its way: its step run starts it, as for an automation without a limit; a
    retried run that waits has only the ended step runs of its earlier start)."""
    return (
        Run.objects.filter(automation_id=automation_id, state=RunState.PENDING)
        .filter(
            ~Exists(
                StepRun.objects.filter(run=OuterRef("pk"), state__in=STEP_RUN_ACTIVE)
            )
        )
        .order_by(*WAITING_ORDER)
    )


def _limit_lock(automation_id, *, limited_only: bool) -> tuple[bool, int | None]:
    """Lock the automation row (only when it has a limit, if `limited_only`: the
    end of a run of an unlimited automation then costs one read and no lock);
    (found, its limit)."""
    rows = Automation.objects.select_for_update(no_key=True).filter(pk=automation_id)
    if limited_only:
        rows = rows.filter(max_concurrent_runs__isnull=False)
    values = list(rows.values_list("max_concurrent_runs", flat=True))
    return (bool(values), values[0] if values else None)


def runs_admit(automation_id, *, unlimited_orphans: bool = False) -> list[Run]:
    """Admit waiting runs of the automation while it has free slots; return them.

    With no limit nothing waits, except runs left pending without a step run when
    a limit was lowered or removed: housekeeping passes `unlimited_orphans` to
    start those too.
    """
    with transaction.atomic():
        found, limit = _limit_lock(automation_id, limited_only=not unlimited_orphans)
        if not found:
            return []
        waiting = waiting_runs(automation_id)
        if limit is None:
            if not unlimited_orphans:
                return []
            room = None
        else:
            occupying = Run.objects.filter(
                automation_id=automation_id, state__in=RUN_OCCUPYING
            ).count()
            room = limit - occupying
            if room <= 0:
                return []
        # a run's inputs may be large and are not needed to start it; its
        # version gives the timeout (`of`: the version row is not locked)
        chosen = (
            waiting.select_related("version")
            .select_for_update(skip_locked=True, of=("self",))
            .defer("inputs")
            .order_by(*WAITING_ORDER)
        )
        chosen = list(chosen if room is None else chosen[:room])
        admitted = []
        first_steps: dict = {}
        for run in chosen:
            if run_admit(run, first_steps=first_steps):
                admitted.append(run)
        return admitted


def run_admit(run: Run, *, first_steps: dict | None = None) -> bool:
    """Move a waiting run to running and queue its first step runs (in the
    caller's transaction, under its automation's row lock). False when it had
    moved on meanwhile (stopped).

    The run's timeout counts from here, not from the time it was created: a run
    never times out while it waits. A retried run (`run_reopen`; it has started
    before) keeps its first start and gets step runs for its pending items,
    whatever their steps."""
    now = timezone.now()
    timeout = run.version.run_timeout_seconds
    retried = run.started_at is not None
    updates = {
        "deadline_at": now + timezone.timedelta(seconds=timeout) if timeout else None
    }
    details = {"admitted": True, "priority": run.priority}
    if retried:
        details["retried"] = True
    else:
        updates["started_at"] = now
    try:
        run_move(
            run,
            RunState.RUNNING,
            actor_label="engine",
            verb="run.started",
            allowed_from=frozenset({RunState.PENDING}),
            updates=updates,
            details=details,
        )
    except IllegalTransition:
        return False
    if retried:
        pending_step_runs_ensure(run)
        return True
    # a waiting run has no step run and its items are all of its first step,
    # due since it was created: its first step runs start as at creation
    steps = first_steps if first_steps is not None else {}
    if run.version_id not in steps:
        steps[run.version_id] = (
            Step.objects.filter(version_id=run.version_id).order_by("order").first()
        )
    step_runs_start(run, steps[run.version_id], run.total_items)
    return True


def run_reopen(run: Run, **kwargs) -> None:
    """A retry puts a run of RUN_RETRYABLE back to work: `run_move(run,
    running, **kwargs)`, or, when its automation has a limit, to pending, where
    it waits for a slot like a new run (by priority, then age: it keeps its
    place of creation) and is admitted in this transaction when a slot is free
    and it is first in line. The caller holds the run's row lock (the order of
    this module: the run, then its automation row)."""
    with transaction.atomic():
        limited, _limit = _limit_lock(run.automation_id, limited_only=True)
        if not limited:
            run_move(run, RunState.RUNNING, allowed_from=RUN_RETRYABLE, **kwargs)
            return
        run_move(run, RunState.PENDING, allowed_from=RUN_RETRYABLE, **kwargs)
        runs_admit(run.automation_id)
    run.refresh_from_db(fields=["state", "started_at", "deadline_at"])


def run_settle(run: Run, to: str, **kwargs) -> str:
    """`run_move(run, to, ...)`, and when the move freed one of its automation's
    slots, admit the next waiting run in the same transaction. Returns the state
    the run left.

    The admission runs in a savepoint: when it fails, the move stands and
    housekeeping admits the run later."""
    with transaction.atomic():
        before = run_move(run, to, **kwargs)
        if before in RUN_OCCUPYING and to not in RUN_OCCUPYING:
            try:
                with transaction.atomic():
                    runs_admit(run.automation_id)
            except (DatabaseError, IllegalTransition):
                log.exception(
                    "admission after run %s ended failed; housekeeping retries",
                    run.pk,
                )
    return before


def admissions_sweep() -> int:
    """Housekeeping: admit what waits wherever a slot is free. Each automation in
    its own transaction; returns how many runs started."""
    automation_ids = (
        Run.objects.filter(state=RunState.PENDING)
        .values_list("automation_id", flat=True)
        .distinct()
        .order_by()
    )
    admitted = 0
    for automation_id in list(automation_ids):
        try:
            admitted += len(runs_admit(automation_id, unlimited_orphans=True))
        except DatabaseError:
            log.exception("admission of automation %s failed", automation_id)
    return admitted


def queue_positions(runs) -> dict:
    """{run id: 1-based position among its automation's waiting runs} for those
    of `runs` that wait (pending, of an automation with a limit): one count of
    the runs ahead per waiting run, on the index run_waiting_queue."""
    waiting = [
        run
        for run in runs
        if run.state == RunState.PENDING
        and run.automation.max_concurrent_runs is not None
    ]
    positions: dict = {}
    for automation_id in {run.automation_id for run in waiting}:
        ahead = waiting_runs(automation_id)
        for run in (r for r in waiting if r.automation_id == automation_id):
            positions[run.pk] = (
                ahead.filter(
                    Q(priority__gt=run.priority)
                    | Q(priority=run.priority, created_at__lt=run.created_at)
                    | Q(
                        priority=run.priority,
                        created_at=run.created_at,
                        number__lt=run.number,
                    )
                )
                .order_by()
                .count()
                + 1
            )
    return positions
