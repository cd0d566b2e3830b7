"""Each run action: applies, refuses what does not apply (message, nothing
changed), and a forced request without the permission gets 403."""

import datetime

import pytest
from django.contrib import messages as django_messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from runs.models import AuditEvent, Run, WorkItem
from runs.states import RunState, WorkItemState
from tests.factories import make_user

CHANGELIST = "admin:runs_run_changelist"


def _bulk(client, action, runs, **data):
    return client.post(
        reverse(CHANGELIST),
        {
            "action": action,
            ACTION_CHECKBOX_NAME: [str(r.pk) for r in runs],
            "confirm": "yes",
            **data,
        },
    )


def _act(client, run, action, **data):
    return client.post(reverse("admin:runs_run_action", args=[run.pk, action]), data)


def _messages(response):
    return [str(m) for m in django_messages.get_messages(response.wsgi_request)]


def _snapshot(run):
    run.refresh_from_db()
    return (
        run.state,
        run.archived,
        run.is_test_case,
        run.failed_items,
        run.ledger_seq,
        sorted(WorkItem.objects.filter(run=run).values_list("pk", "state")),
    )


# -- confirmation pages ----------------------------------------------------------


@pytest.mark.django_db
def test_bulk_action_first_shows_a_confirmation_page_and_changes_nothing(
    login, operator, running_run
):
    run = running_run()
    before = _snapshot(run)
    response = login(operator).post(
        reverse(CHANGELIST),
        {"action": "stop_runs", ACTION_CHECKBOX_NAME: [str(run.pk)]},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Terminate in-flight step runs" in page and f"Run #{run.number}" in page
    assert _snapshot(run) == before


@pytest.mark.django_db
def test_detail_action_get_shows_a_confirmation_page(login, operator, unresolved_run):
    run = unresolved_run()
    response = login(operator).get(
        reverse("admin:runs_run_action", args=[run.pk, "retry"])
    )
    assert response.status_code == 200
    assert b"Sends failed work items back to pending" in response.content
    assert _snapshot(run)[0] == RunState.UNRESOLVED


# -- stop --------------------------------------------------------------------------


@pytest.mark.django_db
def test_stop_terminate_with_pending_items_failed(login, operator, running_run):
    run = running_run()
    response = _bulk(
        login(operator),
        "stop_runs",
        [run],
        step_runs="terminate",
        pending_items="failed",
    )
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    assert run.stop_options["step_runs"] == "terminate"
    assert set(
        WorkItem.objects.filter(run=run, step__order=2).values_list("state", flat=True)
    ) == {WorkItemState.FAILED}
    assert AuditEvent.objects.filter(
        run=run, verb="run.stop_requested", actor=operator
    ).exists()


@pytest.mark.django_db
def test_stop_complete_with_pending_items_done(login, operator, running_run):
    run = running_run()
    _act(login(operator), run, "stop", step_runs="complete", pending_items="done")
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    assert set(
        WorkItem.objects.filter(run=run, step__order=2).values_list("state", flat=True)
    ) == {WorkItemState.DONE}


@pytest.mark.django_db
def test_stop_refuses_a_finished_run_and_applies_to_the_others(
    login, operator, running_run, completed_run
):
    running, done = running_run(), completed_run()
    before = _snapshot(done)
    response = _bulk(
        login(operator),
        "stop_runs",
        [running, done],
        step_runs="terminate",
        pending_items="failed",
    )
    notes = " ".join(_messages(response))
    assert f"run #{done.number}: run {done.number} is completed" in notes
    assert "nothing changed" in notes
    assert _snapshot(done) == before
    running.refresh_from_db()
    assert running.state == RunState.CANCELLED


@pytest.mark.django_db
def test_stop_form_refuses_an_unknown_option(login, operator, running_run):
    run = running_run()
    before = _snapshot(run)
    response = _act(
        login(operator), run, "stop", step_runs="explode", pending_items="done"
    )
    assert response.status_code == 200 and b"Select a valid choice" in response.content
    assert _snapshot(run) == before


# -- retry / resolve ---------------------------------------------------------------


@pytest.mark.django_db
def test_retry_sends_failed_items_back(login, operator, unresolved_run):
    run = unresolved_run()
    _bulk(login(operator), "retry_runs", [run])
    run.refresh_from_db()
    assert run.state == RunState.RUNNING and run.failed_items == 0
    assert WorkItem.objects.filter(run=run, state=WorkItemState.PENDING).count() == 2


@pytest.mark.django_db
def test_retry_of_chosen_items_only(login, operator, unresolved_run):
    run = unresolved_run()
    first, second = WorkItem.objects.filter(run=run, state="failed").order_by("id")
    _act(login(operator), run, "retry", work_items=[first.pk])
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.state, second.state) == (WorkItemState.PENDING, WorkItemState.FAILED)


@pytest.mark.django_db
def test_retry_refuses_a_run_without_failed_items(login, operator, completed_run):
    run = completed_run()
    before = _snapshot(run)
    response = _bulk(login(operator), "retry_runs", [run])
    assert "has no failed work items" in " ".join(_messages(response))
    assert _snapshot(run) == before


@pytest.mark.django_db
def test_resolve_requires_a_note(login, operator, unresolved_run):
    run = unresolved_run()
    before = _snapshot(run)
    response = _act(login(operator), run, "resolve", note="   ")
    assert response.status_code == 200
    assert b"This field is required" in response.content or b"A note is required" in (
        response.content
    )
    assert _snapshot(run) == before


@pytest.mark.django_db
def test_resolve_with_a_note_completes_the_run(login, operator, unresolved_run):
    run = unresolved_run()
    _bulk(login(operator), "resolve_runs", [run], note="checked by phone")
    run.refresh_from_db()
    assert run.state == RunState.COMPLETED
    assert set(
        WorkItem.objects.filter(run=run, note="checked by phone").values_list(
            "state", flat=True
        )
    ) == {WorkItemState.RESOLVED}


@pytest.mark.django_db
def test_resolve_refuses_a_run_without_failed_items(login, operator, completed_run):
    run = completed_run()
    before = _snapshot(run)
    response = _bulk(login(operator), "resolve_runs", [run], note="x")
    assert "has no failed work items" in " ".join(_messages(response))
    assert _snapshot(run) == before


# -- archive / unarchive -------------------------------------------------------------


@pytest.mark.django_db
def test_archive_and_unarchive(login, operator, completed_run):
    run = completed_run()
    client = login(operator)
    _bulk(client, "archive_runs", [run])
    run.refresh_from_db()
    assert run.archived
    _act(client, run, "unarchive")
    run.refresh_from_db()
    assert not run.archived


@pytest.mark.django_db
def test_archive_of_an_active_run_is_allowed_and_it_keeps_running(
    login, operator, running_run
):
    run = running_run()
    state = run.state
    _bulk(login(operator), "archive_runs", [run])
    run.refresh_from_db()
    assert run.archived and run.state == state  # archiving never stops a run


@pytest.mark.django_db
def test_unarchive_refuses_a_run_that_is_not_archived(login, operator, completed_run):
    run = completed_run()
    before = _snapshot(run)
    response = _bulk(login(operator), "unarchive_runs", [run])
    assert "is already not archived" in " ".join(_messages(response))
    assert _snapshot(run) == before


# -- re-run ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["original", "latest"])
def test_rerun_starts_a_new_run_with_the_same_inputs(
    login, operator, completed_run, version
):
    run = completed_run()
    _bulk(login(operator), "rerun_runs", [run], version=version)
    new = Run.objects.get(rerun_of=run)
    assert new.inputs == run.inputs and new.run_by == operator


@pytest.mark.django_db
def test_rerun_refuses_a_retired_automation(login, operator, completed_run):
    from automations.services import automation_retire

    run = completed_run()
    automation_retire(run.automation)
    response = _bulk(login(operator), "rerun_runs", [run], version="original")
    assert "is retired" in " ".join(_messages(response))
    assert not Run.objects.filter(rerun_of=run).exists()


# -- approve / reject ----------------------------------------------------------------


@pytest.fixture
def awaiting_run(automation, user):
    from runs.engine import run_until_idle
    from runs.services import run_start

    def make():
        auto = automation({"action": "builtin.request_approval"}, "builtin.echo")
        run = run_start(automation=auto, inputs=[{"subject": "a"}], actor=user)
        run_until_idle(run)
        run.refresh_from_db()
        assert run.state == RunState.AWAITING_INPUT
        return run

    return make


@pytest.mark.django_db
def test_approve_with_input_data(login, operator, awaiting_run):
    run = awaiting_run()
    _act(login(operator), run, "decide", decision="approve", data='{"limit": 500}')
    item = WorkItem.objects.get(run=run, step__order=1)
    assert item.approval["decision"] == "approve" and item.approval["data"] == {
        "limit": 500
    }
    assert item.state in (WorkItemState.PENDING, WorkItemState.DONE)


@pytest.mark.django_db
def test_reject_fails_the_item(login, operator, awaiting_run):
    run = awaiting_run()
    _bulk(
        login(operator),
        "decide_runs",
        [run],
        decision="reject",
        data="",
        reason="not ours",
    )
    item = WorkItem.objects.get(run=run, step__order=1)
    assert item.state == WorkItemState.FAILED and item.failure_code == "rejected"


@pytest.mark.django_db
def test_decide_refuses_input_data_that_is_not_an_object(login, operator, awaiting_run):
    run = awaiting_run()
    before = _snapshot(run)
    response = _act(login(operator), run, "decide", decision="approve", data="[1, 2]")
    assert b"Input data must be a JSON object" in response.content
    assert _snapshot(run) == before


@pytest.mark.django_db
def test_decide_refuses_a_run_with_nothing_awaiting(login, operator, completed_run):
    run = completed_run()
    before = _snapshot(run)
    response = _bulk(login(operator), "decide_runs", [run], decision="approve", data="")
    assert "has no work items awaiting input" in " ".join(_messages(response))
    assert _snapshot(run) == before


@pytest.mark.django_db
def test_decide_refuses_the_person_who_started_the_run(login, operator, automation):
    from runs.engine import run_until_idle
    from runs.services import run_start

    auto = automation({"action": "builtin.request_approval"})
    run = run_start(automation=auto, inputs=[{}], actor=operator)
    run_until_idle(run)
    before = _snapshot(run)
    response = _act(login(operator), run, "decide", decision="approve", data="")
    assert "four eyes" in " ".join(_messages(response))
    # nothing changed but the record of the refused attempt (one audit event)
    *same, seq, items = _snapshot(run)
    assert (*same, seq - 1, items) == before
    refused = AuditEvent.objects.get(run=run, verb="work_item.decision_refused")
    assert refused.actor == operator and "four eyes" in refused.reason


# -- add as test case ------------------------------------------------------------------


@pytest.mark.django_db
def test_add_as_test_case(login, author, completed_run):
    run = completed_run()
    _bulk(login(author), "test_case_runs", [run])
    run.refresh_from_db()
    assert run.is_test_case
    assert AuditEvent.objects.filter(run=run, verb="run.test_case_marked").exists()


@pytest.mark.django_db
def test_add_as_test_case_refuses_a_test_case(login, author, completed_run):
    run = completed_run(is_test_case=True)
    before = _snapshot(run)
    response = _bulk(login(author), "test_case_runs", [run])
    assert "is already a test case" in " ".join(_messages(response))
    assert _snapshot(run) == before


# -- export ------------------------------------------------------------------------


@pytest.mark.django_db
def test_export_runs_and_run_items_csv(login, viewer, unresolved_run):
    run = unresolved_run()
    client = login(viewer)
    response = _bulk(client, "export_csv", [run], what="runs")
    assert response["Content-Type"].startswith("text/csv")
    body = response.content.decode()
    assert body.splitlines()[0].startswith("id,number,automation")
    assert f",{run.number}," in body
    response = _bulk(client, "export_csv", [run], what="run_items")
    rows = response.content.decode().strip().splitlines()
    assert rows[0].startswith("id,run,run_id,seq") and len(rows) == 1 + 3


@pytest.mark.django_db
def test_exported_times_carry_their_offset(login, viewer, unresolved_run, settings):
    """ISO 8601 with the offset, in the active time zone: a reader in another
    zone reads the same instant (the stock widget wrote a zone-less local time)."""
    import csv
    import io

    settings.TIME_ZONE = "America/New_York"
    run = unresolved_run()
    client = login(viewer)
    for what, column, value in (
        ("runs", "created_at", run.created_at),
        ("run_items", "started_at", run.run_items.order_by("seq").first().started_at),
    ):
        response = _bulk(client, "export_csv", [run], what=what)
        [row, *_] = csv.DictReader(io.StringIO(response.content.decode()))
        written = datetime.datetime.fromisoformat(row[column])
        assert written.utcoffset() is not None, row[column]
        assert written == value.replace(microsecond=written.microsecond)


@pytest.mark.django_db
def test_export_neutralises_formula_cells(login, viewer, automation):
    from runs.engine import run_until_idle
    from runs.services import run_start

    run = run_start(
        automation=automation("test.count"),
        inputs=[{"subject": '=HYPERLINK("http://x")'}],
    )
    run_until_idle(run)
    response = _bulk(login(viewer), "export_csv", [run], what="run_items")
    assert "'=HYPERLINK" in response.content.decode()


# -- permissions ---------------------------------------------------------------------

PERMISSIONED = [
    ("stop_runs", "stop", {"step_runs": "terminate", "pending_items": "failed"}),
    ("retry_runs", "retry", {}),
    ("resolve_runs", "resolve", {"note": "n"}),
    ("archive_runs", "archive", {}),
    ("unarchive_runs", "unarchive", {}),
    ("rerun_runs", "rerun", {"version": "original"}),
    ("decide_runs", "decide", {"decision": "approve"}),
]


@pytest.mark.django_db
@pytest.mark.parametrize("bulk,single,data", PERMISSIONED)
def test_viewer_forcing_a_control_action_gets_403(
    login, viewer, unresolved_run, bulk, single, data
):
    run = unresolved_run()
    before = _snapshot(run)
    client = login(viewer)
    assert _bulk(client, bulk, [run], **data).status_code == 403
    assert _act(client, run, single, **data).status_code == 403
    assert (
        client.get(reverse("admin:runs_run_action", args=[run.pk, single])).status_code
        == 403
    )
    assert _snapshot(run) == before
    assert not Run.objects.filter(rerun_of=run).exists()


@pytest.mark.django_db
def test_operator_forcing_add_as_test_case_gets_403(login, operator, completed_run):
    run = completed_run()
    client = login(operator)
    assert _bulk(client, "test_case_runs", [run]).status_code == 403
    assert _act(client, run, "test_case").status_code == 403
    run.refresh_from_db()
    assert not run.is_test_case


@pytest.mark.django_db
def test_user_without_export_permission_forcing_export_gets_403(login, completed_run):
    user = make_user("nox", ["view_run"], is_staff=True)
    run = completed_run()
    assert _bulk(login(user), "export_csv", [run], what="runs").status_code == 403


@pytest.mark.django_db
def test_viewer_is_offered_no_control_action(login, viewer, unresolved_run):
    run = unresolved_run()
    client = login(viewer)
    changelist = client.get(reverse(CHANGELIST)).content.decode()
    for name, _, _ in PERMISSIONED:
        assert f'value="{name}"' not in changelist
    assert 'value="export_csv"' in changelist
    detail = client.get(
        reverse("admin:runs_run_change", args=[run.pk])
    ).content.decode()
    assert "data-action=" not in detail


@pytest.mark.django_db
def test_operator_is_offered_the_actions_that_fit_the_run(
    login, operator, unresolved_run
):
    run = unresolved_run()
    detail = (
        login(operator)
        .get(reverse("admin:runs_run_change", args=[run.pk]))
        .content.decode()
    )
    for name in ("retry", "resolve", "archive", "rerun"):
        assert f'data-action="{name}"' in detail
    assert 'data-action="stop"' not in detail  # a finished run cannot be stopped
    assert 'data-action="test_case"' not in detail  # Author only
