"""What a robot does through the work-items API, written like the engine writes.

Reserving is the engine's claim (`work_items_claim` under the step run's lease
token); releasing moves the item with `work_items_move` fenced by that token and
appends its run item (outcome, attempt, idempotency key `run:item:action`) and
the run's counters in the same transaction; an output is a pending work item of
the next step, which starts its step runs at once (streaming).

Every call is idempotent under the client's retries (robocorp-workitems retries
any failure but 400/401/403/404/409 up to five times):
- reserve: while the robot still holds an item, reserving answers that item (the
  client never reserves before releasing, so a held item means the answer to the
  previous reserve was lost);
- release: a release repeated after the item has moved on answers 200 when this
  step run's last run item for it says the same (COMPLETED: succeeded, FAILED:
  failed);
- output: a request whose payload equals the parent's latest output of the current
  attempt, not written since, answers that output instead of creating another
  (see `runs.robots.outputs`).

Outputs are held (pending, never due) until the robot releases their input:
COMPLETED makes them due at once, a failed attempt drops them. So the next step
sees each output once, with its files, as in Control Room.
"""

import json
import re
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..conf import runs_settings
from ..engine.dispatch import step_runs_ensure
from ..engine.lease import stop_cause
from ..machines import work_items_claim, work_items_move
from ..machines.attempt import attempt_run_item, attempts_fail
from ..machines.work_item import HELD_UNTIL
from ..models import Run, RunItem, StepRun, WorkItem
from ..states import FailureType, RunItemOutcome, WorkItemState


class RobotApiError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class NotFound(RobotApiError):
    status, code = 404, "not_found"


class Conflict(RobotApiError):
    status, code = 409, "conflict"


class TooLarge(RobotApiError):
    status, code = 413, "too_large"


RELEASE_STATES = {
    "COMPLETED": RunItemOutcome.SUCCEEDED,
    "FAILED": RunItemOutcome.FAILED,
}
EXCEPTION_TYPES = {
    "BUSINESS": FailureType.BUSINESS,
    "APPLICATION": FailureType.APPLICATION,
}


@dataclass
class RobotSession:
    """The step run a robot token was issued for."""

    step_run: StepRun

    @property
    def run(self) -> Run:
        return self.step_run.run

    @property
    def step(self):
        return self.step_run.step

    @property
    def token(self):
        return self.step_run.lease_token

    @property
    def actor_label(self) -> str:
        return f"robot:step-run-{self.step_run.pk}"

    def next_step(self):
        return (
            self.step.version.steps.filter(order__gt=self.step.order)
            .order_by("order")
            .first()
        )

    def lease_expires(self):

        return timezone.now() + timezone.timedelta(seconds=runs_settings.LEASE_SECONDS)


def _item_id(value) -> int:
    text = str(value or "")
    if not text.isdigit():
        raise NotFound(f"no work item {text!r}")
    return int(text)


# -- reserve / release ---------------------------------------------------------------


def work_item_reserve(session: RobotSession) -> int | None:
    """The id of the item the robot works on next, or None: queue empty, or the run
    is stopping (complete: the robot finishes its current item, then hears "no more
    items")."""
    held = (
        WorkItem.objects.filter(
            run=session.run, lease_token=session.token, state=WorkItemState.IN_PROGRESS
        )
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )
    if held is not None:
        return held
    if stop_cause(session.run):
        return None
    now = timezone.now()
    rows = work_items_claim(
        session.run,
        session.step,
        limit=1,
        token=session.token,
        owner_id=session.step_run.pk,
        expires=session.lease_expires(),
        now=now,
    )
    return rows[0]["id"] if rows else None


def _release_body(body) -> tuple[int, str, str, str, str]:
    if not isinstance(body, dict):
        raise RobotApiError("the body must be a JSON object")
    item_id = body.get("workItemId")
    if item_id in (None, ""):
        raise RobotApiError("workItemId: required")
    state = body.get("state")
    if state not in RELEASE_STATES:
        raise RobotApiError("state: must be COMPLETED or FAILED")
    exception = body.get("exception") or {}
    if not isinstance(exception, dict):
        raise RobotApiError("exception: must be an object")
    kind = exception.get("type", "APPLICATION")
    if state == "FAILED" and kind not in EXCEPTION_TYPES:
        raise RobotApiError("exception.type: must be BUSINESS or APPLICATION")
    code, message = exception.get("code") or "", exception.get("message") or ""
    if not isinstance(code, str) or not isinstance(message, str):
        raise RobotApiError("exception.code and exception.message must be strings")
    return _item_id(item_id), state, kind, code, message


# an HTTP error as robocorp-workitems words it: "409 Client Error: … - {json}"
_HTTP_ERROR_BODY = re.compile(r"^(?P<head>.*?)\s*-?\s*(?P<body>\{.*\})\s*$", re.DOTALL)


def failure_text(message: str) -> str:
    """A robot's failure message as a cause people read: an HTTP error body in
    this API's JSON shape (`{"detail", "code"}`) becomes its detail."""
    found = _HTTP_ERROR_BODY.match(message)
    if found:
        try:
            body = json.loads(found["body"])
        except ValueError:
            return message
        if isinstance(body, dict) and isinstance(body.get("detail"), str):
            head = found["head"].rstrip(" -:")
            return f"{head}: {body['detail']}" if head else body["detail"]
    return message


def work_item_release(session: RobotSession, body) -> dict:
    """Release the robot's item as COMPLETED or FAILED (BUSINESS: failed for good;
    APPLICATION: back to pending after the step's backoff while attempts are left).
    Its outputs go on to the next step once it is released for good (COMPLETED,
    or FAILED without a retry); a retried attempt drops them (the next makes them
    again)."""
    item_id, state, kind, code, message = _release_body(body)
    run, step = session.run, session.step
    item = WorkItem.objects.filter(pk=item_id, run=run, step=step).first()
    if item is None:
        raise NotFound(f"no work item {item_id} in this robot's step")
    outcome = RELEASE_STATES[state]
    if item.state != WorkItemState.IN_PROGRESS or item.lease_token != session.token:
        last = (
            RunItem.objects.filter(work_item=item, step_run=session.step_run)
            .order_by("-seq")
            .values_list("outcome", flat=True)
            .first()
        )
        if last == outcome:
            return {"workItemId": str(item.pk), "state": state, "replayed": True}
        raise Conflict(
            f"work item {item.pk} is not reserved by this robot run "
            f"(it is {item.state})",
            code="not_reserved",
        )
    counters = {"actions_invoked": F("actions_invoked") + 1, "current_step": step.name}
    with transaction.atomic():
        if state == "FAILED":
            _, failed = attempts_fail(
                run,
                step,
                [item],
                token=session.token,
                step_run_id=session.step_run.pk,
                failure_type=EXCEPTION_TYPES[kind],
                code=code or kind.lower() + "_error",
                cause=failure_text(message or code or kind.title() + " exception"),
                counters=counters,
                keep_failed_outputs=True,
            )
            if failed:
                _outputs_release(session, item)
        else:
            _release_completed(session, item, counters)
        StepRun.objects.filter(
            pk=session.step_run.pk, lease_token=session.token
        ).update(items_processed=F("items_processed") + 1)
    return {"workItemId": str(item.pk), "state": state}


def _release_completed(session: RobotSession, item: WorkItem, counters: dict) -> None:
    run, step = session.run, session.step
    now = timezone.now()
    work_items_move(
        run,
        [item.pk],
        WorkItemState.DONE,
        fence_token=session.token,
        allowed_from=frozenset({WorkItemState.IN_PROGRESS}),
        updates={"failure_type": "", "failure_code": "", "failure_message": ""},
        run_items=[
            attempt_run_item(
                run,
                step,
                item,
                step_run_id=session.step_run.pk,
                outcome=RunItemOutcome.SUCCEEDED,
                now=now,
            )
        ],
        counters=counters,
    )
    _outputs_release(session, item)


def _outputs_release(session: RobotSession, item: WorkItem) -> None:
    """The item is released for good: its outputs reach the next step now, each
    once, with its files."""
    released = WorkItem.objects.filter(
        parent=item, state=WorkItemState.PENDING, available_at=HELD_UNTIL
    ).update(available_at=timezone.now())
    next_step = session.next_step() if released else None
    if next_step is not None:
        step_runs_ensure(session.run, next_step)
