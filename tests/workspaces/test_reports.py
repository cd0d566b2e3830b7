"""The period report, the audit export, the audit events and the evidence pack of
one workspace contain nothing of another; the changelists' query counts stay fixed
for a person of one workspace."""

import io
import zipfile

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from runs.engine import run_until_idle
from runs.services import run_start
from tests.api.conftest import client_for

from .conftest import FOREIGN_SLUG

FOREIGN_NAME = "Aml Secret"


def text(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def test_period_report_of_a_workspace_holds_nothing_of_another(
    client, lena, own, foreign
):
    client.force_login(lena)
    page = text(client.get(reverse("admin:runs_run_report")))
    csv = text(client.get(reverse("admin:runs_run_report"), {"format": "csv"}))
    api = client_for(lena).get("/api/v1/reports/period/").json()
    for body in (page, csv):
        assert "loan-review" in body
        assert FOREIGN_SLUG not in body and FOREIGN_NAME not in body
    assert [row["automation"] for row in api["rows"]] == ["loan-review"]
    # naming the other workspace shows an empty report, as an unknown one
    other = client_for(lena).get("/api/v1/reports/period/", {"workspace": "aml"})
    assert other.status_code == 200 and other.json()["rows"] == []


def test_the_workspace_filter_of_the_report_for_whoever_sees_both(client, own, foreign):
    from tests.factories import make_user

    root = make_user("root", is_superuser=True, is_staff=True)
    client.force_login(root)
    both = text(client.get(reverse("admin:runs_run_report"), {"format": "csv"}))
    assert "loan-review" in both and FOREIGN_SLUG in both
    one = text(
        client.get(
            reverse("admin:runs_run_report"), {"format": "csv", "workspace": "aml"}
        )
    )
    assert FOREIGN_SLUG in one and "loan-review" not in one
    board = text(client.get(reverse("admin:index"), {"workspace": "lending"}))
    assert "Loan Review" in board and FOREIGN_NAME not in board


def test_audit_export_and_events_hold_nothing_of_another(client, lena, own, foreign):
    api = client_for(lena)
    export = text(api.get("/api/v1/runs/export.csv"))
    assert str(own[1].pk) in export
    assert str(foreign[1].pk) not in export and FOREIGN_SLUG not in export
    events = api.get("/api/v1/audit-events/").json()["results"]
    assert events and {e["run"] for e in events} == {str(own[1].pk)}
    # the admin's audit CSV of a selection naming both runs
    client.force_login(lena)
    response = client.post(
        reverse("admin:runs_run_changelist") + "?archived=all",
        {
            "action": "export_csv",
            "_selected_action": [own[1].pk, foreign[1].pk],
            "confirm": "1",
            "what": "audit",
        },
    )
    body = text(response)
    assert str(own[1].pk) in body and str(foreign[1].pk) not in body


def test_period_evidence_pack_of_a_workspace_verifies_and_holds_only_it(
    client, lena, own, foreign, tmp_path
):
    client.force_login(lena)
    response = client.get(reverse("admin:runs_run_report_evidence"))
    assert response.status_code == 200
    data = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(data)) as pack:
        content = "".join(
            pack.read(name).decode(errors="replace") for name in pack.namelist()
        )
    assert str(own[1].pk) in content
    assert str(foreign[1].pk) not in content and FOREIGN_SLUG not in content
    path = tmp_path / "pack.zip"
    path.write_bytes(data)
    out = io.StringIO()
    call_command("verify_evidence", str(path), stdout=out)


@pytest.mark.parametrize(
    "url",
    [
        "admin:runs_run_changelist",
        "admin:runs_workitem_changelist",
        "admin:runs_runitem_changelist",
        "admin:runs_auditevent_changelist",
        "admin:automations_automation_changelist",
    ],
)
def test_changelist_queries_stay_fixed_for_a_member(client, lena, own, url):
    client.force_login(lena)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse(url)).status_code == 200
        return len(queries)

    first = count()
    for _ in range(4):
        run = run_start(automation=own[0], inputs=[{"subject": "more"}, {"x": 1}])
        run_until_idle(run)
    assert count() == first
