"""Approvals: a person decides on an item awaiting input (the deadline and the
notices to approvers are engine work: `runs.engine.approvals`).

Like every service: validates, changes state only through `runs.machines`, records
who did it, and refuses with RunsError / IllegalTransition; nothing is half-done.
A refusal of the decider (four eyes, not an approver, no permission) is itself
recorded: `work_item.decision_refused` in the run's audit trail.
"""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from automations.input_schema import data_problems
from automations.workspaces import may

from .. import ledger
from ..engine.children import child_waits
from ..engine.progress import run_progress
from ..machines import work_items_move
from ..models import Run, WorkItem
from ..selectors import DECIDE_PERMISSION, ApproverMatch
from ..states import FailureType, IllegalTransition, WorkItemState
from .errors import InvalidRequest, NotAllowed

# the roles `workspace:ROLE` may name among a step's approvers


@dataclass
class Decision:
    work_item: WorkItem
    decision: str


class DecisionRefused(NotAllowed):
    """The person may not decide on this item. `record()` writes the refusal to the
    run's audit trail; the service calls it, and an interface that undoes its own
    transaction on a refusal (admin bulk actions) calls it again after that."""

    def __init__(self, message: str, *, run, item, actor, decision: str):
        super().__init__(message, code="not_an_approver")
        self.run, self.item, self.actor, self.decision = run, item, actor, decision

    def record(self) -> None:
        event = ledger.audit_event(
            verb="work_item.decision_refused",
            run=self.run,
            actor=self.actor,
            reason=str(self),
            before={"work_item": self.item.pk, "state": self.item.state},
            after={"decision": self.decision},
        )
        with transaction.atomic():
            ledger.append(run=self.run, events=[event])


class InvalidInput(InvalidRequest):
    """Input data that does not match the step's `input_schema`; `problems` are
    (field, message) pairs, the field named as in the API body (`data.code`)."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__(
            "; ".join(f"{where}: {message}" for where, message in problems),
            code="invalid_input",
        )
        self.problems = problems


def decision_refusal(run: Run, item: WorkItem, actor, *, to_actor=False) -> str:
    """Why `actor` may not decide on `item` of `run` ('' when they may): the one
    rule the admin pages (which buttons show, and why not), the API
    (`?awaiting=me`) and `work_item_decide` share. `to_actor`: the reason as told
    to the person on a page ("You started this run: …"); otherwise as recorded in
    the audit trail, naming them."""
    if actor is None or not getattr(actor, "pk", None):
        return "a decision needs a person"
    name = actor.get_username()
    if run.run_by_id and run.run_by_id == actor.pk:
        if to_actor:
            return "You started this run: four-eyes rule, someone else must approve"
        return "four eyes: the person who started the run may not approve its items"
    workspace_id = run.automation.workspace_id
    if not ApproverMatch(actor)(item.approvers, workspace_id):
        who = "You are" if to_actor else f"{name} is"
        return f"{who} not among the approvers: {', '.join(item.approvers)}"
    if not may(actor, DECIDE_PERMISSION, workspace_id):
        who = "You lack" if to_actor else f"{name} lacks"
        return f"{who} the {DECIDE_PERMISSION} permission in this workspace"
    return ""


def decision_refusals(run: Run, items, actor) -> dict:
    """{pk: why not} of the items of `run` awaiting input on which `actor` may not
    decide (as told to them: `decision_refusal(to_actor=True)`); the items they
    may decide on are absent. The rule is asked once per distinct approvers
    list, so a page of items costs a few queries, not a few per item."""
    by_approvers: dict = {}
    refusals = {}
    for item in items:
        if item.state != WorkItemState.AWAITING_INPUT:
            continue
        key = tuple(item.approvers or [])
        if key not in by_approvers:
            by_approvers[key] = decision_refusal(run, item, actor, to_actor=True)
        if by_approvers[key]:
            refusals[item.pk] = by_approvers[key]
    return refusals


def input_schema_of(item: WorkItem) -> dict | None:
    """The JSON Schema the approval data of `item` must match, if its step has one."""
    schema = (item.step.parameters or {}).get("input_schema")
    return schema if isinstance(schema, dict) else None


def work_item_decide(
    run: Run, *, actor, work_item_id, decision: str, data=None, reason: str = ""
) -> Decision:
    """Approve or reject an item awaiting input. Four eyes: the person who started
    the run may not decide its items; named approvers (usernames or group:NAME)
    only; a refusal is recorded. A rejection needs a reason; an approval's data
    must match the step's `input_schema` (InvalidInput names the field)."""
    if decision not in ("approve", "reject"):
        raise InvalidRequest("decision must be 'approve' or 'reject'")
    if data is not None and not isinstance(data, dict):
        raise InvalidRequest("data must be a JSON object")
    item = (
        WorkItem.objects.filter(pk=work_item_id, run=run).select_related("step").first()
    )
    if item is None:
        raise InvalidRequest(
            f"work item {work_item_id} is not in run {run.number}", code="not_found"
        )
    if item.state != WorkItemState.AWAITING_INPUT:
        raise IllegalTransition(
            item,
            item.state,
            decision,
            reason=f"work item {item.pk} is {item.state}, not awaiting input",
        )
    child = child_waits(item)
    if child is not None:
        raise IllegalTransition(
            item,
            item.state,
            decision,
            reason=f"work item {item.pk} waits for child run #{child.number}, "
            "not for a person: it takes that run's outcome",
        )
    refusal = decision_refusal(run, item, actor)
    if refusal:
        refused = DecisionRefused(
            refusal, run=run, item=item, actor=actor, decision=decision
        )
        if getattr(actor, "pk", None):  # nobody to record without a person
            refused.record()
        raise refused
    reason = (reason or "").strip()
    data = data or {}
    if decision == "reject":
        if not reason:
            raise InvalidRequest(
                "a reason is required to reject a work item", code="reason_required"
            )
        data = {}
    else:
        schema = input_schema_of(item)
        problems = data_problems(schema, data) if schema else []
        if problems:
            raise InvalidInput(problems)
    now = timezone.now()
    approval = {
        "decision": decision,
        "by": actor.get_username(),
        "at": now.isoformat(),
        "data": data,
        "reason": reason,
    }
    event = ledger.audit_event(
        verb=f"work_item.{'approved' if decision == 'approve' else 'rejected'}",
        run=run,
        actor=actor,
        reason=reason,
        before={"work_item": item.pk, "state": item.state},
        after={
            "state": WorkItemState.PENDING
            if decision == "approve"
            else WorkItemState.FAILED,
            "data": data,
        },
    )
    with transaction.atomic():
        if decision == "approve":
            work_items_move(
                run,
                [item.pk],
                WorkItemState.PENDING,
                allowed_from=frozenset({WorkItemState.AWAITING_INPUT}),
                updates={"approval": approval, "available_at": now},
                events=[event],
            )
        else:
            work_items_move(
                run,
                [item.pk],
                WorkItemState.FAILED,
                allowed_from=frozenset({WorkItemState.AWAITING_INPUT}),
                updates={
                    "approval": approval,
                    "failure_type": FailureType.BUSINESS,
                    "failure_code": "rejected",
                    "failure_message": reason,
                },
                events=[event],
                counters={"failed_items": F("failed_items") + 1},
            )
    run_progress(run)
    item.refresh_from_db()
    return Decision(work_item=item, decision=decision)
