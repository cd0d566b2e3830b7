"""GET /runs/{id}/children/, /outputs/, /step-runs/ (and a step run's log),
`?ordering=` on the runs list, and `parent` and `error` in the run object."""

import pytest
from django.urls import reverse

from runs.engine import run_until_idle
from runs.machines import run_move
from runs.models import Run, StepRun
from runs.services import run_start
from runs.states import RunState
from tests.api.conftest import client_for
from tests.factories import make_user


def drain(run):
    run_until_idle()
    run.refresh_from_db()
    return run


@pytest.fixture
def job_run(automation):
    automation("builtin.echo", slug="kyc")
    job = automation(
        {"action": "builtin.run_automation", "parameters": {"automation": "kyc"}},
        slug="quarterly",
    )
    return drain(run_start(automation=job, inputs=[{"subject": "a"}, {"subject": "b"}]))


def test_children_lists_a_jobs_child_runs_in_order(api, job_run):
    response = api.get(reverse("runs-api:run-children", args=[job_run.pk]))
    assert response.status_code == 200
    rows = response.json()["results"]
    kids = list(Run.objects.filter(parent=job_run).order_by("number"))
    assert [r["id"] for r in rows] == [str(k.pk) for k in kids]
    assert {r["parent"] for r in rows} == {str(job_run.pk)}
    assert {r["state"] for r in rows} == {"completed"}
    detail = api.get(reverse("runs-api:run-detail", args=[job_run.pk])).json()
    assert detail["parent"] is None and detail["error"] == ""


def test_outputs_are_the_kept_last_step_outputs(api, job_run):
    response = api.get(reverse("runs-api:run-outputs", args=[job_run.pk]))
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["payload"] for r in rows] == [{"subject": "a"}, {"subject": "b"}]
    assert len(rows) == job_run.output_items


def test_outputs_page_with_a_cursor(api, automation):
    auto = automation({"action": "test.fan_out", "parameters": {"n": 5}})
    run = drain(run_start(automation=auto))
    url = reverse("runs-api:run-outputs", args=[run.pk])
    first = api.get(url, {"page_size": 3}).json()
    second = api.get(first["next"]).json()
    seen = [r["payload"]["n"] for r in first["results"] + second["results"]]
    assert seen == [0, 1, 2, 3, 4] and second["next"] is None


def test_step_runs_show_state_timings_and_log_link(api, automation):
    run = drain(run_start(automation=automation("builtin.echo", "builtin.echo")))
    response = api.get(reverse("runs-api:run-step-runs", args=[run.pk]))
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["step"] for r in rows] == ["step1", "step2"]
    assert {r["state"] for r in rows} == {"finished"}
    assert all(r["duration_seconds"] is not None for r in rows)
    assert {r["exit_code"] for r in rows} == {None}
    step_run = StepRun.objects.filter(run=run).first()
    StepRun.objects.filter(pk=step_run.pk).update(log="robot says hello\n")
    log = api.get(rows[0]["log_url"])
    assert log.status_code == 200 and log.content == b"robot says hello\n"
    assert log["Content-Type"].startswith("text/plain")


def test_a_step_run_of_another_run_is_404(api, automation):
    one = drain(run_start(automation=automation("builtin.echo")))
    other = drain(run_start(automation=automation("builtin.echo")))
    foreign = StepRun.objects.get(run=other)
    url = reverse("runs-api:run-step-run-log", args=[one.pk, foreign.pk])
    assert api.get(url).status_code == 404


@pytest.mark.parametrize("name", ["run-children", "run-outputs", "run-step-runs"])
def test_the_new_lists_need_view_run_and_hide_unknown_runs(job_run, name, api):
    nobody = client_for(make_user("nemo"))
    assert nobody.get(reverse(f"runs-api:{name}", args=[job_run.pk])).status_code == 403
    assert client_for().get(
        reverse(f"runs-api:{name}", args=[job_run.pk])
    ).status_code in (401, 403)
    unknown = reverse(f"runs-api:{name}", args=["00000000-0000-0000-0000-000000000000"])
    assert api.get(unknown).status_code == 404


def test_ordering_by_completion_creation_and_number(api, automation):
    auto = automation("builtin.echo")
    first, second, third = (run_start(automation=auto) for _ in range(3))
    for run in (third, first):  # completes third, then first; second stays pending
        run_until_idle(run)
    url = reverse("runs-api:run-list")

    def numbers(ordering):
        response = api.get(url, {"ordering": ordering})
        assert response.status_code == 200, response.json()
        return [r["number"] for r in response.json()["results"]]

    assert numbers("-completed_at") == [first.number, third.number]
    assert numbers("completed_at") == [third.number, first.number]
    assert numbers("created_at") == [first.number, second.number, third.number]
    assert numbers("number") == [first.number, second.number, third.number]
    assert numbers("-number") == [third.number, second.number, first.number]


@pytest.mark.parametrize("bad", ["state", "-payload", "--number", "number,state"])
def test_ordering_by_anything_else_is_400(api, bad):
    response = api.get(reverse("runs-api:run-list"), {"ordering": bad})
    assert response.status_code == 400
    assert "ordering" in response.json()["detail"]


def test_error_says_why_a_run_is_unresolved_or_failed(api, automation):
    auto = automation("test.business_fail")
    unresolved = drain(run_start(automation=auto, inputs=[{"bad": True}]))
    failed = run_start(automation=auto)
    run_move(failed, RunState.FAILED, updates={"error": "no action test.gone"})
    got = {
        r["number"]: r["error"]
        for r in api.get(reverse("runs-api:run-list")).json()["results"]
    }
    assert got[unresolved.number] == (
        "1 work item failed and wait for a retry or a resolution"
    )
    assert got[failed.number] == "no action test.gone"


def test_a_childs_parent_is_in_its_representation(api, job_run):
    kid = Run.objects.filter(parent=job_run).first()
    detail = api.get(reverse("runs-api:run-detail", args=[kid.pk])).json()
    assert detail["parent"] == str(job_run.pk)
