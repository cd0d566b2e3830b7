"""The runs list's new doors (issue 18), without a browser: the live rows, the
archived hint and the audit trail downloads check rights and workspace, bound
their input and answer bad input with a 4xx."""

import csv
import datetime
import io

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from automations.services import workspace_grant
from runs.admin.audit_export import MAX_RANGE_DAYS
from runs.engine import run_until_idle
from runs.exports import AUDIT_COLUMNS, audit_filename
from runs.models import Run
from runs.services import run_archive, run_start
from tests.factories import make_user

CHANGELIST = "admin:runs_run_changelist"
RANGE = "admin:runs_run_audit_range"


def _run(auto, subject="acct:1"):
    run = run_start(automation=auto, inputs=[{"subject": subject}])
    run_until_idle(run)
    return run


def _numbers(response):
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert not rows or list(rows[0]) == AUDIT_COLUMNS
    return {int(r["run_number"]) for r in rows}


@pytest.fixture
def two_desks(automation, lending, aml):
    """lena: viewer (may export) in lending only; a run in each workspace."""
    lena = make_user("lena", is_staff=True)
    workspace_grant(user=lena, workspace=lending, role="viewer")
    mine = _run(automation("test.count", workspace="lending"))
    theirs = _run(automation("test.count", workspace="aml"))
    return lena, mine, theirs


def test_audit_filename_names_what_and_when_in_utc():
    at = datetime.datetime(
        2026, 12, 1, 8, 0, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
    )
    assert audit_filename(run_number=42, at=at) == (
        "audit-trail-run-42-20261201T070005Z.csv"
    )
    assert audit_filename(
        start=datetime.date(2026, 11, 1), end=datetime.date(2026, 11, 30), at=at
    ) == ("audit-trail-2026-11-01-to-2026-11-30-20261201T070005Z.csv")
    assert audit_filename(at=at) == "audit-trail-runs-20261201T070005Z.csv"


@pytest.mark.django_db
def test_exports_stay_in_the_workspaces_of_the_person(client, two_desks):
    lena, mine, theirs = two_desks
    client.force_login(lena)
    # the run page's export: another workspace's run is a 404, as unknown
    own = client.get(reverse("admin:runs_run_audit", args=[mine.pk]))
    assert own.status_code == 200 and _numbers(own) == {mine.number}
    foreign = client.get(reverse("admin:runs_run_audit", args=[theirs.pk]))
    assert foreign.status_code == 404
    # the list's export and the date range: her runs only
    listed = client.get(reverse("admin:runs_run_audit_list"))
    assert _numbers(listed) == {mine.number}
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    ranged = client.get(reverse(RANGE), {"start": today, "end": today})
    assert ranged.status_code == 200 and _numbers(ranged) == {mine.number}
    # the selection: a foreign run forced into the POST is left out
    selected = client.post(
        reverse(CHANGELIST),
        {"action": "export_audit", ACTION_CHECKBOX_NAME: [mine.pk, theirs.pk]},
    )
    assert _numbers(selected) == {mine.number}


@pytest.mark.django_db
def test_exports_need_the_export_permission(client, automation):
    run = _run(automation("test.count"))
    client.force_login(make_user("noex", ["view_run"], is_staff=True))
    assert client.get(reverse("admin:runs_run_audit", args=[run.pk])).status_code == 403
    assert client.get(reverse("admin:runs_run_audit_list")).status_code == 403
    assert client.get(reverse(RANGE)).status_code == 403
    forced = client.post(
        reverse(CHANGELIST), {"action": "export_audit", ACTION_CHECKBOX_NAME: [run.pk]}
    )
    assert forced.status_code == 403
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "runs-export-audit" not in page and 'value="export_audit"' not in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query,message",
    [
        ({"start": "2026-10-03", "end": "2026-10-01"}, "must be on or after"),
        ({"start": "2025-01-01", "end": "2026-10-01"}, f"at most {MAX_RANGE_DAYS}"),
        ({"start": "yesterday", "end": "2026-10-01"}, "Enter a valid date"),
        ({"start": "2026-10-01"}, "This field is required"),
        ({"start": "2026-10-01", "end": "9999-12-31"}, "at most"),
        ({"start": "9999-12-31", "end": "9999-12-31"}, "past the last day"),
    ],
)
def test_a_bad_range_is_a_400_that_says_why(admin_client, query, message):
    response = admin_client.get(reverse(RANGE), query)
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.django_db
def test_a_range_without_runs_says_so(admin_client):
    response = admin_client.get(
        reverse(RANGE), {"start": "2001-01-01", "end": "2001-01-02"}
    )
    assert response.status_code == 404
    assert "No run you may export" in response.content.decode()
    assert admin_client.get(reverse(RANGE)).status_code == 200  # the empty form


@pytest.mark.django_db
def test_list_export_refuses_filters_the_list_has_not(admin_client):
    response = admin_client.get(reverse("admin:runs_run_audit_list"), {"nope": "1"})
    assert response.status_code == 400


@pytest.mark.django_db
def test_live_rows_stop_polling_when_nothing_is_active(admin_client, running_run):
    run = running_run()
    live = reverse("admin:runs_run_list_live")
    response = admin_client.get(live, {"q": run.number})
    assert response.status_code == 200
    assert reverse("admin:runs_run_change", args=[run.pk]) in response.content.decode()
    page = admin_client.get(reverse(CHANGELIST), {"q": run.number}).content.decode()
    assert f'hx-get="{live}?q={run.number}"' in page
    Run.objects.filter(pk=run.pk).update(state="completed")
    assert admin_client.get(live, {"q": run.number}).status_code == 286
    page = admin_client.get(reverse(CHANGELIST), {"q": run.number}).content.decode()
    assert "runs-live" not in page
    assert admin_client.get(live, {"nope": "1"}).status_code == 400


@pytest.mark.django_db
def test_live_rows_are_of_the_workspaces_of_the_person(client, two_desks):
    lena, mine, theirs = two_desks
    client.force_login(lena)
    body = client.get(reverse("admin:runs_run_list_live")).content.decode()
    assert reverse("admin:runs_run_change", args=[mine.pk]) in body
    assert reverse("admin:runs_run_change", args=[theirs.pk]) not in body
    client.force_login(make_user("nobody2", is_staff=True))
    assert client.get(reverse("admin:runs_run_list_live")).status_code == 403


@pytest.mark.django_db
def test_archived_hint_counts_only_what_the_person_may_see(client, two_desks):
    lena, mine, theirs = two_desks
    run_archive(mine)
    run_archive(theirs)
    client.force_login(lena)
    page = client.get(reverse(CHANGELIST), {"q": "acct:1"}).content.decode()
    assert "1 archived run matches" in page
    page = client.get(reverse(CHANGELIST), {"q": str(theirs.number)}).content.decode()
    assert "archived run" not in page
