"""The approval page: what is decided, for whom, and refused attempts recorded."""

from html import unescape

import pytest
from django.urls import reverse

from runs.models import AuditEvent, WorkItem
from runs.states import WorkItemState
from tests.factories import make_user


def page(run, item):
    return reverse("admin:runs_run_decide", args=[run.pk, item.pk])


@pytest.fixture
def item(code_run):
    return WorkItem.objects.get(run=code_run)


def test_the_page_shows_payload_deadline_and_since_and_a_form_from_the_schema(
    client, code_run, item, approver
):
    client.force_login(approver)
    response = client.get(page(code_run, item))
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert '"account": "A-1"' in html  # the payload
    assert item.approval_deadline.strftime("%Y-%m-%d %H:%M") in html
    assert item.updated_at.strftime("%Y-%m-%d %H:%M") in html
    assert 'id="approval-deadline"' in html and 'id="approval-since"' in html
    # the form, built from input_schema: a patterned text, bounds, a choice, a box
    assert 'name="data-code"' in html and "Six-digit code" in html
    assert 'name="data-amount"' in html and 'max="1000"' in html
    assert '<select name="data-channel"' in html
    assert 'type="checkbox" name="data-confirmed"' in html
    assert 'id="approve"' in html and 'id="reject"' in html


def test_the_starter_sees_why_not_and_no_approve(client, code_run, item, starter):
    client.force_login(starter)
    response = client.get(page(code_run, item))
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert "You started this run: four-eyes rule" in html
    assert '"account": "A-1"' in html
    assert 'id="approve"' not in html and 'name="data-code"' not in html


def test_someone_not_among_the_approvers_sees_no_approve(client, code_run, item):
    carol = make_user("carol", ["view_run", "approve_run"], is_staff=True)
    client.force_login(carol)
    html = unescape(client.get(page(code_run, item)).content.decode())
    assert "not among the approvers: bob" in html and 'id="approve"' not in html


def test_a_refused_post_changes_nothing_and_is_recorded(
    client, code_run, item, starter
):
    client.force_login(starter)
    response = client.post(
        page(code_run, item), {"decision": "approve", "data-code": "123456"}
    )
    assert response.status_code == 403
    item.refresh_from_db()
    assert item.state == WorkItemState.AWAITING_INPUT and item.approval is None
    refused = AuditEvent.objects.get(run=code_run, verb="work_item.decision_refused")
    assert refused.actor == starter and "four eyes" in refused.reason
    assert refused.after == {"decision": "approve"}
    assert refused.before == {"work_item": item.pk, "state": "awaiting_input"}


def test_approve_with_a_bad_code_shows_the_field_error(
    client, code_run, item, approver
):
    client.force_login(approver)
    response = client.post(
        page(code_run, item), {"decision": "approve", "data-code": "12x456"}
    )
    assert response.status_code == 400
    assert "Must match ^[0-9]{6}$" in response.content.decode()
    item.refresh_from_db()
    assert item.state == WorkItemState.AWAITING_INPUT


def test_approve_with_a_good_code_records_typed_data(client, code_run, item, approver):
    client.force_login(approver)
    response = client.post(
        page(code_run, item),
        {
            "decision": "approve",
            "data-code": "004211",
            "data-amount": "12",
            "data-channel": "sms",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    item.refresh_from_db()
    assert item.approval["data"] == {
        "code": "004211",
        "amount": 12,
        "channel": "sms",
        "confirmed": False,
    }
    assert item.approval["by"] == "bob"


def test_reject_needs_a_reason(client, code_run, item, approver):
    client.force_login(approver)
    response = client.post(page(code_run, item), {"decision": "reject", "reason": ""})
    assert response.status_code == 400
    assert "A reason is required to reject." in response.content.decode()
    item.refresh_from_db()
    assert item.state == WorkItemState.AWAITING_INPUT
    response = client.post(
        page(code_run, item), {"decision": "reject", "reason": "wrong account"}
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.state, item.failure_message) == ("failed", "wrong account")


def test_a_viewer_without_the_run_is_404_and_nobody_is_refused(client, code_run, item):
    nina = make_user("nina", is_staff=True)
    client.force_login(nina)
    assert client.get(page(code_run, item)).status_code in (403, 404)
    assert client.post(page(code_run, item), {"decision": "approve"}).status_code in (
        403,
        404,
    )
    assert not AuditEvent.objects.filter(verb="work_item.decision_refused").exists()


def test_an_item_of_another_run_is_404(client, code_run, approver, automation):
    from runs.services import run_start

    other = run_start(automation=automation("builtin.echo"), inputs=[{}])
    foreign = WorkItem.objects.get(run=other)
    client.force_login(approver)
    assert client.get(page(code_run, foreign)).status_code == 404


def test_the_run_page_links_the_approval_page(client, code_run, item, approver):
    client.force_login(approver)
    html = client.get(
        reverse("admin:runs_run_change", args=[code_run.pk])
    ).content.decode()
    assert page(code_run, item) in html


def test_dashboard_and_work_item_filter_list_what_awaits_me(
    client, code_run, item, approver, starter
):
    client.force_login(approver)
    html = client.get(reverse("admin:index")).content.decode()
    assert "Awaiting my decision" in html and page(code_run, item) in html
    listed = client.get(
        reverse("admin:runs_workitem_changelist"), {"awaiting": "me"}
    ).context["cl"]
    assert [i.pk for i in listed.result_list] == [item.pk]
    client.force_login(starter)  # four eyes: nothing awaits the starter
    html = client.get(reverse("admin:index")).content.decode()
    assert page(code_run, item) not in html
    listed = client.get(
        reverse("admin:runs_workitem_changelist"), {"awaiting": "me"}
    ).context["cl"]
    assert list(listed.result_list) == []


def test_the_run_page_offers_approve_reject_only_to_who_may_decide(
    client, code_run, approver, starter
):
    url = reverse("admin:runs_run_change", args=[code_run.pk])
    action = reverse("admin:runs_run_action", args=[code_run.pk, "decide"])
    client.force_login(approver)
    assert action in client.get(url).content.decode()
    client.force_login(starter)
    assert action not in client.get(url).content.decode()
