"""Item processing: a step run calls its action on each claimed item, outside any
transaction, and keeps the outcome as an `ItemResult` for the batch commit."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from django.db import IntegrityError
from django.utils import timezone

from automations.actions.registry import (
    ActionContext,
    AwaitApproval,
    AwaitChild,
    BusinessError,
    Result,
)
from automations.conditions import evaluate
from runs.conf import runs_settings

from ..ledger import idempotency_key
from ..machines.attempt import retry_at
from ..models import ActionResult, Run
from ..secrets.references import Resolved, SecretUnavailable, resolve
from ..states import STOP_ASKED, STOP_CAUSES, FailureType, RunItemOutcome, WorkItemState

STOP_CHECK_SECONDS = 0.25


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
        raise TypeError(
            "an action must return a dict, a list of dicts, a Result or None"
        )
    return Result(outputs=outputs, result_ref=str(ref or "")[:254])


class ItemProcessing:
    """The item half of a Python step run (mixed into StepRunner): `self.run`,
    `self.run_key`, `self.step` and `self.spec` are the step run's."""

    _thread = None  # the step run's own thread (set per batch): see should_stop
    _stop_asked = False  # the run is stopping (or past): see stop_asked

    def should_stop(self) -> bool:
        """True once the run is terminating, timed out or failed (checked at most
        every STOP_CHECK_SECONDS; actions may call it between units of work). An
        action in flight on another thread gets what the step run's thread last
        read: only that thread touches the database."""
        if self._stop_cause:
            return True
        if self._thread is not None and threading.get_ident() != self._thread:
            return False
        now = time.monotonic()
        if now - self._stop_checked < STOP_CHECK_SECONDS:
            return False
        self._stop_checked = now
        state = Run.objects.filter(pk=self.run.pk).values_list("state", flat=True).get()
        self._stop_cause = STOP_CAUSES.get(state, "")
        self._stop_asked = state in STOP_ASKED
        if (
            not self._stop_cause
            and self.run.deadline_at
            and timezone.now() >= self.run.deadline_at
        ):
            self._stop_cause = "timed out"
        return bool(self._stop_cause)

    def stop_asked(self) -> bool:
        """An action's `ctx.should_stop()`: true from the moment any stop is asked
        (stopping too, where the engine itself lets the batch in hand finish), so
        an action may end its own unit of work early. The engine's own check is
        `should_stop` (terminating, timed out, failed)."""
        return self.should_stop() or self._stop_asked

    _resolved: Resolved | None = None

    def resolved(self) -> Resolved:
        """The step's parameters with their secret references put in, and the
        redactor of those values: once per step run, at the first call."""
        if self._resolved is None:
            # the step's automation's workspace: loaded with the step run
            # (`step_run_load`), no query of its own
            self._resolved = resolve(
                self.step.parameters, self.run.automation.workspace_id
            )
        return self._resolved

    def _process(self, items: list[ClaimedItem]) -> list[ItemResult]:
        """Results for the first items of `items`: all of them, or as many as were
        done when RUNS_COMMIT_SECONDS ran out (slow actions still show progress,
        and hand their outputs to the next step, that often)."""
        self._thread = threading.get_ident()
        results = []
        journal = {}
        if self.spec.journal:
            keys = [
                idempotency_key(self.run_key, i.pk, self.step.action) for i in items
            ]
            journal = {r.pk: r for r in ActionResult.objects.filter(pk__in=keys)}
        commit_by = time.monotonic() + runs_settings.COMMIT_SECONDS
        if self.step.max_in_flight > 1 and len(items) > 1:
            from .in_flight import process_in_flight

            return process_in_flight(self, items, journal, commit_by)
        for item in items:
            if results and time.monotonic() >= commit_by:
                break
            if self.should_stop():
                results.append(self._stopped(item))
                continue
            results.append(self._process_one(item, journal))
            self.heartbeat()
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
        prepared = self._prepare(item, journal)
        if isinstance(prepared, ItemResult):
            return prepared
        result, context = prepared
        try:
            value, exc = _normalise(self._call(context)), None
        except Exception as error:  # noqa: BLE001 (classified by _finish)
            value, exc = None, error
        return self._finish(result, value, exc)

    def _prepare(self, item: ClaimedItem, journal: dict):
        """In the step run's thread: the item's result when no call is needed
        (skipped, awaiting approval, replayed), else (result, context) to call."""
        step = self.step
        started = timezone.now()
        key = idempotency_key(self.run_key, item.pk, step.action)
        result = ItemResult(
            item=item, outcome="", state="", started_at=started, key=key
        )
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
            result.outcome, result.state = (
                RunItemOutcome.IDEMPOTENT_REPLAY,
                WorkItemState.DONE,
            )
            result.outputs, result.result_ref = record.outputs, record.result_ref
            return result
        try:
            resolved = self.resolved()
        except SecretUnavailable as exc:
            return self._failed(
                result, FailureType.BUSINESS, "secret_unavailable", str(exc)
            )
        context = ActionContext(
            payload=item.payload,
            parameters=resolved.parameters,
            run=self.run,
            step=step,
            work_item=item,
            subject=item.subject,
            attempt=item.attempts,
            idempotency_key=key,
            should_stop=self.stop_asked,
            approval=item.approval,
        )
        result.invoked = not self.spec.selects
        return result, context

    def _finish(self, result: ItemResult, value, exc, journal=None) -> ItemResult:
        """In the step run's thread: the outcome of a call that returned `value`
        (normalised) or raised `exc`; a journalled action's result is recorded
        (or, given a `journal` list, added to it for the caller to write). What
        the outside world answered is written only with the secret values the call
        used replaced by their references."""
        step, item = self.step, result.item
        redact = self.resolved().redactor
        if isinstance(exc, BusinessError):
            result.result_ref = str(exc.result_ref or "")[:254]
            return self._failed(
                result, FailureType.BUSINESS, exc.code, redact.text(str(exc))
            )
        if isinstance(exc, AwaitApproval):
            result.invoked = False
            return self._awaiting(result, exc.approvers, exc.deadline_seconds)
        if isinstance(exc, AwaitChild):
            # waits like an approval (no worker held) until the child settles;
            # the run item names the child run
            result.result_ref = exc.child_ref
            return self._awaiting(result, [], None)
        if exc is not None:  # an application error: retried
            message = redact.text(f"{type(exc).__name__}: {exc}")
            result.available_at = retry_at(step, item.attempts, timezone.now())
            if result.available_at is not None:
                return self._failed(
                    result,
                    FailureType.APPLICATION,
                    "application_error",
                    message,
                    state=WorkItemState.PENDING,
                )
            return self._failed(
                result, FailureType.APPLICATION, "application_error", message
            )
        if redact.pairs:
            value = Result(
                outputs=redact.value(value.outputs),
                result_ref=redact.text(value.result_ref),
            )
        if self.spec.journal:
            record = ActionResult(
                idempotency_key=result.key,
                run=self.run,
                outputs=value.outputs,
                result_ref=value.result_ref,
            )
            if journal is not None:
                journal.append(record)
            else:
                try:
                    record.save(force_insert=True)
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
        # any, is ignored and the item fails as an application error. Meanwhile this
        # thread keeps reading the run's state for the action's should_stop().
        pool = ThreadPoolExecutor(max_workers=1)
        deadline = time.monotonic() + timeout
        try:
            future = pool.submit(self.spec.func, context)
            while True:
                left = deadline - time.monotonic()
                try:
                    return future.result(timeout=max(min(left, 0.25), 0.001))
                except FutureTimeout:
                    if left <= 0:
                        raise TimeoutError(
                            f"item took longer than {timeout}s"
                        ) from None
                    self.should_stop()
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
