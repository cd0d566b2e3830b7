"""The step run: a django-q2 task that works through a step's items in batches.

A step run claims a batch of pending items (PostgreSQL: SELECT … FOR UPDATE SKIP
LOCKED; SQLite: the IMMEDIATE transaction is the lock), calls the action per item
outside any transaction, then writes run items, output items, state changes and
counters in one transaction. Every write carries the step run's lease token, so a
worker that lost its lease (it was too slow, or presumed dead) changes nothing.
"""

import gc
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from automations.actions.registry import (
    ActionContext,
    AwaitApproval,
    BusinessError,
    Result,
    UnknownAction,
    get_action,
)
from automations.conditions import evaluate
from runs.conf import runs_settings

from ..ledger import PreparedRunItems, append_batch
from ..machines import run_move, step_run_move, work_items_claim
from ..machines.work_item import LeaseLost, claimed_rows, work_items_settle
from ..models import ActionResult, Run, StepRun, WorkItem
from ..ops.logging import log_context
from ..states import (
    FailureType,
    IllegalTransition,
    RunItemOutcome,
    RunState,
    StepRunState,
    WorkItemState,
)
from .bulk import PendingItems
from .dispatch import enqueue, step_runs_ensure

log = logging.getLogger("runs.engine")

# Run states in which a step run stops at the next item, and the cause its
# in-flight items fail with.
STOP_CAUSES = {
    RunState.TERMINATING: "terminated",
    RunState.TIMED_OUT: "timed out",
    RunState.FAILED: "run failed",
    RunState.CANCELLED: "cancelled",
}
# How long a step run waits in place for items in backoff before leaving them to
# housekeeping.
INLINE_WAIT_SECONDS = 5.0
STOP_CHECK_SECONDS = 0.25
ENSURE_SECONDS = 0.5


def idempotency_key(run_id, work_item_id, action_key: str) -> str:
    """Stable across every attempt of one item at one action."""
    return f"{run_id}:{work_item_id}:{action_key}"


@dataclass(slots=True)
class ClaimedItem:
    """A claimed work item: the fields the engine and actions read, without a model
    instance (actions get it as `ctx.work_item`)."""

    id: int
    step_id: int
    payload: dict
    subject: str
    attempts: int
    approval: dict | None
    lease_owner_id: int | None
    updated_at: object

    @property
    def pk(self) -> int:
        return self.id


@dataclass(slots=True)
class ItemResult:
    item: ClaimedItem
    outcome: str
    state: str
    started_at: object
    outputs: list = field(default_factory=list)
    result_ref: str = ""
    failure_type: str = ""
    failure_code: str = ""
    failure_message: str = ""
    invoked: bool = False
    available_at: object = None
    approvers: list = field(default_factory=list)
    approval_deadline: object = None
    key: str = ""  # the idempotency key of this item at this action


def _normalise(value) -> Result:
    if isinstance(value, Result):
        outputs = value.outputs
        ref = value.result_ref
    else:
        outputs, ref = value, ""
    if outputs is None:
        outputs = []
    elif isinstance(outputs, dict):
        outputs = [outputs]
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise TypeError("an action must return a dict, a list of dicts, a Result or None")
    return Result(outputs=outputs, result_ref=str(ref or "")[:254])


class StepRunner:
    def __init__(self, step_run_id: int):
        self.step_run = StepRun.objects.select_related(
            "run", "run__automation", "step", "step__version"
        ).get(pk=step_run_id)
        self.run: Run = self.step_run.run
        self.run_key = str(self.run.pk)  # formatted once, not per item
        self.step = self.step_run.step
        self.token = uuid.uuid4()
        self.lease = runs_settings.LEASE_SECONDS
        self._stop_checked = 0.0
        self._stop_cause = ""
        self._next_step = None
        self._next_ensure = 0.0

    # -- lifecycle -------------------------------------------------------------

    def execute(self) -> str:
        now = timezone.now()
        try:
            step_run_move(
                self.step_run,
                StepRunState.RUNNING,
                updates={
                    "lease_token": self.token,
                    "lease_expires_at": now + timezone.timedelta(seconds=self.lease),
                    "worker": f"{socket.gethostname()}:{os.getpid()}",
                    "started_at": self.step_run.started_at or now,
                },
            )
        except IllegalTransition:
            # delivered twice, or cancelled before it started: nothing to do
            return f"step run {self.step_run.pk} is {self._current_state()}"
        if self.run.state == RunState.PENDING:
            try:
                run_move(self.run, RunState.RUNNING, actor_label="engine", verb="run.started")
            except IllegalTransition:
                pass
        try:
            self.spec = get_action(self.step.action)
        except UnknownAction as exc:
            from .progress import run_fail

            run_fail(self.run, f"step {self.step.name}: {exc}")
            self._finish(StepRunState.FAILED, error=str(exc))
            return "run failed"
        try:
            result = self._robot() if self.spec.robot else self._loop()
        except LeaseLost as exc:
            log.warning("step run %s lost its lease: %s", self.step_run.pk, exc)
            return "lease lost"
        except Exception as exc:
            log.exception("step run %s broke", self.step_run.pk)
            self._release_claimed(f"engine error: {exc}")
            self._finish(StepRunState.FAILED, error=repr(exc))
            raise
        from .progress import run_progress

        run_progress(self.run)
        return result

    def _robot(self) -> str:
        """A robot step: one external process works the step's items itself
        through the work-items API (runs.robots)."""
        from ..robots.runner import RobotRunner

        return RobotRunner(self).execute()

    def _current_state(self) -> str:
        return StepRun.objects.filter(pk=self.step_run.pk).values_list("state", flat=True).first()

    def _loop(self) -> str:
        budget_end = time.monotonic() + runs_settings.STEP_RUN_BUDGET_SECONDS
        self.claimed = []
        while True:
            if not self.claimed:
                state = Run.objects.filter(pk=self.run.pk).values_list("state", flat=True).get()
                self._stop_checked = time.monotonic()
                self._stop_cause = STOP_CAUSES.get(state, "")
                if state not in (RunState.RUNNING, RunState.AWAITING_INPUT):
                    break  # stopping: in-flight work is done, start no new batch
                if self._past_deadline():
                    break
                if time.monotonic() > budget_end:
                    self._hand_over()
                    return "handed over"
                self.claimed = self._claim()
                if not self.claimed:
                    wait = self._next_available_in()
                    if wait is not None and wait <= INLINE_WAIT_SECONDS and (
                        time.monotonic() + wait < budget_end
                    ):
                        time.sleep(max(wait, 0.01))
                        continue
                    break
            results = self._process(self.claimed)
            # items the commit interval left unprocessed stay claimed for the next round
            left = self.claimed[len(results):]
            # the next batch is claimed in the transaction that commits this one
            # (one write transaction per batch), unless the step run should end here
            deadline = self.run.deadline_at
            claim_next = (
                not left
                and time.monotonic() < budget_end
                and not self._stop_cause
                and not (deadline and timezone.now() >= deadline)
            )
            self.claimed = left + self._commit(results, claim_next=claim_next)
        self._finish(StepRunState.FINISHED)
        return "finished"

    def _finish(self, to: str, error: str = "") -> None:
        step_run_move(
            self.step_run,
            to,
            lease_token=self.token,
            updates={"finished_at": timezone.now(), "lease_expires_at": None, "error": error},
        )

    def _hand_over(self) -> None:
        """Budget spent: give the worker back and continue in a fresh task."""
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
        from .progress import run_time_out

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

    # -- claim -----------------------------------------------------------------

    def _claim(self, decoded: bool = True) -> list:
        """Claim the next batch. With `decoded=False` (inside the commit's
        transaction), return the claim as `_claimed` takes it after the commit."""
        now = timezone.now()
        rows = work_items_claim(
            self.run,
            self.step,
            limit=self.step.batch_size,
            token=self.token,
            owner_id=self.step_run.pk,
            expires=now + timezone.timedelta(seconds=self.lease),
            now=now,
            decoded=False,
        )
        self._last_heartbeat = time.monotonic()
        claim = (rows, now)
        return self._claimed(claim) if decoded else claim

    @staticmethod
    def _claimed(claim) -> list[ClaimedItem]:
        rows, now = claim
        return [ClaimedItem(**row) for row in claimed_rows(rows, now)]

    def _extend_step_run_lease(self, expires) -> None:
        if not StepRun.objects.filter(
            pk=self.step_run.pk, lease_token=self.token, state=StepRunState.RUNNING
        ).update(lease_expires_at=expires):
            raise LeaseLost(f"step run {self.step_run.pk} no longer holds its lease")

    def _heartbeat(self) -> None:
        if time.monotonic() - self._last_heartbeat < self.lease / 3:
            return
        expires = timezone.now() + timezone.timedelta(seconds=self.lease)
        with transaction.atomic():
            self._extend_step_run_lease(expires)
            WorkItem.objects.filter(
                lease_token=self.token, state=WorkItemState.IN_PROGRESS
            ).update(lease_expires_at=expires)
        self._last_heartbeat = time.monotonic()

    # -- process ---------------------------------------------------------------

    def should_stop(self) -> bool:
        """True once the run is terminating, timed out or failed (checked at most
        every STOP_CHECK_SECONDS; actions may call it between units of work)."""
        if self._stop_cause:
            return True
        now = time.monotonic()
        if now - self._stop_checked < STOP_CHECK_SECONDS:
            return False
        self._stop_checked = now
        state = Run.objects.filter(pk=self.run.pk).values_list("state", flat=True).get()
        self._stop_cause = STOP_CAUSES.get(state, "")
        if not self._stop_cause and self.run.deadline_at and timezone.now() >= self.run.deadline_at:
            self._stop_cause = "timed out"
        return bool(self._stop_cause)

    def _process(self, items: list[ClaimedItem]) -> list[ItemResult]:
        """Results for the first items of `items`: all of them, or as many as were
        done when RUNS_COMMIT_SECONDS ran out (slow actions still show progress,
        and hand their outputs to the next step, that often)."""
        results = []
        journal = {}
        if self.spec.journal:
            keys = [idempotency_key(self.run_key, i.pk, self.step.action) for i in items]
            journal = {r.pk: r for r in ActionResult.objects.filter(pk__in=keys)}
        commit_by = time.monotonic() + runs_settings.COMMIT_SECONDS
        for item in items:
            if results and time.monotonic() >= commit_by:
                break
            if self.should_stop():
                results.append(self._stopped(item))
                continue
            results.append(self._process_one(item, journal))
            self._heartbeat()
        return results

    def _stopped(self, item) -> ItemResult:
        now = timezone.now()
        return ItemResult(
            item=item,
            outcome=RunItemOutcome.FAILED,
            state=WorkItemState.FAILED,
            started_at=now,
            failure_type=FailureType.APPLICATION,
            failure_code=self._stop_cause.replace(" ", "_"),
            failure_message=self._stop_cause,
            key=idempotency_key(self.run_key, item.pk, self.step.action),
        )

    def _process_one(self, item: ClaimedItem, journal: dict) -> ItemResult:
        step = self.step
        started = timezone.now()
        key = idempotency_key(self.run_key, item.pk, step.action)
        result = ItemResult(item=item, outcome="", state="", started_at=started, key=key)
        approved = bool(item.approval and item.approval.get("decision") == "approve")
        try:
            applies = evaluate(step.condition, item.payload)
        except LookupError as exc:
            return self._failed(result, FailureType.BUSINESS, "bad_condition", str(exc))
        if not applies:
            result.outcome, result.state = RunItemOutcome.SKIPPED, WorkItemState.DONE
            return result
        if step.requires_approval and not approved:
            return self._awaiting(
                result,
                step.parameters.get("approvers", []),
                step.parameters.get("deadline_seconds"),
            )
        if key in journal:
            record = journal[key]
            result.outcome, result.state = RunItemOutcome.IDEMPOTENT_REPLAY, WorkItemState.DONE
            result.outputs, result.result_ref = record.outputs, record.result_ref
            return result
        context = ActionContext(
            payload=item.payload,
            parameters=step.parameters,
            run=self.run,
            step=step,
            work_item=item,
            subject=item.subject,
            attempt=item.attempts,
            idempotency_key=key,
            should_stop=self.should_stop,
            approval=item.approval,
        )
        result.invoked = not self.spec.selects
        try:
            value = _normalise(self._call(context))
        except BusinessError as exc:
            return self._failed(result, FailureType.BUSINESS, exc.code, str(exc))
        except AwaitApproval as exc:
            result.invoked = False
            return self._awaiting(result, exc.approvers, exc.deadline_seconds)
        except Exception as exc:  # an application error: retried with backoff
            message = f"{type(exc).__name__}: {exc}"
            if item.attempts < step.max_attempts:
                backoff = step.retry_backoff_seconds * 2 ** (item.attempts - 1)
                result.available_at = timezone.now() + timezone.timedelta(seconds=backoff)
                return self._failed(
                    result, FailureType.APPLICATION, "application_error", message,
                    state=WorkItemState.PENDING,
                )
            return self._failed(result, FailureType.APPLICATION, "application_error", message)
        if self.spec.journal:
            try:
                ActionResult.objects.create(
                    idempotency_key=key,
                    run=self.run,
                    outputs=value.outputs,
                    result_ref=value.result_ref,
                )
            except IntegrityError:
                pass
        result.outcome, result.state = RunItemOutcome.SUCCEEDED, WorkItemState.DONE
        result.outputs, result.result_ref = value.outputs, value.result_ref
        return result

    def _call(self, context: ActionContext):
        timeout = self.step.item_timeout_seconds
        if not timeout:
            return self.spec.func(context)
        # The thread is abandoned on timeout (Python cannot kill it); its result, if
        # any, is ignored and the item fails as an application error.
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            return pool.submit(self.spec.func, context).result(timeout=timeout)
        except FutureTimeout:
            raise TimeoutError(f"item took longer than {timeout}s") from None
        finally:
            pool.shutdown(wait=False)

    @staticmethod
    def _failed(result, failure_type, code, message, state=WorkItemState.FAILED):
        result.outcome = RunItemOutcome.FAILED
        result.state = state
        result.failure_type, result.failure_code = failure_type, code[:100]
        result.failure_message = message[:4000]
        return result

    @staticmethod
    def _awaiting(result, approvers, deadline_seconds):
        result.outcome = RunItemOutcome.AWAITING_APPROVAL
        result.state = WorkItemState.AWAITING_INPUT
        result.approvers = list(approvers or [])
        if deadline_seconds:
            result.approval_deadline = timezone.now() + timezone.timedelta(
                seconds=int(deadline_seconds)
            )
        return result

    # -- commit ----------------------------------------------------------------

    def next_step(self):
        if self._next_step is None:
            self._next_step = (
                self.step.version.steps.filter(order__gt=self.step.order)
                .order_by("order")
                .first()
            ) or False
        return self._next_step or None

    def _commit(self, results: list[ItemResult], claim_next: bool = False) -> list[ClaimedItem]:
        """Write a processed batch; with `claim_next`, claim the next batch in the
        same transaction if the run is still running, and return it."""
        now = timezone.now()
        next_step = self.next_step()
        run_id, step, step_run_id = self.run.pk, self.step, self.step_run.pk
        groups: dict[tuple, list[int]] = {}
        per_item = []
        run_items = []
        new_items = (
            PendingItems(run_id=run_id, step_id=next_step.pk, now=now)
            if next_step is not None else None
        )
        outputs = failed = invoked = 0
        for r in results:
            item = r.item
            groups.setdefault((r.state, r.available_at), []).append(item.pk)
            if r.state != WorkItemState.DONE:
                per_item.append(
                    WorkItem(
                        pk=item.pk,
                        failure_type=r.failure_type,
                        failure_code=r.failure_code,
                        failure_message=r.failure_message,
                        approvers=r.approvers,
                        approval_deadline=r.approval_deadline,
                    )
                )
            failed += r.state == WorkItemState.FAILED
            invoked += r.invoked
            outputs += len(r.outputs)
            if new_items is not None:
                for payload in r.outputs:
                    new_items.add(
                        payload, str(payload.get("subject") or item.subject)[:254], item.pk
                    )
            run_items.append(
                {
                    "work_item_id": item.pk,
                    "subject": item.subject,
                    "attempt": item.attempts,
                    "idempotency_key": r.key,
                    "outcome": r.outcome,
                    "result_ref": r.result_ref,
                    "failure_type": r.failure_type,
                    "failure_cause": r.failure_message,
                    "started_at": r.started_at,
                }
            )
        increments = {
            "total_items": len(new_items) if new_items is not None else 0,
            "output_items": outputs,
            "failed_items": failed,
            "actions_invoked": invoked,
            "subjects_matched": outputs if self.spec.selects else 0,
        }
        # everything that needs no lock is done before the transaction takes it
        prepared = PreparedRunItems(
            {
                "run_id": run_id,
                "step_id": step.pk,
                "step_run_id": step_run_id,
                "action": step.action,
                "parameters": step.parameters,
                "finished_at": now,
            },
            run_items,
        )
        with transaction.atomic():
            work_items_settle(self.run, self.token, groups, now)
            if per_item:
                WorkItem.objects.bulk_update(
                    per_item,
                    ["failure_type", "failure_code", "failure_message", "approvers",
                     "approval_deadline"],
                    batch_size=500,
                )
            if new_items:
                new_items.insert()
            state = append_batch(
                self.run, prepared, increments=increments, sets={"current_step": step.name}
            )
            self._count_processed(len(results), now + timezone.timedelta(seconds=self.lease))
            # The next step starts as soon as it has items. While it is busy the
            # check is a no-op, so it is made at most every ENSURE_SECONDS; a
            # next-step run that finishes in between is covered by run_progress at
            # the end of this step run.
            if new_items and time.monotonic() >= self._next_ensure:
                step_runs_ensure(self.run, next_step)
                self._next_ensure = time.monotonic() + ENSURE_SECONDS
            self._stop_checked = time.monotonic()
            self._stop_cause = STOP_CAUSES.get(state, "")
            if not (claim_next and state in (RunState.RUNNING, RunState.AWAITING_INPUT)):
                return []
            claim = self._claim(decoded=False)
        return self._claimed(claim)

    def _count_processed(self, processed: int, expires) -> None:
        """Add a committed batch to the step run's count and extend its lease, in
        the commit's transaction, fenced by the lease token. One plain statement
        (it runs under the write lock once per batch; compiling the ORM's UPDATE
        took longer than running it)."""
        quote = connection.ops.quote_name
        lease_token = StepRun._meta.get_field("lease_token")
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {quote(StepRun._meta.db_table)} SET items_processed = "
                "items_processed + %s, lease_expires_at = %s WHERE id = %s AND lease_token = %s",
                [
                    processed,
                    connection.ops.adapt_datetimefield_value(expires),
                    self.step_run.pk,
                    lease_token.get_db_prep_value(self.token, connection),
                ],
            )
            if cursor.rowcount != 1:
                raise LeaseLost(f"step run {self.step_run.pk} lost its lease")

    def _release_claimed(self, cause: str) -> None:
        """After an engine error, give claimed items back instead of waiting for
        their lease to expire."""
        from .progress import items_release

        claimed = getattr(self, "claimed", [])
        if claimed:
            try:
                items_release(self.run, claimed, cause=cause, token=self.token)
            except Exception:
                log.exception("could not release the items of step run %s", self.step_run.pk)


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


def step_run_execute(step_run_id: int) -> str:
    """Entry point of the django-q2 task (see runs.tasks)."""
    _freeze_worker_objects()
    try:
        runner = StepRunner(step_run_id)
    except StepRun.DoesNotExist:
        return f"step run {step_run_id} no longer exists"
    with log_context(run_id=runner.run.pk, step_run_id=step_run_id):  # JSON logs
        return runner.execute()
