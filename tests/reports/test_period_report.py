"""The period report against runs built through the engine with test actions."""

import csv
import datetime
import io

import pytest
from django.utils import timezone

from runs.engine import run_until_idle
from runs.models import Run
from runs.regression.services import test_case_add
from runs.reports import period_report
from runs.services import run_retry, run_start
from tests.api.conftest import client_for
from tests.factories import make_user


@pytest.fixture
def period(automation):
    """kyc v1: run A (a ok, b not eligible -> unresolved), run B (c ok ->
    completed); notify v1: run C (2 items ok); a suite run of notify (left out by
    default); a kyc run from last year (outside the period)."""
    kyc = automation("test.business_fail", slug="kyc")
    notify = automation("builtin.select_subjects", "builtin.echo", slug="notify")
    a = run_start(automation=kyc, inputs=[{"subject": "a"}, {"subject": "b", "bad": 1}])
    b = run_start(automation=kyc, inputs=[{"subject": "c"}])
    c = run_start(automation=notify, inputs=[{"subject": "x"}, {"subject": "y"}])
    suite = run_start(automation=notify, inputs=[{"subject": "t"}], is_test_case=True)
    old = run_start(automation=kyc, inputs=[{"subject": "z", "bad": 1}])
    run_until_idle()
    Run.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=400)
    )
    now = timezone.now()
    return {
        "start": now - datetime.timedelta(days=1),
        "end": now + datetime.timedelta(minutes=1),
        "runs": {r.number: r for r in (a, b, c, suite, old)},
        "a": a,
        "b": b,
        "c": c,
        "suite": suite,
    }


def _rows(report):
    return {(row.automation_slug, row.version_number): row for row in report.rows}


def test_counts_per_automation_version_state_and_outcome(period):
    report = period_report(start=period["start"], end=period["end"])
    rows = _rows(report)
    assert set(rows) == {("kyc", 1), ("notify", 1)}
    kyc, notify = rows[("kyc", 1)], rows[("notify", 1)]
    assert kyc.runs == 2 and kyc.states == {"unresolved": 1, "completed": 1}
    assert kyc.outcomes == {"succeeded": 2, "failed": 1}
    # subjects are matched by builtin.select_subjects only
    assert kyc.actions_invoked == 3 and kyc.subjects_matched == 0
    assert kyc.failed_items == 1
    assert kyc.causes == [("the subject is not eligible", 1)]
    assert notify.runs == 1 and notify.states == {"completed": 1}
    # 2 selections + 2 echoes are run items; the selection is not an action
    assert notify.outcomes == {"succeeded": 4}
    assert notify.actions_invoked == 2 and notify.subjects_matched == 2
    assert report.runs == 3 and report.run_items == 7
    assert report.causes == [("the subject is not eligible", 1)]


def test_suite_runs_left_out_unless_asked_but_added_cases_stay(period):
    test_case_add(period["c"])  # a production run kept as a test case still counts
    default = _rows(period_report(start=period["start"], end=period["end"]))
    assert default[("notify", 1)].runs == 1
    both = _rows(
        period_report(start=period["start"], end=period["end"], include_test_cases=True)
    )
    assert both[("notify", 1)].runs == 2


def test_fixed_query_count_whatever_the_runs(period, django_assert_num_queries):
    with django_assert_num_queries(3):
        period_report(start=period["start"], end=period["end"])
    for _ in range(3):
        run_start(automation=period["a"].automation, inputs=[{"subject": "n"}])
    run_until_idle()
    with django_assert_num_queries(3):
        report = period_report(start=period["start"], end=period["end"])
    assert report.runs == 6


def test_api_json_csv_and_drill_down(period, admin_client):
    api = client_for(make_user("auditor", ["view_run"]))
    query = {"start": period["start"].isoformat(), "end": period["end"].isoformat()}
    data = api.get("/api/v1/reports/period/", query).json()
    assert data["totals"]["runs"] == 3 and data["totals"]["run_items"] == 7
    kyc = next(row for row in data["rows"] if row["automation"] == "kyc")
    assert kyc["states"] == {"unresolved": 1, "completed": 1}
    assert kyc["top_failure_causes"] == [
        {"cause": "the subject is not eligible", "count": 1}
    ]
    # the drill-down lists exactly the runs counted in the row
    page = admin_client.get(kyc["runs_url"].replace("http://testserver", ""))
    assert page.status_code == 200
    numbers = {r.number for r in page.context["cl"].result_list}
    assert numbers == {period["a"].number, period["b"].number}

    response = api.get("/api/v1/reports/period/", {**query, "format": "csv"})
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["automation"] for r in table] == ["kyc", "notify", "TOTAL"]
    assert table[0]["runs_unresolved"] == "1" and table[0]["items_failed"] == "1"
    assert table[2]["runs"] == "3"


def test_api_refuses_a_bad_period(db):
    api = client_for(make_user("auditor", ["view_run"]))
    response = api.get(
        "/api/v1/reports/period/", {"start": "2026-02-01", "end": "2026-01-01"}
    )
    assert response.status_code == 400
    assert api.get("/api/v1/reports/period/", {"start": "soon"}).status_code == 400
    assert client_for().get("/api/v1/reports/period/").status_code == 401


def test_failure_causes_count_work_items_not_attempts(automation, operator):
    """One account failed, retried twice (three failed run items): it is one
    failure, "missing manager_email (1)", not three."""
    kyc = automation("test.business_fail", slug="kyc-retried")
    run = run_start(
        automation=kyc, inputs=[{"subject": "a", "bad": 1}, {"subject": "b", "bad": 1}]
    )
    run_until_idle()
    for _ in range(2):  # the first item retried twice, failing each time
        first = run.work_items.order_by("pk").first()
        run_retry(run, actor=operator, work_item_ids=[first.pk])
        run_until_idle()
    assert run.run_items.filter(outcome="failed").count() == 4
    now = timezone.now()
    report = period_report(
        start=now - datetime.timedelta(days=1), end=now + datetime.timedelta(minutes=1)
    )
    (row,) = report.rows
    assert row.causes == [("the subject is not eligible", 2)]
    assert report.causes == [("the subject is not eligible", 2)]
    # the outcome counts stay per run item (what was attempted)
    assert row.outcomes == {"failed": 4}
