"""Approvers are told (an e-mail, a work_item.awaiting_input webhook event, both
with links), `GET /api/v1/work-items/?awaiting=me` lists what awaits the caller,
and the API `input` call validates typed data (400 naming the field)."""

import json

import pytest
from django.contrib.auth.models import Group
from django.core import mail

from runs.api.models import ApiClient
from runs.engine import run_until_idle
from runs.models import AuditEvent, WorkItem
from runs.services import run_start
from runs.webhooks.models import Webhook, WebhookDelivery
from tests.api.conftest import client_for
from tests.factories import make_user

from .conftest import code_step


def test_the_approver_gets_one_email_with_the_link(
    automation, starter, approver, django_capture_on_commit_callbacks
):
    auto = automation(code_step(approvers=["bob"], deadline_seconds=600))
    with django_capture_on_commit_callbacks(execute=True):
        run = run_start(automation=auto, inputs=[{"account": "A-1"}], actor=starter)
        run_until_idle(run)
    item = WorkItem.objects.get(run=run)
    [message] = [m for m in mail.outbox if "awaits your decision" in m.subject]
    assert message.to == ["bob@example.com"]
    link = f"/admin/runs/run/{run.pk}/decide/{item.pk}/"
    assert link in message.body and "decide before" in message.body


def test_the_starter_and_people_without_the_permission_get_nothing(
    automation, starter, approver, django_capture_on_commit_callbacks
):
    group = Group.objects.create(name="treasury")
    lacking = make_user("lee", ["view_run"], email="lee@example.com")
    lacking.groups.add(group)
    sam_in_group = starter
    sam_in_group.email = "sam@example.com"
    sam_in_group.save()
    sam_in_group.groups.add(group)
    auto = automation(code_step(approvers=["group:treasury", "bob"]))
    with django_capture_on_commit_callbacks(execute=True):
        run = run_start(automation=auto, inputs=[{}, {}], actor=starter)
        run_until_idle(run)
    notices = [m for m in mail.outbox if "awaits your decision" in m.subject]
    assert [m.to for m in notices] == [["bob@example.com"]]  # one, for two items


def test_a_webhook_gets_work_item_awaiting_input_with_links(
    automation, starter, approver
):
    auto = automation(code_step(approvers=["bob"]))
    hook = Webhook.objects.create(
        automation=auto, url="http://127.0.0.1:9/h", events=["work_item.awaiting_input"]
    )
    run = run_start(automation=auto, inputs=[{"account": "A-1"}], actor=starter)
    run_until_idle(run)
    [delivery] = WebhookDelivery.objects.filter(webhook=hook)
    body = json.loads(delivery.body)
    item = WorkItem.objects.get(run=run)
    assert body["event"] == "work_item.awaiting_input"
    assert body["run"]["id"] == str(run.pk)
    assert body["work_items_awaiting"] == 1
    [listed] = body["work_items"]
    assert listed["id"] == item.pk and listed["approvers"] == ["bob"]
    assert listed["url"].endswith(f"/admin/runs/run/{run.pk}/decide/{item.pk}/")


def test_work_item_awaiting_input_is_a_known_event(automation):
    from django.core.exceptions import ValidationError

    from runs.webhooks.models import validate_events

    validate_events(["work_item.awaiting_input"])
    with pytest.raises(ValidationError):
        validate_events(["work_item.awaited"])


# -- API ---------------------------------------------------------------------------


def post_input(client, run, body):
    return client.post(
        f"/api/v1/runs/{run.pk}/input/",
        json.dumps(body),
        content_type="application/json",
    )


def test_api_input_with_a_bad_code_is_400_naming_the_field(code_run, approver):
    item = WorkItem.objects.get(run=code_run)
    response = post_input(
        client_for(approver),
        code_run,
        {"work_item": item.pk, "decision": "approve", "data": {"code": "12"}},
    )
    assert response.status_code == 400, response.json()
    answer = response.json()
    assert answer["code"] == "invalid_input"
    assert answer["detail"].startswith("data.code: '12' does not match")
    assert list(answer["errors"]) == ["data.code"]
    item.refresh_from_db()
    assert item.state == "awaiting_input"


def test_api_input_with_a_good_code_is_200(code_run, approver):
    item = WorkItem.objects.get(run=code_run)
    response = post_input(
        client_for(approver),
        code_run,
        {"work_item": item.pk, "decision": "approve", "data": {"code": "123456"}},
    )
    assert response.status_code == 200, response.json()
    item.refresh_from_db()
    assert item.approval["data"] == {"code": "123456"}


def test_api_input_refused_is_403_before_the_data_and_recorded(code_run, starter):
    item = WorkItem.objects.get(run=code_run)
    response = post_input(
        client_for(starter),
        code_run,
        {"work_item": item.pk, "decision": "approve", "data": {"code": "12"}},
    )
    assert response.status_code == 403
    assert "four eyes" in response.json()["detail"]
    assert AuditEvent.objects.filter(
        run=code_run, verb="work_item.decision_refused", actor=starter
    ).exists()


def test_awaiting_me_lists_what_the_caller_may_decide(code_run, approver, starter):
    item = WorkItem.objects.get(run=code_run)
    answer = client_for(approver).get("/api/v1/work-items/", {"awaiting": "me"})
    assert answer.status_code == 200, answer.json()
    [row] = answer.json()["results"]
    assert (row["id"], row["run"], row["state"]) == (
        item.pk,
        str(code_run.pk),
        "awaiting_input",
    )
    assert row["approval_url"].endswith(f"/decide/{item.pk}/")
    mine = client_for(starter).get("/api/v1/work-items/", {"awaiting": "me"})
    assert mine.json()["results"] == []  # four eyes
    carol = make_user("carol", ["view_run", "approve_run"])  # not an approver
    theirs = client_for(carol).get("/api/v1/work-items/", {"awaiting": "me"})
    assert theirs.json()["results"] == []
    viewer = make_user("vic", ["view_run"])  # may not decide at all
    assert (
        client_for(viewer)
        .get("/api/v1/work-items/", {"awaiting": "me"})
        .json()["results"]
        == []
    )


def test_awaiting_must_be_me(code_run, approver):
    response = client_for(approver).get("/api/v1/work-items/", {"awaiting": "bob"})
    assert response.status_code == 400
    assert "awaiting" in response.json()["detail"]


def test_work_items_need_view_run_and_follow_the_grants(code_run, approver):
    nobody = make_user("nobody")
    assert client_for(nobody).get("/api/v1/work-items/").status_code == 403
    token_user = make_user("erp", ["view_run", "approve_run"])
    ApiClient.objects.create(user=token_user, name="ERP")  # grants no automation
    token = client_for(token_user, token=True)
    assert token.get("/api/v1/work-items/").json()["results"] == []
    token_user.api_client.automations.add(code_run.automation)
    rows = token.get("/api/v1/work-items/").json()["results"]
    assert [r["run"] for r in rows] == [str(code_run.pk)]


def test_a_workspace_approver_is_told_and_an_approver_of_another_is_not(
    automation, starter, django_capture_on_commit_callbacks
):
    """The decide permission is checked in the run's workspace: an approver by
    membership there is told; one of another workspace only is not."""
    from automations.services import workspace_add, workspace_grant
    from tests.factories import groups_ensure

    groups_ensure()
    lending = workspace_add(slug="lending", name="Lending")[0]
    aml = workspace_add(slug="aml", name="AML")[0]
    here = make_user("hana", email="hana@example.com")
    elsewhere = make_user("otto", email="otto@example.com")
    workspace_grant(user=here, workspace=lending, role="approver")
    workspace_grant(user=elsewhere, workspace=aml, role="approver")
    auto = automation(code_step(approvers=["hana", "otto"]), workspace="lending")
    with django_capture_on_commit_callbacks(execute=True):
        run = run_start(automation=auto, inputs=[{}], actor=starter)
        run_until_idle(run)
    notices = [m for m in mail.outbox if "awaits your decision" in m.subject]
    assert [m.to for m in notices] == [["hana@example.com"]]


def test_workspace_role_approvers_are_told(
    automation, starter, django_capture_on_commit_callbacks
):
    """`workspace:approver` names whoever holds the role in the run's workspace, as
    a member there or through the tenant-wide group: both are e-mailed; a holder
    of the role in another workspace, an operator and the starter are not."""
    from automations.services import workspace_add, workspace_grant
    from tests.factories import groups_ensure

    groups_ensure()
    lending = workspace_add(slug="lending", name="Lending")[0]
    aml = workspace_add(slug="aml", name="AML")[0]
    member = make_user("hana", email="hana@example.com")
    tenant_wide = make_user("tess", email="tess@example.com")
    tenant_wide.groups.add(Group.objects.get(name="Approver"))
    elsewhere = make_user("otto", email="otto@example.com")
    operator = make_user("opal", email="opal@example.com")
    workspace_grant(user=member, workspace=lending, role="approver")
    workspace_grant(user=elsewhere, workspace=aml, role="approver")
    workspace_grant(user=operator, workspace=lending, role="operator")
    starter.email = "sam@example.com"
    starter.save()
    workspace_grant(user=starter, workspace=lending, role="approver")
    auto = automation(code_step(approvers=["workspace:approver"]), workspace="lending")
    with django_capture_on_commit_callbacks(execute=True):
        run = run_start(automation=auto, inputs=[{}], actor=starter)
        run_until_idle(run)
    notices = [m for m in mail.outbox if "awaits your decision" in m.subject]
    assert sorted(m.to[0] for m in notices) == ["hana@example.com", "tess@example.com"]
