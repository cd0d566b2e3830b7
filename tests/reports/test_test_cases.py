"""Test cases from runs: expected outcomes kept, the suite passes and fails."""

import pytest
from django.core.management import CommandError, call_command

from automations.definitions import automation_import
from runs.engine import run_until_idle
from runs.models import Run
from runs.regression.models import TestCase
from runs.regression.services import test_case_add, test_suite_run
from runs.reports import period_report
from runs.services import InvalidRequest, run_start


def _kyc(automation):
    return automation({"action": "test.business_fail"}, "builtin.echo", slug="kyc")


@pytest.fixture
def case(automation, user):
    auto = _kyc(automation)
    run = run_start(
        automation=auto, inputs=[{"subject": "a"}, {"subject": "b", "bad": True}]
    )
    run_until_idle()
    return test_case_add(run, actor=user, name="a ok, b refused")


def test_add_keeps_inputs_and_per_item_outcomes(case, user):
    run = case.source_run
    run.refresh_from_db()
    assert run.is_test_case and case.created_by == user
    assert case.inputs == [{"subject": "a"}, {"subject": "b", "bad": True}]
    assert case.expected_state == "unresolved"
    got = {
        (e["step"], e["subject"], e["index"]): (e["state"], e["outcome"])
        for e in case.expected
    }
    assert got == {
        ("step1", "a", 0): ("done", "succeeded"),
        ("step1", "b", 0): ("failed", "failed"),
        ("step2", "a", 0): ("done", "succeeded"),
    }
    with pytest.raises(InvalidRequest):
        test_case_add(run)  # once per run


def test_a_running_run_cannot_become_a_test_case(automation):
    run = run_start(automation=automation("builtin.echo"))
    with pytest.raises(InvalidRequest, match="only a settled run"):
        test_case_add(run)
    assert not TestCase.objects.exists()


def test_suite_passes_on_the_same_definition(case):
    result = test_suite_run(case.automation, inline=True)
    assert (result.passed, result.failed) == (1, 0)
    suite_run = result.executions[0].run
    assert suite_run.is_test_case and suite_run.trigger_kind == "manual"
    # the suite's run is not in the period report; the source run is
    report = period_report(
        start=case.created_at.replace(year=2000), end=case.created_at.replace(year=2100)
    )
    assert report.runs == 1


def test_suite_fails_on_a_draft_that_changes_outcomes(case, capsys):
    # v2 (draft): the first step no longer refuses "b", so b succeeds and goes on
    automation_import(
        {
            "slug": "kyc",
            "name": "Kyc",
            "publish": False,
            "steps": [
                {"name": "step1", "action": "builtin.echo"},
                {"name": "step2", "action": "builtin.echo"},
            ],
            "triggers": [{"kind": "manual"}],
        }
    )
    draft = case.automation.versions.get(number=2)
    assert not draft.is_published
    result = test_suite_run(case.automation, version=draft, inline=True)
    assert (result.passed, result.failed) == (0, 1)
    diffs = result.executions[0].differences
    whats = {(d["what"], d.get("step"), d.get("subject")) for d in diffs}
    assert ("run state", None, None) in whats
    assert ("outcome", "step1", "b") in whats and ("state", "step1", "b") in whats
    assert ("unexpected item", "step2", "b") in whats
    assert result.executions[0].run.version == draft

    with pytest.raises(CommandError, match="1 failed"):
        call_command("test_automation", "kyc", "--inline")
    out = capsys.readouterr().out
    assert "FAILED  a ok, b refused" in out and "unexpected item step2/b#0" in out
    call_command("test_automation", "kyc", "--version", "1", "--inline")
    assert "PASSED  a ok, b refused" in capsys.readouterr().out


def test_command_refuses_unknowns(db, automation):
    automation("builtin.echo", slug="lonely")
    with pytest.raises(CommandError, match="no automation"):
        call_command("test_automation", "nope")
    with pytest.raises(CommandError, match="no test cases"):
        call_command("test_automation", "lonely", "--inline")
    with pytest.raises(CommandError, match="no version 9"):
        call_command("test_automation", "lonely", "--version", "9")


def test_admin_add_as_test_case_and_suite_page(case, admin_client, automation):
    auto = automation("builtin.echo", slug="plain")
    run = run_start(automation=auto, inputs=[{"subject": "p"}])
    run_until_idle()
    response = admin_client.post(
        f"/admin/runs/run/{run.pk}/act/test_case/", {"reason": "reference"}
    )
    assert response.status_code == 302
    assert TestCase.objects.filter(source_run=run).exists()
    page = admin_client.get(f"/admin/runs/testcase/suite/{case.automation_id}/")
    assert page.status_code == 200 and b"Run the suite" in page.content
    draft_or_v1 = case.automation.versions.get(number=1)
    response = admin_client.post(
        f"/admin/runs/testcase/suite/{case.automation_id}/",
        {"version": draft_or_v1.pk},
    )
    assert response.status_code == 302 and "batch=" in response["Location"]
    run_until_idle()  # the cluster's part
    page = admin_client.get(response["Location"])
    assert page.context["passed"] == 1 and page.context["failed"] == 0
    assert Run.objects.filter(is_test_case=True).count() == 3
