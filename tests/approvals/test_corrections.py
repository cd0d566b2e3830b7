"""Retry with corrected data: an audited payload edit, re-reading subjects before
a retry, and a re-run of the failed inputs only."""

import json

import pytest
from django.urls import reverse

import tests.actions as test_actions
from runs.engine import run_until_idle
from runs.models import AuditEvent, Run, WorkItem
from runs.services import (
    InvalidRequest,
    run_rerun,
    run_retry,
    run_start,
    work_item_payload_edit,
)
from runs.states import IllegalTransition, RunState, WorkItemState
from tests.api.conftest import client_for
from tests.factories import make_user


@pytest.fixture
def failed_run(automation):
    """Two accounts selected, one not eligible: the run ends unresolved."""
    test_actions.accounts.update({"A-1": {"bad": False}, "A-2": {"bad": True}})
    auto = automation(
        {
            "action": "builtin.select_subjects",
            "parameters": {"source": "test.accounts"},
        },
        "test.business_fail",
    )
    run = run_start(automation=auto, inputs=[{"batch": 7}])
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.UNRESOLVED and run.failed_items == 1
    return run


def failed_item(run):
    return WorkItem.objects.get(run=run, state=WorkItemState.FAILED)


def test_edit_a_failed_payload_is_recorded_before_and_after(failed_run, operator):
    item = failed_item(failed_run)
    before = item.payload
    work_item_payload_edit(
        failed_run,
        actor=operator,
        work_item_id=item.pk,
        payload={**before, "bad": False},
        reason="the account was reopened",
    )
    event = AuditEvent.objects.get(run=failed_run, verb="work_item.payload_edited")
    assert event.before == {"work_item": item.pk, "payload": before}
    assert event.after == {"payload": {**before, "bad": False}}
    assert event.reason == "the account was reopened" and event.actor == operator
    run_retry(failed_run, actor=operator)
    run_until_idle(failed_run)
    failed_run.refresh_from_db()
    assert failed_run.state == RunState.COMPLETED


@pytest.mark.parametrize(
    "payload,reason,error",
    [
        ({"bad": False}, "", "reason is required"),
        ([1], "why", "JSON object"),
        ({"x": "y" * 70_000}, "why", "larger than the limit"),
    ],
)
def test_a_bad_edit_is_refused_and_writes_nothing(
    failed_run, operator, payload, reason, error
):
    item = failed_item(failed_run)
    with pytest.raises(InvalidRequest, match=error):
        work_item_payload_edit(
            failed_run,
            actor=operator,
            work_item_id=item.pk,
            payload=payload,
            reason=reason,
        )
    assert WorkItem.objects.get(pk=item.pk).payload == item.payload
    assert not AuditEvent.objects.filter(verb="work_item.payload_edited").exists()


def test_only_a_failed_item_can_be_edited(failed_run, operator):
    done = WorkItem.objects.filter(run=failed_run, state=WorkItemState.DONE).first()
    with pytest.raises(IllegalTransition, match="only a failed item"):
        work_item_payload_edit(
            failed_run,
            actor=operator,
            work_item_id=done.pk,
            payload={"x": 1},
            reason="why",
        )
    assert not AuditEvent.objects.filter(verb="work_item.payload_edited").exists()


def test_retry_rereads_the_subjects_first(failed_run, operator):
    item = failed_item(failed_run)
    test_actions.accounts["A-2"] = {"bad": False, "status": "reopened"}
    assert run_retry(failed_run, actor=operator, reread_subjects=True) == 1
    item.refresh_from_db()
    assert item.payload["bad"] is False and item.payload["status"] == "reopened"
    event = AuditEvent.objects.get(run=failed_run, verb="work_item.payload_reread")
    assert event.before["payload"]["bad"] is True
    assert event.after["payload"]["status"] == "reopened"
    run_until_idle(failed_run)
    failed_run.refresh_from_db()
    assert failed_run.state == RunState.COMPLETED


def test_reread_without_a_subject_source_is_refused(automation, operator):
    auto = automation("test.business_fail")
    run = run_start(automation=auto, inputs=[{"bad": True}])
    run_until_idle(run)
    with pytest.raises(InvalidRequest, match="nothing to re-read"):
        run_retry(run, actor=operator, reread_subjects=True)
    assert failed_item(run).state == WorkItemState.FAILED


def test_rerun_of_the_failed_items_only(automation, operator):
    auto = automation("test.business_fail")
    inputs = [{"subject": "a"}, {"subject": "b", "bad": True}, {"subject": "c"}]
    run = run_start(automation=auto, inputs=inputs)
    run_until_idle(run)
    again = run_rerun(run, actor=operator, failed_only=True)
    assert again.rerun_of_id == run.pk
    assert list(
        WorkItem.objects.filter(run=again).values_list("payload", flat=True)
    ) == [{"subject": "b", "bad": True}]


def test_rerun_failed_only_with_nothing_failed_is_refused(automation, operator):
    run = run_start(automation=automation("builtin.echo"), inputs=[{}])
    run_until_idle(run)
    with pytest.raises(InvalidRequest, match="no failed work items"):
        run_rerun(run, actor=operator, failed_only=True)
    assert not Run.objects.filter(rerun_of=run).exists()


# -- interfaces ------------------------------------------------------------------


def test_admin_payload_page_edits_with_a_reason(client, failed_run, operator):
    item = failed_item(failed_run)
    url = reverse("admin:runs_workitem_payload_edit", args=[item.pk])
    client.force_login(operator)
    assert client.get(url).status_code == 200
    bad = client.post(url, {"payload": json.dumps({"bad": False}), "reason": ""})
    assert bad.status_code == 400
    good = client.post(
        url, {"payload": json.dumps({"bad": False}), "reason": "corrected"}
    )
    assert good.status_code == 302
    assert WorkItem.objects.get(pk=item.pk).payload == {"bad": False}


def test_admin_payload_page_is_for_operators_only(client, failed_run, viewer):
    item = failed_item(failed_run)
    url = reverse("admin:runs_workitem_payload_edit", args=[item.pk])
    client.force_login(viewer)
    response = client.post(url, {"payload": "{}", "reason": "mine"})
    assert response.status_code == 403
    assert WorkItem.objects.get(pk=item.pk).payload == item.payload


def test_api_retry_rereads_and_rerun_takes_failed_only(failed_run, operator):
    api = client_for(operator)
    test_actions.accounts["A-2"] = {"bad": False}
    response = api.post(
        f"/api/v1/runs/{failed_run.pk}/retry/",
        json.dumps({"reread_subjects": True}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.json()
    assert AuditEvent.objects.filter(verb="work_item.payload_reread").count() == 1
    run_until_idle(failed_run)
    other = make_user("olga", ["view_run", "rerun_run"])
    response = client_for(other).post(
        f"/api/v1/runs/{failed_run.pk}/rerun/",
        json.dumps({"failed_only": True}),
        content_type="application/json",
    )
    assert response.status_code == 400  # nothing failed any more
    assert response.json()["code"] == "nothing_to_do"
