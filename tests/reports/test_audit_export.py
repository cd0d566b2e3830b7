"""The streaming audit CSV: run items and audit events in ledger order."""

import csv
import io

import pytest

from runs.engine import run_until_idle
from runs.exports import AUDIT_COLUMNS
from runs.services import run_archive, run_start
from tests.api.conftest import client_for, make_user


def _rows(response):
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def exporter(db):
    return client_for(make_user("exp", ["view_run", "export_run", "archive_run"]))


def test_items_and_operator_events_interleave_in_ledger_order(automation, exporter, user):
    auto = automation(
        {"action": "test.business_fail", "parameters": {"note": "=cmd|' /C calc'!A0"}},
        slug="kyc",
    )
    run = run_start(
        automation=auto,
        inputs=[{"subject": '=HYPERLINK("http://evil")'}, {"subject": "+1-2", "bad": 1}],
        actor=user,
    )
    run_until_idle()
    run.refresh_from_db()
    run_archive(run, actor=user, reason="@SUM(A1)")
    rows = _rows(exporter.get("/api/v1/runs/export.csv"))
    assert list(rows[0]) == AUDIT_COLUMNS
    assert [int(r["seq"]) for r in rows] == list(range(1, len(rows) + 1))
    kinds = [r["record"] for r in rows]
    assert kinds.count("run_item") == 2 and kinds[0] == "audit_event"
    assert rows[0]["verb"] == "run.created" and rows[0]["actor"] == "alice"
    archive = rows[-1]
    assert archive["record"] == "audit_event" and archive["verb"] == "run.archived"
    assert archive["reason"] == "'@SUM(A1)"  # neutralised
    items = [r for r in rows if r["record"] == "run_item"]
    assert {r["automation"] for r in items} == {"kyc"}
    assert {r["version"] for r in items} == {"1"} and items[0]["trigger"] == "manual"
    assert {r["subject"] for r in items} == {"'=HYPERLINK(\"http://evil\")", "'+1-2"}
    failed = next(r for r in items if r["outcome"] == "failed")
    assert failed["failure_cause"] == "the subject is not eligible"
    # parameters are JSON as executed; the cell starts with "{", so it stays as is
    assert '"note": "=cmd' in items[0]["parameters"]
    for row in rows:  # no cell of the file starts like a formula
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")) or (
                value.lstrip("+-").replace(".", "").isdigit()
            )


def test_admin_export_action_streams_the_audit_csv(automation, admin_client):
    run = run_start(automation=automation("builtin.echo"), inputs=[{"subject": "-x"}])
    run_until_idle()
    response = admin_client.post(
        "/admin/runs/run/",
        {"action": "export_csv", "_selected_action": [run.pk], "confirm": "1",
         "what": "audit"},
    )
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = _rows(response)
    assert [r["subject"] for r in rows if r["record"] == "run_item"] == ["'-x"]
