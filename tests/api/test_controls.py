"""POST /api/v1/runs/{id}/stop|retry|resolve|archive|unarchive|rerun|input/."""

import json

import pytest

from runs.engine import run_until_idle
from runs.models import AuditEvent, Run, WorkItem
from runs.services import run_start
from tests.factories import OPERATOR, make_user

from .conftest import client_for


def control(client, run, name, body=None):
    return client.post(
        f"/api/v1/runs/{run.pk}/{name}/",
        json.dumps(body if body is not None else {}),
        content_type="application/json",
    )


@pytest.fixture
def unresolved(automation):
    auto = automation("builtin.echo", "test.business_fail", slug="kyc")
    run = run_start(
        automation=auto, inputs=[{"subject": "ok"}, {"subject": "no", "bad": True}]
    )
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == "unresolved"
    return run


@pytest.fixture
def pending(automation):
    return run_start(automation=automation("builtin.echo"), inputs=[{}, {}])


@pytest.fixture
def awaiting(automation, db):
    auto = automation(
        {"action": "builtin.request_approval", "parameters": {"approvers": []}},
        "builtin.echo",
    )
    starter = make_user("starter", OPERATOR)
    run = run_start(automation=auto, actor=starter)
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == "awaiting_input"
    return run


def failed_item(run):
    return WorkItem.objects.get(run=run, state="failed")


def test_stop_a_pending_run(api, pending):
    response = control(
        api, pending, "stop", {"step_runs": "terminate", "pending_items": "failed"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "cancelled"
    assert Run.objects.get(pk=pending.pk).stop_options["step_runs"] == "terminate"


def test_stop_defaults(api, pending):
    response = control(api, pending, "stop")
    assert response.status_code == 200
    assert Run.objects.get(pk=pending.pk).stop_options["step_runs"] == "complete"


def test_stop_bad_option_is_400(api, pending):
    response = control(api, pending, "stop", {"step_runs": "explode"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_choice"
    assert "step_runs" in response.json()["detail"]
    assert Run.objects.get(pk=pending.pk).state == "pending"


def test_stop_a_finished_run_is_409_with_the_reason(api, unresolved):
    before = AuditEvent.objects.filter(run=unresolved).count()
    response = control(api, unresolved, "stop")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"run {unresolved.number} is unresolved: only a pending, running or "
        "awaiting run can be stopped",
        "code": "illegal_transition",
    }
    assert AuditEvent.objects.filter(run=unresolved).count() == before


def test_retry_all_failed_items(api, unresolved, operator):
    response = control(api, unresolved, "retry", {"reason": "fixed upstream"})
    assert response.status_code == 200
    assert response.json()["state"] == "running"
    assert response.json()["failed_items"] == 0
    event = AuditEvent.objects.filter(run=unresolved, verb="run.retried").get()
    assert event.actor == operator and event.reason == "fixed upstream"


def test_retry_named_items(api, unresolved):
    item = failed_item(unresolved)
    response = control(api, unresolved, "retry", {"work_items": [item.pk]})
    assert response.status_code == 200
    item.refresh_from_db()
    assert item.state == "pending"


@pytest.mark.parametrize(
    "body",
    [
        {"work_items": "all"},
        {"work_items": []},
        {"work_items": ["x"]},
        {"work_items": [0]},
    ],
)
def test_retry_bad_body_is_400(api, unresolved, body):
    response = control(api, unresolved, "retry", body)
    assert response.status_code == 400
    assert Run.objects.get(pk=unresolved.pk).state == "unresolved"


def test_retry_an_item_that_is_not_failed_is_409(api, unresolved):
    done = WorkItem.objects.filter(run=unresolved, state="done").first()
    response = control(api, unresolved, "retry", {"work_items": [done.pk]})
    assert response.status_code == 409
    assert f"{done.pk} is done" in response.json()["detail"]
    assert Run.objects.get(pk=unresolved.pk).state == "unresolved"


def test_retry_with_nothing_failed_is_400(api, pending):
    response = control(api, pending, "retry")
    assert response.status_code == 400
    assert response.json()["code"] == "nothing_to_do"


def test_resolve_with_a_note_completes_the_run(api, unresolved):
    item = failed_item(unresolved)
    response = control(
        api, unresolved, "resolve", {"work_items": [item.pk], "note": "checked by hand"}
    )
    assert response.status_code == 200
    assert response.json()["state"] == "completed"
    item.refresh_from_db()
    assert (item.state, item.note) == ("resolved", "checked by hand")


@pytest.mark.parametrize("body", [{}, {"note": ""}, {"note": "   "}])
def test_resolve_needs_a_note(api, unresolved, body):
    response = control(api, unresolved, "resolve", body)
    assert response.status_code == 400
    assert "note" in response.json()["detail"]
    assert failed_item(unresolved).state == "failed"


def test_archive_and_unarchive(api, unresolved):
    response = control(api, unresolved, "archive", {"reason": "done"})
    assert response.status_code == 200 and response.json()["archived"] is True
    again = control(api, unresolved, "archive")
    assert again.status_code == 409
    assert "already archived" in again.json()["detail"]
    response = control(api, unresolved, "unarchive")
    assert response.status_code == 200 and response.json()["archived"] is False
    assert control(api, unresolved, "unarchive").status_code == 409


def test_archive_an_active_run_is_allowed_and_it_keeps_its_state(api, pending):
    response = control(api, pending, "archive")
    assert response.status_code == 200
    assert response.json()["archived"] is True
    assert response.json()["state"] == "pending"
    assert control(api, pending, "archive").status_code == 409  # already archived


def test_rerun_answers_the_new_run(api, unresolved):
    response = control(api, unresolved, "rerun", {"version": "latest"})
    assert response.status_code == 202
    data = response.json()
    assert data["rerun_of"] == str(unresolved.pk) and data["id"] != str(unresolved.pk)
    assert Run.objects.get(pk=data["id"]).inputs == unresolved.inputs


def test_rerun_bad_version_is_400(api, unresolved):
    response = control(api, unresolved, "rerun", {"version": "newest"})
    assert response.status_code == 400
    assert Run.objects.count() == 1


def test_rerun_is_throttled_like_triggers(api, unresolved, settings):
    settings.RUNS_API_TRIGGER_RATE = "1/min"
    assert control(api, unresolved, "rerun").status_code == 202
    assert control(api, unresolved, "rerun").status_code == 429
    assert control(api, unresolved, "archive").status_code == 200  # not throttled


def test_input_approves(api, awaiting):
    item = WorkItem.objects.get(run=awaiting, state="awaiting_input")
    response = control(
        api,
        awaiting,
        "input",
        {"work_item": item.pk, "decision": "approve", "data": {"ok": 1}},
    )
    assert response.status_code == 200, response.content
    item.refresh_from_db()
    assert item.state == "pending" and item.approval["by"] == "olivia"


def test_input_rejects(api, awaiting):
    item = WorkItem.objects.get(run=awaiting, state="awaiting_input")
    body = {"work_item": item.pk, "decision": "reject"}
    response = control(api, awaiting, "input", body)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "reason_required"
    response = control(api, awaiting, "input", {**body, "reason": "a duplicate"})
    assert response.status_code == 200, response.json()
    assert response.json()["failed_items"] == 1


def test_input_four_eyes_is_403(awaiting):
    starter = awaiting.run_by
    item = WorkItem.objects.get(run=awaiting, state="awaiting_input")
    response = control(
        client_for(starter),
        awaiting,
        "input",
        {"work_item": item.pk, "decision": "approve"},
    )
    assert response.status_code == 403
    assert "four eyes" in response.json()["detail"]
    item.refresh_from_db()
    assert item.state == "awaiting_input"


def test_input_unknown_work_item_is_404(api, awaiting):
    response = control(
        api, awaiting, "input", {"work_item": 999999, "decision": "approve"}
    )
    assert response.status_code == 404
    assert "not in run" in response.json()["detail"]


def test_input_on_an_item_not_awaiting_is_409(api, unresolved):
    item = failed_item(unresolved)
    response = control(
        api, unresolved, "input", {"work_item": item.pk, "decision": "approve"}
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "approve"},
        {"work_item": 1, "decision": "maybe"},
        {"work_item": 1, "decision": "approve", "data": [1]},
        {"work_item": 1, "decision": "approve", "data": {"x": "\u0000"}},
    ],
)
def test_input_bad_body_is_400(api, awaiting, body):
    assert control(api, awaiting, "input", body).status_code == 400


@pytest.mark.parametrize(
    "name,perm",
    [
        ("stop", "stop_run"),
        ("retry", "retry_run"),
        ("resolve", "resolve_run"),
        ("archive", "archive_run"),
        ("unarchive", "archive_run"),
        ("rerun", "rerun_run"),
        ("input", "approve_run"),
    ],
)
def test_each_control_needs_its_permission(unresolved, name, perm):
    lacking = make_user("lacking", [p for p in OPERATOR if p != perm])
    response = control(client_for(lacking), unresolved, name, {"note": "n"})
    assert response.status_code == 403
    assert f"runs.{perm}" in response.json()["detail"]
    assert Run.objects.get(pk=unresolved.pk).state == "unresolved"
    assert Run.objects.count() == 1


def test_viewer_cannot_control(viewer, unresolved):
    assert control(client_for(viewer), unresolved, "retry").status_code == 403


def test_control_needs_authentication(unresolved):
    assert control(client_for(), unresolved, "stop").status_code == 401


def test_control_unknown_run_is_404(api, db):
    response = api.post("/api/v1/runs/00000000-0000-0000-0000-000000000000/stop/")
    assert response.status_code == 404


def test_control_body_too_large_is_413(api, unresolved, settings):
    settings.RUNS_MAX_REQUEST_BYTES = 100
    response = control(api, unresolved, "resolve", {"note": "n" * 500})
    assert response.status_code == 413
    assert failed_item(unresolved).state == "failed"


def test_control_needs_post(api, unresolved):
    assert api.get(f"/api/v1/runs/{unresolved.pk}/stop/").status_code == 405


def test_rejecting_the_last_awaiting_item_settles_the_run(api, awaiting):
    """Regression: run_progress moved awaiting_input straight to unresolved, which
    the machine refuses; the decision committed but the caller got an error."""
    item = WorkItem.objects.get(run=awaiting, state="awaiting_input")
    response = control(
        api,
        awaiting,
        "input",
        {"work_item": item.pk, "decision": "reject", "reason": "no"},
    )
    assert response.status_code == 200
    assert response.json()["state"] == "unresolved"
    verbs = list(AuditEvent.objects.filter(run=awaiting).values_list("verb", flat=True))
    assert verbs[-3:] == ["work_item.rejected", "run.resumed", "run.unresolved"]


def test_an_expired_approval_settles_the_run(awaiting):
    from django.utils import timezone

    from runs.services import approvals_expire

    WorkItem.objects.filter(run=awaiting).update(
        approval_deadline=timezone.now() - timezone.timedelta(seconds=1)
    )
    assert approvals_expire() == 1
    assert Run.objects.get(pk=awaiting.pk).state == "unresolved"
