"""Retry with corrected data: edit a failed item's payload (audited, before and
after, a reason required), re-read failed items' subjects from their source before
a retry (`run_retry(reread_subjects=True)`), and the inputs of a re-run of the
failed items only (`run_rerun(failed_only=True)`).

Payloads are not state: they are written with a conditional UPDATE on a failed
item, under the run's lock, with their audit event in the same transaction.
"""

import json

from django.db import transaction

from automations.actions.builtins import source_parameters
from automations.actions.registry import get_subject_source
from runs.conf import runs_settings

from .. import ledger
from ..models import Run, WorkItem
from ..states import IllegalTransition, WorkItemState
from .errors import InvalidRequest

SELECT_ACTION = "builtin.select_subjects"


def _payload_clean(payload) -> dict:
    if not isinstance(payload, dict):
        raise InvalidRequest("payload must be a JSON object")
    size = len(json.dumps(payload, separators=(",", ":")).encode())
    if size > runs_settings.MAX_INPUT_BYTES:
        raise InvalidRequest(
            f"payload is {size} bytes, larger than the limit of "
            f"{runs_settings.MAX_INPUT_BYTES} (RUNS_MAX_INPUT_BYTES)",
            code="too_large",
        )
    return payload


def work_item_payload_edit(
    run: Run, *, actor, work_item_id, payload, reason: str
) -> WorkItem:
    """Replace the payload of a failed item (to retry it with corrected data).
    Recorded as `work_item.payload_edited` with the payload before and after and
    the reason, which is required. Only a failed item can be edited."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest(
            "a reason is required to edit a payload", code="reason_required"
        )
    payload = _payload_clean(payload)
    with transaction.atomic():
        ledger.run_lock(run)
        item = WorkItem.objects.filter(pk=work_item_id, run=run).first()
        if item is None:
            raise InvalidRequest(
                f"work item {work_item_id} is not in run {run.number}",
                code="not_found",
            )
        if item.payload == payload:
            raise InvalidRequest(
                "the payload is unchanged: nothing to record", code="nothing_to_do"
            )
        changed = WorkItem.objects.filter(
            pk=item.pk, state=WorkItemState.FAILED
        ).update(payload=payload)
        if not changed:
            raise IllegalTransition(
                item,
                item.state,
                "edited",
                reason=f"work item {item.pk} is {item.state}: only a failed item's "
                "payload can be edited",
            )
        ledger.append(
            run=run,
            events=[
                ledger.audit_event(
                    verb="work_item.payload_edited",
                    run=run,
                    actor=actor,
                    reason=reason,
                    before={"work_item": item.pk, "payload": item.payload},
                    after={"payload": payload},
                )
            ],
        )
    item.payload = payload
    return item


def _select_step(run: Run):
    step = run.version.steps.filter(action=SELECT_ACTION).order_by("order").first()
    if step is None or not step.parameters.get("source"):
        raise InvalidRequest(
            f"run {run.number} selected no subjects from a source: there is "
            "nothing to re-read them from",
            code="nothing_to_reread",
        )
    return step


def _root_payload(item: WorkItem) -> dict:
    """The payload of the run input `item` came from (its first ancestor)."""
    seen = 0
    while item.parent_id is not None and seen < 1000:
        item = WorkItem.objects.only("pk", "parent_id", "payload").get(
            pk=item.parent_id
        )
        seen += 1
    return item.payload


def subjects_reread(run: Run, ids: list[int]) -> dict[int, dict]:
    """For failed items `ids`: their payload with their subject's current data
    from the run's subject source (asked again with the parameters the run
    selected with), keyed by item id; subjects the source no longer has keep
    their payload (absent from the answer). Reads only: the caller writes."""
    step = _select_step(run)
    items = list(
        WorkItem.objects.filter(run=run, pk__in=ids).only(
            "pk", "subject", "payload", "parent_id"
        )
    )
    try:
        source = get_subject_source(step.parameters["source"])
    except LookupError as exc:
        raise InvalidRequest(str(exc), code="unknown_source") from None
    fresh: dict = {}
    by_parameters: dict = {}
    for item in items:
        parameters = source_parameters(step.parameters, _root_payload(item))
        key = json.dumps(parameters, sort_keys=True, default=str)
        if key not in by_parameters:
            rows = source(run, parameters)
            by_parameters[key] = {
                str(row.get("subject") or row.get("id") or ""): row for row in rows
            }
        row = by_parameters[key].get(item.subject)
        if row is not None and item.subject:
            fresh[item.pk] = _payload_clean({**item.payload, **row})
    return fresh


def payloads_reread_write(run: Run, *, actor, reason: str, fresh: dict, old: dict):
    """Inside the retry's transaction: write the re-read payloads of failed items
    and their `work_item.payload_reread` events (before and after)."""
    events = []
    for pk, payload in fresh.items():
        if old.get(pk) == payload:
            continue
        WorkItem.objects.filter(pk=pk, run=run, state=WorkItemState.FAILED).update(
            payload=payload
        )
        events.append(
            ledger.audit_event(
                verb="work_item.payload_reread",
                run=run,
                actor=actor,
                reason=reason,
                before={"work_item": pk, "payload": old.get(pk)},
                after={"payload": payload},
            )
        )
    ledger.append(run=run, events=events)
    return len(events)


def failed_inputs(run: Run) -> list[dict]:
    """The run inputs whose items failed (each once, in input order): what a
    re-run of the failed items only starts with."""
    failed = WorkItem.objects.filter(run=run, state=WorkItemState.FAILED).only(
        "pk", "parent_id", "payload"
    )
    roots: dict[int, dict] = {}
    pending = list(failed)
    if not pending:
        raise InvalidRequest(
            f"run {run.number} has no failed work items", code="nothing_to_do"
        )
    parents: set[int] = set()
    for item in pending:
        if item.parent_id is None:
            roots[item.pk] = item.payload
        else:
            parents.add(item.parent_id)
    while parents:
        level = list(
            WorkItem.objects.filter(pk__in=parents).only("pk", "parent_id", "payload")
        )
        parents = set()
        for item in level:
            if item.parent_id is None:
                roots[item.pk] = item.payload
            else:
                parents.add(item.parent_id)
    return [roots[pk] for pk in sorted(roots)]
