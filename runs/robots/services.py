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
  attempt, not written since, answers that output instead of creating another.
"""

import hashlib
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import ledger
from ..conf import runs_settings
from ..engine.dispatch import step_runs_ensure
from ..engine.step_runs import STOP_CAUSES, idempotency_key
from ..files import content_sha256
from ..machines import work_items_claim, work_items_move
from ..models import Run, RunItem, StepRun, WorkItem, WorkItemFile
from ..states import (
    FailureType,
    RunItemOutcome,
    RunState,
    WorkItemState,
)


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


def stop_cause(run: Run) -> str:
    """Why the run's robots must take no new item ("" when they may)."""
    run.refresh_from_db(fields=["state", "deadline_at"])
    if run.state not in (RunState.RUNNING, RunState.AWAITING_INPUT):
        return STOP_CAUSES.get(run.state, "stopping")
    if run.deadline_at and timezone.now() >= run.deadline_at:
        return "timed out"
    return ""


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


def work_item_release(session: RobotSession, body) -> dict:
    """Release the robot's item as COMPLETED or FAILED (BUSINESS: failed for good;
    APPLICATION: back to pending after the step's backoff while attempts are left)."""
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
            f"work item {item.pk} is not reserved by this robot run (it is {item.state})",
            code="not_reserved",
        )
    now = timezone.now()
    failure_type = EXCEPTION_TYPES[kind] if state == "FAILED" else ""
    to, updates, failed = (
        WorkItemState.DONE,
        {"failure_type": "", "failure_code": "", "failure_message": ""},
        0,
    )
    if state == "FAILED":
        updates = {
            "failure_type": failure_type,
            "failure_code": (code or kind.lower() + "_error")[:100],
            "failure_message": (message or code or kind.title() + " exception")[:4000],
        }
        retry = (
            failure_type == FailureType.APPLICATION
            and item.attempts < step.max_attempts
        )
        if retry:
            backoff = step.retry_backoff_seconds * 2 ** (item.attempts - 1)
            to = WorkItemState.PENDING
            updates["available_at"] = now + timezone.timedelta(seconds=backoff)
        else:
            to, failed = WorkItemState.FAILED, 1
    run_item = RunItem(
        run=run,
        work_item_id=item.pk,
        step=step,
        step_run_id=session.step_run.pk,
        action=step.action,
        subject=item.subject,
        parameters=step.parameters,
        attempt=item.attempts,
        idempotency_key=idempotency_key(run.pk, item.pk, step.action),
        outcome=outcome,
        result_ref="",
        failure_type=failure_type,
        failure_cause=updates.get("failure_message", ""),
        started_at=item.updated_at,
        finished_at=now,
    )
    with transaction.atomic():
        work_items_move(
            run,
            [item.pk],
            to,
            fence_token=session.token,
            allowed_from=frozenset({WorkItemState.IN_PROGRESS}),
            updates=updates,
            run_items=[run_item],
            counters={
                "failed_items": F("failed_items") + failed,
                "actions_invoked": F("actions_invoked") + 1,
                "current_step": step.name,
            },
        )
        StepRun.objects.filter(
            pk=session.step_run.pk, lease_token=session.token
        ).update(items_processed=F("items_processed") + 1)
    return {"workItemId": str(item.pk), "state": state}


# -- outputs ---------------------------------------------------------------------


def _payload(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RobotApiError("payload: must be a JSON object (or null)")
    return value


def _held_input(session: RobotSession, item_id) -> WorkItem:
    item = WorkItem.objects.filter(
        pk=_item_id(item_id), run=session.run, step=session.step
    ).first()
    if item is None:
        raise NotFound(f"no work item {item_id} in this robot's step")
    if item.state != WorkItemState.IN_PROGRESS or item.lease_token != session.token:
        raise Conflict(
            f"work item {item.pk} is not reserved by this robot run",
            code="not_reserved",
        )
    return item


def work_item_output(session: RobotSession, parent_id, body) -> dict:
    """Create an output of the robot's current item: a pending item of the next step."""
    if not isinstance(body, dict):
        raise RobotApiError("the body must be a JSON object")
    payload = _payload(body.get("payload"))
    parent = _held_input(session, parent_id)
    next_step = session.next_step()
    if next_step is None:
        raise Conflict(
            f"step {session.step.name} is the automation's last step: its outputs have "
            "no step to go to",
            code="no_next_step",
        )
    with transaction.atomic():
        # lock the run row: two retries of one call must not both pass the check
        Run.objects.select_for_update().filter(pk=session.run.pk).values_list(
            "pk"
        ).get()
        latest = (
            WorkItem.objects.filter(
                parent=parent, step=next_step, created_at__gte=parent.updated_at
            )
            .order_by("-id")
            .first()
        )
        if (
            latest is not None
            and latest.payload == payload
            and latest.updated_at == latest.created_at
            and not latest.files.exists()
        ):
            return {"id": str(latest.pk), "replayed": True}
        now = timezone.now()
        output = WorkItem.objects.create(
            run=session.run,
            step=next_step,
            parent=parent,
            payload=payload,
            subject=str(payload.get("subject") or parent.subject)[:254],
            created_at=now,
            updated_at=now,
            available_at=now,
        )
        ledger.append(
            run=session.run,
            counters={
                "total_items": F("total_items") + 1,
                "output_items": F("output_items") + 1,
            },
        )
        step_runs_ensure(session.run, next_step)
    return {"id": str(output.pk)}


# -- payloads and files ------------------------------------------------------------


def _visible_item(session: RobotSession, item_id) -> WorkItem:
    """An item of the robot's step, or an output of one (anything else is foreign)."""
    pk = _item_id(item_id)
    item = (
        WorkItem.objects.filter(pk=pk, run=session.run).select_related("parent").first()
    )
    if item is not None and (
        item.step_id == session.step.pk
        or (item.parent is not None and item.parent.step_id == session.step.pk)
    ):
        return item
    raise NotFound(f"no work item {item_id} in this robot's step")


def _writable_item(session: RobotSession, item_id) -> WorkItem:
    """The robot's reserved input, or a still-pending output of its step."""
    item = _visible_item(session, item_id)
    if item.step_id == session.step.pk:
        if (
            item.state == WorkItemState.IN_PROGRESS
            and item.lease_token == session.token
        ):
            return item
    elif item.state == WorkItemState.PENDING:
        return item
    raise Conflict(
        f"work item {item.pk} cannot change now (it is {item.state})", code="read_only"
    )


def _touch(session: RobotSession, item: WorkItem) -> None:
    """Mark an output written (an input keeps updated_at: it holds its claim time)."""
    if item.step_id != session.step.pk:
        WorkItem.objects.filter(pk=item.pk).update(updated_at=timezone.now())


def work_item_payload(session: RobotSession, item_id) -> dict:
    return _visible_item(session, item_id).payload


def work_item_payload_set(session: RobotSession, item_id, payload) -> dict:
    payload = _payload(payload)
    with transaction.atomic():
        item = _writable_item(session, item_id)
        if item.payload == payload:
            return payload  # a repeated PUT changes nothing
        WorkItem.objects.filter(pk=item.pk).update(payload=payload)
        _touch(session, item)
        if item.step_id == session.step.pk:
            ledger.append(
                run=session.run,
                events=[
                    ledger.audit_event(
                        verb="work_item.payload_changed",
                        obj=item,
                        run=session.run,
                        actor_label=session.actor_label,
                        before={"payload": item.payload},
                        after={"payload": payload},
                    )
                ],
            )
    return payload


def work_item_files(session: RobotSession, item_id) -> list[dict]:
    item = _visible_item(session, item_id)
    return [
        {
            "fileName": f.name,
            "fileId": str(f.pk),
            "fileSize": f.size,
            "created": f.created_at.isoformat(),
        }
        for f in item.files.order_by("name")
    ]


def work_item_file(session: RobotSession, item_id, file_id) -> WorkItemFile:
    item = _visible_item(session, item_id)
    found = item.files.filter(pk=_item_id(file_id)).first()
    if found is None:
        raise NotFound(f"no file {file_id} on work item {item.pk}")
    return found


def file_upload_check(
    session: RobotSession, item_id, body
) -> tuple[WorkItem, str, int]:
    """Validate a request to attach a file; the upload itself goes to a signed URL."""
    if not isinstance(body, dict):
        raise RobotApiError("the body must be a JSON object")
    name, size = body.get("fileName"), body.get("fileSize")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise RobotApiError("fileName: required, a name of at most 200 characters")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise RobotApiError("fileName: a plain file name, without directories")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise RobotApiError("fileSize: required, a number of bytes")
    limit = runs_settings.ROBOT_MAX_FILE_BYTES
    if size > limit:
        raise TooLarge(f"fileSize {size} is over the limit of {limit} bytes")
    return _writable_item(session, item_id), name, size


def file_store(session: RobotSession, item_id, name: str, upload) -> WorkItemFile:
    """Store an uploaded file (replacing one of the same name) through Django's
    storage API."""
    with transaction.atomic():
        item = _writable_item(session, item_id)
        for old in item.files.filter(name=name):
            old.file.delete(save=False)
            old.delete()
        stored = WorkItemFile(
            work_item=item,
            name=name,
            size=upload.size,
            content_type=getattr(upload, "content_type", "") or "",
            sha256=content_sha256(upload),
            step_run_id=session.step_run.pk,
        )
        stored.file.save(_storage_name(name), upload, save=False)
        stored.save()
        _touch(session, item)
    return stored


def file_delete(session: RobotSession, item_id, file_id) -> None:
    with transaction.atomic():
        item = _writable_item(session, item_id)
        found = item.files.filter(pk=_item_id(file_id)).first()
        if found is None:
            raise NotFound(f"no file {file_id} on work item {item.pk}")
        found.file.delete(save=False)
        found.delete()
        _touch(session, item)


def _storage_name(name: str) -> str:
    # the storage name need not be the file's name (kept in WorkItemFile.name);
    # a digest prefix keeps odd characters out of paths
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[-100:]
    return f"{digest}-{safe}"
