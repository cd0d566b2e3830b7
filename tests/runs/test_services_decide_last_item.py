"""Rejecting the last item a run awaits finishes the run (engine fix)."""

import pytest

from runs.engine import run_until_idle
from runs.models import AuditEvent
from runs.services import run_start, work_item_decide
from runs.states import RunState, WorkItemState


@pytest.mark.django_db
def test_rejecting_the_last_awaiting_item_leaves_the_run_unresolved(
    automation, user, other_user
):
    auto = automation({"action": "builtin.request_approval"}, "builtin.echo")
    run = run_start(automation=auto, inputs=[{"subject": "a"}], actor=user)
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_INPUT
    item = run.work_items.get()
    decision = work_item_decide(
        run, actor=other_user, work_item_id=item.pk, decision="reject", reason="no"
    )
    assert decision.work_item.state == WorkItemState.FAILED
    run.refresh_from_db()
    assert run.state == RunState.UNRESOLVED
    verbs = list(
        AuditEvent.objects.filter(run=run)
        .order_by("seq")
        .values_list("verb", flat=True)
    )
    assert verbs[-3:] == ["work_item.rejected", "run.resumed", "run.unresolved"]
