"""Job runs: `builtin.run_automation` starts one child run per work item, the item
waits (holding no worker) and takes the child's outcome; stop, terminate, retry
and re-run reach the children; a job that starts itself is refused at import."""

import pytest

from automations.definitions import DefinitionError
from runs.engine import housekeeping, run_until_idle
from runs.models import Run, RunItem, StepRun, WorkItem
from runs.services import (
    run_rerun,
    run_retry,
    run_start,
    run_stop,
    work_item_decide,
)
from runs.states import (
    FailureType,
    IllegalTransition,
    RunItemOutcome,
    RunState,
    StepRunState,
    WorkItemState,
)
from tests.factories import make_user


def job_step(slug, name="run"):
    return {
        "name": name,
        "action": "builtin.run_automation",
        "parameters": {"automation": slug},
    }


def drain(run):
    run_until_idle()  # every queued step run: the job's and its children's
    run.refresh_from_db()
    return run


def children(run):
    return list(Run.objects.filter(parent=run).order_by("number"))


def test_a_job_runs_one_child_per_item_and_takes_their_outputs(automation):
    automation("builtin.echo", "test.count", slug="kyc")
    job = automation(job_step("kyc"), slug="quarterly")
    run = drain(run_start(automation=job, inputs=[{"subject": "a"}, {"subject": "b"}]))
    assert run.state == RunState.COMPLETED
    kids = children(run)
    assert [k.state for k in kids] == [RunState.COMPLETED] * 2
    assert [k.inputs for k in kids] == [[{"subject": "a"}], [{"subject": "b"}]]
    assert {k.parent_item.run_id for k in kids} == {run.pk}
    # the job's outputs are its children's outputs, kept and counted
    outputs = list(run.outputs.order_by("id").values_list("payload", flat=True))
    assert outputs == [{"subject": "a"}, {"subject": "b"}]
    assert run.output_items == 2
    # each item waited (awaiting_approval naming its child), then succeeded
    for kid in kids:
        rows = RunItem.objects.filter(run=run, work_item=kid.parent_item_id)
        assert list(rows.order_by("seq").values_list("outcome", "result_ref")) == [
            (RunItemOutcome.AWAITING_APPROVAL, str(kid.pk)),
            (RunItemOutcome.SUCCEEDED, str(kid.pk)),
        ]


def test_the_wait_holds_no_worker(automation):
    automation(
        {"action": "builtin.request_approval", "parameters": {"approvers": ["bob"]}},
        slug="needs-approval",
    )
    job = automation(job_step("needs-approval"), slug="waits")
    run = drain(run_start(automation=job))
    (kid,) = children(run)
    assert kid.state == RunState.AWAITING_INPUT
    assert run.state == RunState.AWAITING_INPUT
    item = WorkItem.objects.get(run=run)
    assert item.state == WorkItemState.AWAITING_INPUT and item.lease_token is None
    assert not StepRun.objects.filter(
        run=run, state__in=[StepRunState.QUEUED, StepRunState.RUNNING]
    ).exists()


def test_the_child_is_pinned_to_the_latest_published_version(automation):
    child = automation("builtin.echo", slug="pinned")
    automation("builtin.echo", "builtin.echo", slug="pinned", publish=False)  # v2
    job = automation(job_step("pinned"), slug="pins")
    run = drain(run_start(automation=job))
    (kid,) = children(run)
    assert kid.version.number == 1 and kid.version.automation_id == child.pk


def test_a_child_that_fails_fails_its_item_with_the_child_state(automation):
    automation("test.business_fail", slug="strict")
    job = automation(job_step("strict"), slug="strict-job")
    run = drain(run_start(automation=job, inputs=[{"bad": True}, {"bad": False}]))
    assert run.state == RunState.UNRESOLVED and run.failed_items == 1
    failed = WorkItem.objects.get(run=run, state=WorkItemState.FAILED)
    kid = Run.objects.get(parent_item=failed)
    assert kid.state == RunState.UNRESOLVED
    assert (failed.failure_type, failed.failure_code) == (
        FailureType.BUSINESS,
        "child_unresolved",
    )
    last = RunItem.objects.filter(work_item=failed).order_by("-seq").first()
    assert (last.outcome, last.result_ref) == (RunItemOutcome.FAILED, str(kid.pk))


def test_a_draft_only_child_is_refused_as_not_published(automation):
    automation("builtin.echo", slug="draft-only", publish=False)
    job = automation(job_step("draft-only"), slug="draft-job")
    run = drain(run_start(automation=job))
    item = WorkItem.objects.get(run=run)
    assert item.failure_code == "child_not_published" and not children(run)


def test_retry_of_the_job_retries_the_child(automation):
    automation("test.business_fail", slug="fixable")
    job = automation(job_step("fixable"), slug="fixable-job")
    run = drain(run_start(automation=job, inputs=[{"bad": True}]))
    (kid,) = children(run)
    assert kid.state == RunState.UNRESOLVED
    # the child's input is corrected by its owner; the job's retry reaches it
    WorkItem.objects.filter(run=kid).update(payload={"bad": False})
    run_retry(run)
    drain(run)
    kid.refresh_from_db()
    assert (kid.state, run.state) == (RunState.COMPLETED, RunState.COMPLETED)
    assert children(run) == [kid]  # the same child, retried, not a second one


def test_retry_of_a_cancelled_child_without_failures_starts_a_new_one(automation):
    automation("builtin.echo", slug="cancelled-child")
    job = automation(job_step("cancelled-child"), slug="cancel-job")
    run = run_start(automation=job)
    run_until_idle(run)  # the job's step ran; its child has not started yet
    (kid,) = children(run)
    run_stop(kid, pending_items="done")  # it settles cancelled, nothing failed
    kid.refresh_from_db()
    assert (kid.state, kid.failed_items) == (RunState.CANCELLED, 0)
    drain(run)
    assert run.state == RunState.UNRESOLVED
    assert WorkItem.objects.get(run=run).failure_code == "child_cancelled"
    run_retry(run)
    drain(run)
    old, new = children(run)
    assert (old.pk, new.rerun_of_id, new.state) == (
        kid.pk,
        kid.pk,
        RunState.COMPLETED,
    )
    assert run.state == RunState.COMPLETED


def test_stop_of_the_job_reaches_its_children(automation):
    automation(
        {"action": "builtin.request_approval", "parameters": {"approvers": ["bob"]}},
        slug="slow-child",
    )
    job = automation(job_step("slow-child"), slug="stopped-job")
    run = drain(run_start(automation=job, inputs=[{"n": 1}, {"n": 2}]))
    assert [k.state for k in children(run)] == [RunState.AWAITING_INPUT] * 2
    run_stop(run, step_runs="terminate")
    drain(run)
    assert [k.state for k in children(run)] == [RunState.CANCELLED] * 2
    assert all(k.stop_options["step_runs"] == "terminate" for k in children(run))
    assert run.state == RunState.CANCELLED
    assert set(WorkItem.objects.filter(run=run).values_list("state", flat=True)) == {
        WorkItemState.FAILED
    }


def test_a_stopping_job_waits_for_its_children_to_settle(automation):
    automation("builtin.echo", slug="quick-child")
    job = automation(job_step("quick-child"), slug="waits-for-children")
    run = run_start(automation=job)
    run_until_idle(run)  # the job's step ran: its child is queued, not run yet
    (kid,) = children(run)
    run.refresh_from_db()
    # the child settles only when it runs; stop the job with "complete" meanwhile
    kid.refresh_from_db()
    assert kid.state in (RunState.PENDING, RunState.RUNNING)
    run_stop(run)
    run.refresh_from_db()
    kid.refresh_from_db()
    assert kid.state in (RunState.STOPPING, RunState.CANCELLED)
    drain(run)
    kid.refresh_from_db()
    assert kid.state == RunState.CANCELLED and run.state == RunState.CANCELLED


def test_a_person_cannot_decide_for_a_child_run(automation, other_user):
    automation(
        {"action": "builtin.request_approval", "parameters": {"approvers": ["bob"]}},
        slug="child-approval",
    )
    job = automation(job_step("child-approval"), slug="no-deciding")
    run = drain(run_start(automation=job))
    item = WorkItem.objects.get(run=run)
    with pytest.raises(IllegalTransition, match="waits for child run"):
        work_item_decide(
            run, actor=other_user, work_item_id=item.pk, decision="approve"
        )
    item.refresh_from_db()
    assert item.state == WorkItemState.AWAITING_INPUT
    # the child's own item is decided by its approver; the job then takes it
    (kid,) = children(run)
    child_item = WorkItem.objects.get(run=kid)
    work_item_decide(
        kid, actor=other_user, work_item_id=child_item.pk, decision="approve"
    )
    drain(run)
    assert run.state == RunState.COMPLETED


def test_rerun_of_a_job_starts_new_children(automation):
    automation("builtin.echo", slug="rerun-child")
    job = automation(job_step("rerun-child"), slug="rerun-job")
    run = drain(run_start(automation=job))
    again = drain(run_rerun(run, actor=make_user("carol")))
    assert again.state == RunState.COMPLETED
    (first,), (second,) = children(run), children(again)
    assert first.pk != second.pk and second.parent_id == again.pk


def test_a_child_that_times_out_moves_its_job_on_at_housekeeping(automation):
    automation(
        {"action": "builtin.request_approval", "parameters": {"approvers": ["bob"]}},
        slug="times-out",
        timeout=60,
    )
    job = automation(job_step("times-out"), slug="timeout-job")
    run = drain(run_start(automation=job))
    (kid,) = children(run)
    from runs.engine.progress import run_time_out

    assert run_time_out(kid)
    housekeeping()
    drain(run)
    assert run.state == RunState.UNRESOLVED
    assert WorkItem.objects.get(run=run).failure_code == "child_timed_out"


# -- import: a job that starts itself is refused ------------------------------------


def test_a_job_that_starts_itself_is_refused(automation):
    with pytest.raises(DefinitionError, match="a cycle: selfish → selfish"):
        automation(job_step("selfish"), slug="selfish")
    assert not Run.objects.exists()


def test_a_cycle_through_another_job_is_refused(automation):
    automation("builtin.echo", slug="leaf")
    automation(job_step("leaf"), slug="outer")
    automation(job_step("outer"), slug="top")
    # leaf now runs top: leaf → top → outer → leaf
    with pytest.raises(DefinitionError, match="a cycle: leaf → top → outer → leaf"):
        automation(job_step("top"), slug="leaf")
    from automations.models import Automation

    assert Automation.objects.get(slug="leaf").latest_version().number == 1


def test_a_job_of_an_unknown_automation_is_refused(automation):
    with pytest.raises(DefinitionError, match="no automation 'ghost'"):
        automation(job_step("ghost"), slug="haunted")


@pytest.mark.parametrize("bad", [None, "", "no spaces", 3])
def test_a_job_step_names_its_automation(automation, bad):
    with pytest.raises(DefinitionError, match="parameters.automation: required"):
        automation(
            {"action": "builtin.run_automation", "parameters": {"automation": bad}}
        )


def test_a_shared_child_is_not_a_cycle(automation):
    automation("builtin.echo", slug="shared")
    automation(job_step("shared"), slug="one")
    job = automation(job_step("one", "a"), job_step("shared", "b"), slug="diamond")
    run = drain(run_start(automation=job))
    assert run.state == RunState.COMPLETED
    assert [k.automation.slug for k in children(run)] == ["one", "shared"]
    (grandchild,) = children(children(run)[0])
    assert grandchild.automation.slug == "shared"


def test_pass_on_input_runs_the_next_step_once_per_job_item(automation):
    automation({"action": "test.fan_out", "parameters": {"n": 3}}, slug="fans")
    automation("builtin.echo", slug="after")
    job = automation(
        {
            **job_step("fans", "first"),
            "parameters": {"automation": "fans", "pass_on": "input"},
        },
        job_step("after", "second"),
        slug="in-order",
    )
    run = drain(run_start(automation=job, inputs=[{"quarter": "Q1"}]))
    assert run.state == RunState.COMPLETED
    assert [k.automation.slug for k in children(run)] == ["fans", "after"]
    assert children(run)[1].inputs == [{"quarter": "Q1"}]


def test_pass_on_is_outputs_or_input(automation):
    automation("builtin.echo", slug="target")
    with pytest.raises(DefinitionError, match="parameters.pass_on"):
        automation(
            {
                "action": "builtin.run_automation",
                "parameters": {"automation": "target", "pass_on": "both"},
            }
        )


def test_a_child_completed_by_a_resolution_is_taken_on_retry(automation, user):
    from runs.services import run_resolve

    automation("test.business_fail", slug="resolvable")
    job = automation(job_step("resolvable"), slug="resolve-job")
    run = drain(run_start(automation=job, inputs=[{"bad": True}]))
    (kid,) = children(run)
    run_resolve(kid, actor=user, note="checked by phone")
    kid.refresh_from_db()
    assert kid.state == RunState.COMPLETED
    run_retry(run)
    drain(run)
    assert run.state == RunState.COMPLETED and children(run) == [kid]


def test_housekeeping_moves_a_job_on_when_its_child_settled_elsewhere(automation):
    automation(
        {"action": "builtin.request_approval", "parameters": {"approvers": ["bob"]}},
        slug="settled-elsewhere",
    )
    job = automation(job_step("settled-elsewhere"), slug="collected-job")
    run = drain(run_start(automation=job))
    (kid,) = children(run)
    # the child fails through the machine alone: nothing tells its job
    from runs.machines import run_move

    run_move(kid, RunState.RUNNING)
    run_move(kid, RunState.FAILED, reason="failed elsewhere")
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_INPUT
    report = housekeeping()
    assert report["jobs_collected"] == 1
    drain(run)
    assert run.state == RunState.UNRESOLVED
    assert WorkItem.objects.get(run=run).failure_code == "child_failed"
