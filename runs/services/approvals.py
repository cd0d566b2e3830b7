"""Approvals: a person decides on an item awaiting input (the deadline is engine
work: `runs.engine.approvals.approvals_expire`).

Like every service: validates, changes state only through `runs.machines`, records
who did it, and refuses with RunsError / IllegalTransition; nothing is half-done.
"""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from automations.models import WorkspaceRole
from automations.workspaces import holds_role

from .. import ledger
from ..engine.progress import run_progress
from ..machines import work_items_move
from ..models import Run, WorkItem
from ..states import FailureType, IllegalTransition, WorkItemState
from .errors import InvalidRequest, NotAllowed

# the roles `workspace:ROLE` may name among a step's approvers
WORKSPACE_APPROVER_ROLES = frozenset({WorkspaceRole.OPERATOR, WorkspaceRole.APPROVER})


@dataclass
class Decision:
    work_item: WorkItem
    decision: str


def _may_approve(actor, approvers: list[str], workspace_id) -> bool:
    """A named approver: a username, `group:NAME` (a member of the group), or
    `workspace:ROLE` (`operator` or `approver`: who holds that role in the run's
    workspace, as a member there or through the tenant-wide group)."""
    if not approvers:
        return True
    if actor.get_username() in approvers:
        return True
    groups = set(actor.groups.values_list("name", flat=True))
    if any(a.startswith("group:") and a[6:] in groups for a in approvers):
        return True
    return any(
        a.startswith("workspace:")
        and a[10:] in WORKSPACE_APPROVER_ROLES
        and holds_role(actor, a[10:], workspace_id)
        for a in approvers
    )


def work_item_decide(
    run: Run, *, actor, work_item_id, decision: str, data=None, reason: str = ""
) -> Decision:
    """Approve or reject an item awaiting input. Four eyes: the person who started
    the run may not decide its items; named approvers (usernames or group:NAME)
    only."""
    if decision not in ("approve", "reject"):
        raise InvalidRequest("decision must be 'approve' or 'reject'")
    if data is not None and not isinstance(data, dict):
        raise InvalidRequest("data must be a JSON object")
    item = WorkItem.objects.filter(pk=work_item_id, run=run).first()
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
    if actor is None or not getattr(actor, "pk", None):
        raise NotAllowed("a decision needs a person")
    if run.run_by_id and run.run_by_id == actor.pk:
        raise NotAllowed(
            "four eyes: the person who started the run may not approve its items"
        )
    if not _may_approve(actor, item.approvers, run.automation.workspace_id):
        raise NotAllowed(
            f"{actor.get_username()} is not among the approvers: "
            f"{', '.join(item.approvers)}"
        )
    now = timezone.now()
    approval = {
        "decision": decision,
        "by": actor.get_username(),
        "at": now.isoformat(),
        "data": data or {},
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
            "data": data or {},
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
                    "failure_message": reason or f"rejected by {actor.get_username()}",
                },
                events=[event],
                counters={"failed_items": F("failed_items") + 1},
            )
    run_progress(run)
    item.refresh_from_db()
    return Decision(work_item=item, decision=decision)
