"""The step run: a django-q2 task that works through a step's items in batches.

A step run claims a batch of pending items (PostgreSQL: SELECT … FOR UPDATE SKIP
LOCKED; SQLite: the IMMEDIATE transaction is the lock), calls the action per item
outside any transaction (`items`), then writes run items, output items, state
changes and counters in one transaction (`commit`). Every write carries the step
run's lease token (`lease`), so a worker that lost its lease (it was too slow, or
presumed dead) changes nothing. A robot step hands the whole step run to one robot
process instead (`runs.robots.runner`).
"""

import gc
import logging
import time

from django.db import connection, transaction
from django.utils import timezone

from automations.actions.registry import UnknownAction, get_action
from runs.conf import runs_settings

from ..machines import step_run_move, work_items_claim
from ..machines.work_item import claimed_rows
from ..models import Run, StepRun, WorkItem
from ..ops.logging import log_context
from ..robots.runner import RobotRunner
from ..states import STOP_ASKED, STOP_CAUSES, RunState, StepRunState, WorkItemState
from .commit import BatchCommit, immediate_keys_sql
from .dispatch import enqueue
from .items import ClaimedItem, ItemProcessing, ItemResult
from .lease import LeasedStepRun, step_run_load
from .progress import items_release, run_time_out

__all__ = ["ClaimedItem", "ItemResult", "StepRunner", "step_run_execute"]

log = logging.getLogger("runs.engine")

# How long a step run waits in place for items in backoff before leaving them to
# housekeeping.
INLINE_WAIT_SECONDS = 5.0


class StepRunner(LeasedStepRun, ItemProcessing, BatchCommit):
    """A Python step: claim a batch, process it, commit it (claiming the next)."""

    def __init__(self, step_run_id: int, *, step_run: StepRun | None = None):
        super().__init__(step_run_id, step_run=step_run)
        self.run_key = str(self.run.pk)  # formatted once, not per item
        self.claimed = []
        self._stop_checked = 0.0
        self._stop_cause = ""
        self._stop_asked = False
        self._next_step = None
        self._next_ensure = 0.0
        if connection.vendor == "postgresql":
            immediate_keys_sql()  # the constraint names, read once per process

    def work(self) -> str:
        started = time.monotonic()
        budget_end = started + runs_settings.STEP_RUN_BUDGET_SECONDS
        self._slice_end = started + runs_settings.STEP_RUN_SLICE_SECONDS
        self._yielding = False
        while True:
            if not self.claimed:
                state = (
                    Run.objects.filter(pk=self.run.pk)
                    .values_list("state", flat=True)
                    .get()
                )
                self._stop_checked = time.monotonic()
                self._stop_cause = STOP_CAUSES.get(state, "")
                self._stop_asked = state in STOP_ASKED
                if state not in (RunState.RUNNING, RunState.AWAITING_INPUT):
                    break  # stopping: in-flight work is done, start no new batch
                if self._past_deadline():
                    break
                if self._yielding or time.monotonic() > budget_end:
                    self._hand_over()
                    return "handed over"
                self.claimed = self._claim()
                if not self.claimed:
                    wait = self._next_available_in()
                    if (
                        wait is not None
                        and wait <= INLINE_WAIT_SECONDS
                        and (time.monotonic() + wait < budget_end)
                    ):
                        time.sleep(max(wait, 0.01))
                        continue
                    break
            results = self._process(self.claimed)
            # items the commit interval left unprocessed stay claimed for the next round
            left = self.claimed[len(results) :]
            # the next batch is claimed in the transaction that commits this one
            # (one write transaction per batch), unless the step run should end here
            deadline = self.run.deadline_at
            claim_next = (
                not left
                and time.monotonic() < budget_end
                and not self._stop_cause
                and not (deadline and timezone.now() >= deadline)
                and not self._yield_due()
            )
            self.claimed = left + self._commit(results, claim_next=claim_next)
        self.finish(StepRunState.FINISHED)
        return "finished"

    def _yield_due(self) -> bool:
        """Whether to give the worker to another step run: this one has worked a
        slice (`RUNS_STEP_RUN_SLICE_SECONDS`) and another, of any run, has waited
        a slice in the queue for a worker. So a run's steps share the workers
        (with two workers, its third step no longer waits for the first to
        finish) and so do the runs. Asked at most every half slice; a step run
        queued longer than a lease is housekeeping's (its task was lost)."""
        slice_seconds = runs_settings.STEP_RUN_SLICE_SECONDS
        if slice_seconds <= 0 or time.monotonic() < self._slice_end:
            return False
        self._slice_end = time.monotonic() + slice_seconds / 2
        now = timezone.now()
        self._yielding = (
            StepRun.objects.filter(
                state=StepRunState.QUEUED,
                queued_at__lt=now - timezone.timedelta(seconds=slice_seconds),
                queued_at__gte=now
                - timezone.timedelta(seconds=runs_settings.LEASE_SECONDS),
            )
            .exclude(pk=self.step_run.pk)
            .exists()
        )
        return self._yielding

    def _hand_over(self) -> None:
        """Budget spent, or another step run waits for a worker: give the worker
        back and continue in a fresh task (queued behind those waiting)."""
        with transaction.atomic():
            if step_run_move(
                self.step_run,
                StepRunState.QUEUED,
                lease_token=self.token,
                updates={
                    "lease_token": None,
                    "lease_expires_at": None,
                    "queued_at": timezone.now(),
                },
            ):
                enqueue(self.step_run.pk)

    def _past_deadline(self) -> bool:
        deadline = self.run.deadline_at
        if deadline is None or timezone.now() < deadline:
            return False
        run_time_out(self.run)
        return True

    def _next_available_in(self) -> float | None:
        earliest = (
            WorkItem.objects.filter(
                run=self.run, step=self.step, state=WorkItemState.PENDING
            )
            .order_by("available_at")
            .values_list("available_at", flat=True)
            .first()
        )
        if earliest is None:
            return None
        return (earliest - timezone.now()).total_seconds()

    def _claim_args(self, now) -> dict:
        return {
            "limit": self.step.batch_size,
            "token": self.token,
            "owner_id": self.step_run.pk,
            "expires": now + timezone.timedelta(seconds=self.lease),
            "now": now,
        }

    def _claim(self, decoded: bool = True) -> list:
        """Claim the next batch. With `decoded=False` (inside the commit's
        transaction), return the claim as `_claimed` takes it after the commit."""
        now = timezone.now()
        rows = work_items_claim(
            self.run, self.step, **self._claim_args(now), decoded=False
        )
        self._last_heartbeat = time.monotonic()
        claim = (rows, now)
        return self._claimed(claim) if decoded else claim

    @staticmethod
    def _claimed(claim) -> list[ClaimedItem]:
        rows, now = claim
        return [ClaimedItem(**row) for row in claimed_rows(rows, now)]

    def on_error(self, exc: Exception) -> None:
        """After an engine error, give claimed items back instead of waiting for
        their lease to expire."""
        if self.claimed:
            try:
                items_release(
                    self.run,
                    self.claimed,
                    cause=f"engine error: {exc}",
                    token=self.token,
                )
            except Exception:
                log.exception(
                    "could not release the items of step run %s", self.step_run.pk
                )


_frozen = False


def _freeze_worker_objects() -> None:
    """Move the worker process's long-lived objects (Django, the apps, the action
    registry) out of the cyclic collector's way, once per process: a step run
    allocates containers by the million, and each full collection walked them all
    again (a tenth of a step run's time)."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True


def _runner_class(action_key: str):
    try:
        return RobotRunner if get_action(action_key).robot else StepRunner
    except UnknownAction:
        return StepRunner  # which fails the run, naming the action


def step_run_execute(step_run_id: int) -> str:
    """Entry point of the django-q2 task (see runs.tasks)."""
    _freeze_worker_objects()
    try:
        step_run = step_run_load(step_run_id)
    except StepRun.DoesNotExist:
        return f"step run {step_run_id} no longer exists"
    runner = _runner_class(step_run.step.action)(step_run_id, step_run=step_run)
    with log_context(run_id=step_run.run_id, step_run_id=step_run_id):  # JSON logs
        return runner.execute()
