"""A robot's outputs, payloads and files through the work-items API.

An output is a pending work item of the next step, held for the robot (due never:
`HELD_UNTIL`) until it releases the input that produced it; until then the robot
may still write its payload and files, and nothing else sees it. A repeated create
(the client retries a call whose answer was lost) answers the output already made.
"""

import hashlib

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import ledger
from ..conf import runs_settings
from ..files import content_sha256
from ..machines.work_item import HELD_UNTIL
from ..models import WorkItem, WorkItemFile
from ..secrets.references import redactor_for
from ..states import WorkItemState
from .services import (
    Conflict,
    NotFound,
    RobotApiError,
    RobotSession,
    TooLarge,
    _item_id,
)

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
    if not _holds(session, item):
        raise Conflict(
            f"work item {item.pk} is not reserved by this robot run",
            code="not_reserved",
        )
    return item


def work_item_output(session: RobotSession, parent_id, body) -> dict:
    """Create an output of the robot's current item: a pending item of the next step."""
    if not isinstance(body, dict):
        raise RobotApiError("the body must be a JSON object")
    # a value of the step's secrets reaches no payload (nor its audit event)
    payload = redactor_for(session.step.parameters).value(_payload(body.get("payload")))
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
        ledger.run_lock(session.run)
        latest = (
            WorkItem.objects.filter(
                parent=parent,
                step=next_step,
                available_at=HELD_UNTIL,
                created_at__gte=parent.updated_at,
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
            available_at=HELD_UNTIL,  # until the robot releases its input
        )
        ledger.append(
            run=session.run,
            # an output for the next step: output_items counts the run's own
            # outputs (its last step's), which a robot step never makes
            counters={"total_items": F("total_items") + 1},
        )
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


def _holds(session: RobotSession, item: WorkItem) -> bool:
    return item.state == WorkItemState.IN_PROGRESS and item.lease_token == session.token


def _writable_item(session: RobotSession, item_id) -> WorkItem:
    """The robot's reserved input, or an output of it still held for it (outputs
    leave the robot's hands when their input is released)."""
    item = _visible_item(session, item_id)
    if item.step_id == session.step.pk:
        if _holds(session, item):
            return item
    elif (
        item.state == WorkItemState.PENDING
        and item.available_at == HELD_UNTIL
        and _holds(session, item.parent)
    ):
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
    payload = redactor_for(session.step.parameters).value(_payload(payload))
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
