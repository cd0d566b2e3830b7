"""The engine: outcomes, final run states, stop modes, retries, leases, idempotency."""

import types

import pytest
from django.db.models import Count
from django.utils import timezone

import tests.actions as test_actions
from automations.models import Step
from runs.engine import StepRunner, housekeeping, run_until_idle
from runs.engine.progress import leases_reap
from runs.machines.work_item import LeaseLost
from runs.models import AuditEvent, Run, RunItem, StepRun, WorkItem
from runs.services import (
    InvalidRequest,
    NotAllowed,
    NotRunnable,
    run_rerun,
    run_resolve,
    run_retry,
    run_start,
    run_stop,
    work_item_decide,
)
from runs.states import (
    IllegalTransition,
    RunItemOutcome,
    RunState,
    StepRunState,
    WorkItemState,
)

from .runners import running_runner


def start_and_drain(automation_obj, inputs=None, **kwargs):
    run = run_start(automation=automation_obj, inputs=inputs, **kwargs)
    run_until_idle(run)
    run.refresh_from_db()
    return run


def expire_leases(run):
    """Time passes past the lease of a worker that died."""
    past = timezone.now() - timezone.timedelta(seconds=1)
    WorkItem.objects.filter(run=run, state=WorkItemState.IN_PROGRESS).update(
        lease_expires_at=past
    )
    StepRun.objects.filter(run=run, state=StepRunState.RUNNING).update(
        lease_expires_at=past
    )


def outcomes(run, step_name=None):
    items = RunItem.objects.filter(run=run)
    if step_name:
        items = items.filter(step__name=step_name)
    return sorted(items.values_list("outcome", flat=True))


def test_three_step_run_completes_with_counters(automation):
    auto = automation("builtin.echo", "builtin.echo", "test.count")
    run = start_and_drain(auto, [{"subject": "acct-1"}, {"subject": "acct-2"}])
    assert run.state == RunState.COMPLETED
    # output_items: the run's outputs, what its last step returned (kept)
    assert (run.total_items, run.output_items, run.failed_items) == (6, 2, 0)
    assert run.outputs.count() == 2
    assert run.actions_invoked == 6 and run.current_step == "step3"
    assert run.started_at and run.completed_at and run.lead_time_seconds >= 0
    assert outcomes(run) == [RunItemOutcome.SUCCEEDED] * 6
    ri = RunItem.objects.filter(run=run, step__name="step3").order_by("seq").first()
    assert (
        ri.subject == "acct-1" and ri.result_ref.startswith("ref-") and ri.attempt == 1
    )
    assert list(
        AuditEvent.objects.filter(run=run)
        .order_by("seq")
        .values_list("verb", flat=True)
    ) == ["run.created", "run.started", "run.completed"]


def test_no_inputs_runs_one_empty_item(automation):
    run = start_and_drain(automation("builtin.echo"))
    assert run.state == RunState.COMPLETED and run.total_items == 1


def test_condition_false_is_skipped(automation):
    auto = automation(
        {
            "action": "builtin.echo",
            "condition": {"field": "status", "op": "eq", "value": "active"},
        }
    )
    run = start_and_drain(auto, [{"status": "active"}, {"status": "closed"}])
    assert outcomes(run) == [RunItemOutcome.SKIPPED, RunItemOutcome.SUCCEEDED]
    assert run.state == RunState.COMPLETED and run.actions_invoked == 1


def test_all_skipped_is_completed_no_action(automation):
    auto = automation(
        {"action": "builtin.echo", "condition": {"field": "go", "op": "exists"}}
    )
    run = start_and_drain(auto, [{}, {}])
    assert run.state == RunState.COMPLETED_NO_ACTION and run.actions_invoked == 0


def test_selector_finding_nothing_is_completed_no_action(automation, db):
    auto = automation(
        {
            "action": "builtin.select_subjects",
            "parameters": {"source": "subjects", "kind": "nothing"},
        },
        "test.count",
    )
    run = start_and_drain(auto)
    assert run.state == RunState.COMPLETED_NO_ACTION
    assert run.subjects_matched == 0 and run.total_items == 1


def test_selector_counts_subjects_matched(automation):
    auto = automation(
        {"action": "test.fan_out", "parameters": {"n": 4}},
        "builtin.select_subjects",
        "test.count",
    )
    run = start_and_drain(auto)
    assert run.subjects_matched == 4 and run.actions_invoked == 1 + 4
    assert set(
        RunItem.objects.filter(run=run, step__name="step3").values_list(
            "subject", flat=True
        )
    ) == {"sub-0", "sub-1", "sub-2", "sub-3"}


def test_business_error_fails_without_retry_and_run_is_unresolved(automation):
    auto = automation({"action": "test.business_fail", "max_attempts": 3})
    run = start_and_drain(auto, [{"bad": True}, {}])
    assert run.state == RunState.UNRESOLVED and run.failed_items == 1
    item = WorkItem.objects.get(run=run, state=WorkItemState.FAILED)
    assert (item.failure_type, item.failure_code, item.attempts) == (
        "business",
        "not_eligible",
        1,
    )
    assert "not eligible" in item.failure_message


def test_application_error_is_retried_with_backoff_then_succeeds(automation):
    auto = automation(
        {
            "action": "test.flaky",
            "max_attempts": 3,
            "retry_backoff_seconds": 0,
            "parameters": {"fail_times": 2},
        }
    )
    run = start_and_drain(auto, [{}])
    assert run.state == RunState.COMPLETED
    attempts = list(
        RunItem.objects.filter(run=run)
        .order_by("seq")
        .values_list("attempt", "outcome")
    )
    assert attempts == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert (
        len(
            set(
                RunItem.objects.filter(run=run).values_list(
                    "idempotency_key", flat=True
                )
            )
        )
        == 1
    )


def test_application_error_past_max_attempts_fails(automation):
    auto = automation(
        {
            "action": "test.flaky",
            "max_attempts": 2,
            "retry_backoff_seconds": 0,
            "parameters": {"fail_times": 5},
        }
    )
    run = start_and_drain(auto, [{}])
    assert run.state == RunState.UNRESOLVED
    item = WorkItem.objects.get(run=run)
    assert (item.state, item.failure_type, item.attempts) == (
        "failed",
        "application",
        2,
    )
    assert "ConnectionError: upstream unavailable" in item.failure_message


def test_backoff_leaves_item_pending_until_due(automation):
    auto = automation(
        {
            "action": "test.flaky",
            "max_attempts": 2,
            "retry_backoff_seconds": 3600,
            "parameters": {"fail_times": 1},
        }
    )
    run = start_and_drain(auto, [{}])
    item = WorkItem.objects.get(run=run)
    assert run.state == RunState.RUNNING and item.state == WorkItemState.PENDING
    assert item.available_at > timezone.now()
    WorkItem.objects.filter(pk=item.pk).update(available_at=timezone.now())
    housekeeping()  # finds the due item with no step run and starts one
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.COMPLETED


def test_unknown_action_fails_the_run(automation):
    auto = automation("builtin.echo", publish=False)
    version = auto.latest_version()
    Step.objects.create(version=version, order=2, name="gone", action="removed.action")
    run = start_and_drain(auto, [{}, {}])
    assert run.state == RunState.FAILED
    assert "no action is registered under 'removed.action'" in run.error
    assert set(
        WorkItem.objects.filter(run=run, step__name="gone").values_list(
            "state", flat=True
        )
    ) == {"failed"}


def test_run_timeout(automation):
    auto = automation("builtin.echo", "builtin.echo", timeout=60)
    run = run_start(automation=auto, inputs=[{}, {}])
    Run.objects.filter(pk=run.pk).update(
        deadline_at=timezone.now() - timezone.timedelta(seconds=1)
    )
    run.refresh_from_db()
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.TIMED_OUT
    failed = WorkItem.objects.filter(run=run, state=WorkItemState.FAILED)
    assert failed.count() == 2 and set(
        failed.values_list("failure_message", flat=True)
    ) == {"timed out"}


def test_housekeeping_times_out_a_run_nobody_is_working_on(automation):
    auto = automation(
        {"action": "test.flaky", "max_attempts": 2, "retry_backoff_seconds": 3600},
        timeout=60,
    )
    run = start_and_drain(auto, [{}])
    assert run.state == RunState.RUNNING
    Run.objects.filter(pk=run.pk).update(
        deadline_at=timezone.now() - timezone.timedelta(seconds=1)
    )
    assert housekeeping()["timed_out"] == 1
    run.refresh_from_db()
    assert run.state == RunState.TIMED_OUT


# -- approvals -------------------------------------------------------------------------


@pytest.fixture
def approval_run(automation, user):
    auto = automation(
        {
            "action": "builtin.request_approval",
            "parameters": {"approvers": ["bob"], "deadline_seconds": 3600},
        },
        "test.count",
    )
    return start_and_drain(auto, [{"amount": 5}], actor=user)


def test_approval_parks_the_run_and_approve_resumes_it(approval_run, other_user):
    assert approval_run.state == RunState.AWAITING_INPUT
    item = WorkItem.objects.get(run=approval_run)
    assert item.state == WorkItemState.AWAITING_INPUT and item.approvers == ["bob"]
    assert outcomes(approval_run) == [RunItemOutcome.AWAITING_APPROVAL]
    work_item_decide(
        approval_run,
        actor=other_user,
        work_item_id=item.pk,
        decision="approve",
        data={"ok": 1},
    )
    run_until_idle(approval_run)
    approval_run.refresh_from_db()
    assert approval_run.state == RunState.COMPLETED
    out = WorkItem.objects.get(run=approval_run, step__name="step2")
    assert out.payload == {"amount": 5, "ok": 1}
    assert AuditEvent.objects.filter(
        run=approval_run, verb="work_item.approved", actor=other_user
    ).exists()


def test_reject_fails_the_item(approval_run, other_user):
    item = WorkItem.objects.get(run=approval_run)
    work_item_decide(
        approval_run,
        actor=other_user,
        work_item_id=item.pk,
        decision="reject",
        reason="duplicate",
    )
    approval_run.refresh_from_db()
    item.refresh_from_db()
    assert approval_run.state == RunState.UNRESOLVED
    assert (item.state, item.failure_code, item.failure_message) == (
        "failed",
        "rejected",
        "duplicate",
    )


def test_four_eyes_the_starter_may_not_approve(approval_run, user):
    item = WorkItem.objects.get(run=approval_run)
    with pytest.raises(NotAllowed, match="four eyes"):
        work_item_decide(
            approval_run, actor=user, work_item_id=item.pk, decision="approve"
        )
    item.refresh_from_db()
    assert item.state == WorkItemState.AWAITING_INPUT


def test_only_named_approvers_decide(approval_run, django_user_model):
    carol = django_user_model.objects.create_user("carol")
    item = WorkItem.objects.get(run=approval_run)
    with pytest.raises(NotAllowed, match="not among the approvers: bob"):
        work_item_decide(
            approval_run, actor=carol, work_item_id=item.pk, decision="approve"
        )


def test_deciding_twice_is_refused(approval_run, other_user):
    item = WorkItem.objects.get(run=approval_run)
    work_item_decide(
        approval_run,
        actor=other_user,
        work_item_id=item.pk,
        decision="reject",
        reason="no",
    )
    with pytest.raises(IllegalTransition, match="not awaiting input"):
        work_item_decide(
            approval_run, actor=other_user, work_item_id=item.pk, decision="approve"
        )
    with pytest.raises(InvalidRequest, match="approve' or 'reject"):
        work_item_decide(
            approval_run, actor=other_user, work_item_id=item.pk, decision="maybe"
        )


def test_approval_deadline_passes(approval_run):
    WorkItem.objects.filter(run=approval_run).update(
        approval_deadline=timezone.now() - timezone.timedelta(seconds=1)
    )
    assert housekeeping()["approvals_expired"] == 1
    approval_run.refresh_from_db()
    assert approval_run.state == RunState.UNRESOLVED
    assert WorkItem.objects.get(run=approval_run).failure_code == "approval_expired"


def test_requires_approval_step_asks_before_calling(automation, user, other_user):
    auto = automation({"action": "test.count", "requires_approval": True})
    run = start_and_drain(auto, [{}], actor=user)
    assert run.state == RunState.AWAITING_INPUT and not test_actions.calls
    item = WorkItem.objects.get(run=run)
    work_item_decide(run, actor=other_user, work_item_id=item.pk, decision="approve")
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.COMPLETED and sum(test_actions.calls.values()) == 1


# -- stop ------------------------------------------------------------------------------


@pytest.fixture
def immediate_stop_checks(monkeypatch):
    """The step run reads the run's state at every item (not at most every
    STOP_CHECK_SECONDS), so the stop test.stop_run presses is seen at the next item
    without waiting for the interval to pass."""
    monkeypatch.setattr("runs.engine.items.STOP_CHECK_SECONDS", 0)


def _stop_automation(automation, step_runs, pending_items, batch_size):
    return automation(
        {
            "action": "test.stop_run",
            "batch_size": batch_size,
            "parameters": {"step_runs": step_runs, "pending_items": pending_items},
        },
        "test.count",
    )


@pytest.mark.usefixtures("immediate_stop_checks")
def test_stop_complete_pending_failed(automation):
    auto = _stop_automation(automation, "complete", "failed", batch_size=1)
    run = start_and_drain(auto, [{"stop": True}, {}, {}])
    assert run.state == RunState.CANCELLED
    step1 = dict(
        WorkItem.objects.filter(run=run, step__name="step1").values_list(
            "payload__stop", "state"
        )
    )
    states = sorted(WorkItem.objects.filter(run=run).values_list("state", flat=True))
    # the in-flight item finished; its output and the other pending items were stopped
    assert step1[True] == WorkItemState.DONE
    assert states == ["done", "failed", "failed", "failed"]
    assert set(
        WorkItem.objects.filter(run=run, state="failed").values_list(
            "failure_code", flat=True
        )
    ) == {"stopped"}
    assert not test_actions.calls  # step 2 never ran
    assert AuditEvent.objects.filter(run=run, verb="work_item.stopped").count() == 3


@pytest.mark.usefixtures("immediate_stop_checks")
def test_stop_complete_pending_done(automation):
    auto = _stop_automation(automation, "complete", "done", batch_size=1)
    run = start_and_drain(auto, [{"stop": True}, {}, {}])
    assert run.state == RunState.CANCELLED
    assert set(WorkItem.objects.filter(run=run).values_list("state", flat=True)) == {
        "done"
    }


@pytest.mark.usefixtures("immediate_stop_checks")
def test_stop_terminate_fails_in_flight_items(automation):
    auto = _stop_automation(automation, "terminate", "failed", batch_size=10)
    run = start_and_drain(auto, [{"stop": True}, {}, {}])
    assert run.state == RunState.CANCELLED
    terminated = WorkItem.objects.filter(run=run, failure_code="terminated")
    assert terminated.count() == 2
    assert set(terminated.values_list("failure_message", flat=True)) == {"terminated"}
    assert RunItem.objects.filter(run=run, failure_cause="terminated").count() == 2


def test_stop_a_pending_run_cancels_it(automation, user):
    run = run_start(automation=automation("test.count"), inputs=[{}, {}])
    run_stop(run, actor=user, pending_items="failed")
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED and run.stop_requested_by == user
    assert StepRun.objects.get(run=run).state == StepRunState.CANCELLED
    assert run_until_idle(run) == 0 and not test_actions.calls


def test_stop_a_finished_run_is_refused(automation):
    run = start_and_drain(automation("builtin.echo"))
    with pytest.raises(
        IllegalTransition,
        match="only a pending, running or awaiting run can be stopped",
    ):
        run_stop(run)
    with pytest.raises(InvalidRequest, match="step_runs must be one of"):
        run_stop(run, step_runs="pause")


def test_terminating_too_long_becomes_failed(automation, settings):
    auto = automation("test.count")
    run = run_start(automation=auto)
    run_until_idle(run)  # completes; now fake a stuck termination on another run
    run2 = run_start(automation=auto)
    StepRunner(
        StepRun.objects.get(run=run2).pk
    )  # not executed: the step run stays queued
    Run.objects.filter(pk=run2.pk).update(state=RunState.RUNNING)
    StepRun.objects.filter(run=run2).update(
        state=StepRunState.RUNNING,
        lease_token="00000000-0000-0000-0000-000000000001",
        lease_expires_at=timezone.now() + timezone.timedelta(hours=1),
    )
    run_stop(run2, step_runs="terminate")
    settings.RUNS_TERMINATING_TIMEOUT_SECONDS = 0
    Run.objects.filter(pk=run2.pk).update(
        stop_requested_at=timezone.now() - timezone.timedelta(seconds=5)
    )
    assert housekeeping()["terminating_failed"] == 1
    run2.refresh_from_db()
    assert run2.state == RunState.FAILED and "terminating" in run2.error


# -- retry, resolve, re-run ------------------------------------------------------------


def test_retry_reopens_an_unresolved_run_with_the_same_key(automation, user):
    auto = automation(
        {"action": "test.flaky", "max_attempts": 1, "parameters": {"fail_times": 1}}
    )
    run = start_and_drain(auto, [{}])
    assert run.state == RunState.UNRESOLVED
    assert run_retry(run, actor=user) == 1
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.COMPLETED and run.failed_items == 0
    keys = RunItem.objects.filter(run=run).values_list(
        "idempotency_key", "attempt", "outcome"
    )
    assert sorted(k[1:] for k in keys) == [(1, "failed"), (2, "succeeded")]
    assert len({k[0] for k in keys}) == 1
    verbs = list(AuditEvent.objects.filter(run=run).values_list("verb", flat=True))
    assert "work_item.retried" in verbs and "run.retried" in verbs


def test_retry_named_items_only_failed_ones(automation):
    auto = automation("test.business_fail")
    run = start_and_drain(auto, [{"bad": True}, {}])
    done = WorkItem.objects.get(run=run, state=WorkItemState.DONE)
    with pytest.raises(IllegalTransition, match=f"{done.pk} is done"):
        run_retry(run, work_item_ids=[done.pk])
    run.refresh_from_db()
    assert run.state == RunState.UNRESOLVED
    with pytest.raises(InvalidRequest, match="list of work item ids"):
        run_retry(run, work_item_ids="all")


def test_retry_with_nothing_failed_is_refused(automation):
    run = start_and_drain(automation("builtin.echo"))
    with pytest.raises(InvalidRequest, match="has no failed work items"):
        run_retry(run)


def test_retry_of_a_timed_out_run_reopens_it(automation):
    auto = automation("test.count", timeout=60)
    run = run_start(automation=auto, inputs=[{}])
    Run.objects.filter(pk=run.pk).update(
        deadline_at=timezone.now() - timezone.timedelta(seconds=1)
    )
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.TIMED_OUT
    run_retry(run)
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.COMPLETED


def test_resolve_needs_a_note_and_completes_the_run(automation, user):
    run = start_and_drain(automation("test.business_fail"), [{"bad": True}])
    with pytest.raises(InvalidRequest, match="a note is required"):
        run_resolve(run, actor=user, note="  ")
    assert run_resolve(run, actor=user, note="handled by phone") == 1
    run.refresh_from_db()
    item = WorkItem.objects.get(run=run)
    assert run.state == RunState.COMPLETED and run.failed_items == 0
    assert (item.state, item.note) == (WorkItemState.RESOLVED, "handled by phone")
    event = AuditEvent.objects.get(run=run, verb="work_item.resolved")
    assert (event.actor, event.reason) == (user, "handled by phone")


def test_rerun_on_original_or_latest_version(automation, user):
    from automations.definitions import automation_export, automation_import

    auto = automation("builtin.echo")
    run = start_and_drain(auto, [{"x": 1}])
    definition = automation_export(auto)
    definition["steps"].append({"name": "extra", "action": "builtin.echo"})
    automation_import(definition)  # v2, published
    same = run_rerun(run, actor=user, version="original")
    latest = run_rerun(run, actor=user, version="latest")
    assert (same.version.number, latest.version.number) == (1, 2)
    assert same.rerun_of == run and same.inputs == [{"x": 1}] and same.run_by == user
    run_until_idle()
    assert Run.objects.get(pk=latest.pk).total_items == 2  # v2 has two steps
    with pytest.raises(InvalidRequest):
        run_rerun(run, version="newest")


def test_triggers_use_published_versions_and_drafts_run_only_by_hand(automation):
    draft_only = automation("builtin.echo", publish=False)
    with pytest.raises(NotRunnable, match="has no published version"):
        run_start(automation=draft_only, trigger_kind="api")
    run = run_start(automation=draft_only)  # manual takes the draft
    assert not run.version.is_published
    with pytest.raises(NotRunnable, match="drafts run only manually"):
        run_start(
            automation=draft_only,
            trigger_kind="schedule",
            version=draft_only.latest_version(),
        )


def test_bad_inputs_are_refused_and_nothing_is_written(automation):
    auto = automation("builtin.echo")
    from runs.services import InvalidInputs

    for bad, message in (
        ([1, 2], r"inputs\[0\] must be a JSON object"),
        ("text", "must be a list"),
    ):
        with pytest.raises(InvalidInputs, match=message):
            run_start(automation=auto, inputs=bad)
    assert not Run.objects.exists() and not WorkItem.objects.exists()


# -- streaming, concurrency, leases, idempotency ---------------------------------------


def test_next_step_starts_as_soon_as_it_has_items(automation):
    auto = automation({"action": "test.saw_next_step", "batch_size": 1}, "builtin.echo")
    run = start_and_drain(auto, [{}, {}, {}])
    seen = list(
        WorkItem.objects.filter(run=run, step__name="step2")
        .order_by("id")
        .values_list("payload__next_step_started", flat=True)
    )
    assert seen == [False, True, True]


def test_slow_actions_commit_what_they_did_every_commit_interval(
    automation, settings, monkeypatch
):
    """A batch of slow items is written in parts, at least every RUNS_COMMIT_SECONDS,
    by one step run: progress and outputs show while the rest is still claimed.
    The engine's item clock is the test's: each item takes 0.04 s of it."""
    settings.RUNS_COMMIT_SECONDS = 0.1
    monkeypatch.setattr(
        "runs.engine.items.time",
        types.SimpleNamespace(monotonic=lambda: test_actions.clock["now"]),
    )
    auto = automation(
        {"action": "test.tick", "parameters": {"seconds": 0.04}, "batch_size": 8},
        "builtin.echo",
    )
    run = start_and_drain(auto, [{"n": n} for n in range(8)])
    assert run.state == RunState.COMPLETED and run.total_items == 16
    first = RunItem.objects.filter(run=run, step__name="step1")
    assert first.count() == 8  # each item once
    assert StepRun.objects.filter(run=run, step__name="step1").count() == 1
    # 0.04 s per item against 0.1 s per commit: parts of 3, 3 and 2 items
    parts = sorted(
        first.values("finished_at").annotate(n=Count("id")).values_list("n", flat=True)
    )
    assert parts == [2, 3, 3]


def test_step_runs_up_to_concurrency(automation):
    auto = automation({"action": "builtin.echo", "batch_size": 2, "concurrency": 3})
    run = run_start(automation=auto, inputs=[{}] * 10)
    assert StepRun.objects.filter(run=run).count() == 3
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.COMPLETED


def test_dead_worker_items_come_back_after_lease_expiry(automation):
    auto = automation(
        {"action": "test.die_first", "max_attempts": 2, "retry_backoff_seconds": 0}
    )
    run = run_start(automation=auto, inputs=[{}, {}])
    with pytest.raises(test_actions.WorkerDied):
        run_until_idle(run)
    assert (
        WorkItem.objects.filter(run=run, state=WorkItemState.IN_PROGRESS).count() == 2
    )
    assert leases_reap() == 0  # leases still valid: nothing taken away
    expire_leases(run)
    assert housekeeping()["leases"] == 2
    assert StepRun.objects.filter(run=run, state=StepRunState.FAILED).exists()
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.COMPLETED
    assert outcomes(run) == ["failed", "failed", "succeeded", "succeeded"]
    assert set(
        RunItem.objects.filter(run=run, outcome="failed").values_list(
            "failure_cause", flat=True
        )
    ) == {"lease expired (worker lost)"}


def test_dead_worker_on_last_attempt_fails_the_item(automation):
    auto = automation({"action": "test.die_first", "max_attempts": 1})
    run = run_start(automation=auto, inputs=[{}])
    with pytest.raises(test_actions.WorkerDied):
        run_until_idle(run)
    expire_leases(run)
    housekeeping()
    run.refresh_from_db()
    assert run.state == RunState.UNRESOLVED
    assert WorkItem.objects.get(run=run).failure_code == "lease_expired"


def test_crash_between_action_and_commit_replays_instead_of_calling_again(
    automation, monkeypatch
):
    auto = automation(
        {"action": "test.count_journal", "max_attempts": 2, "retry_backoff_seconds": 0}
    )
    run = run_start(automation=auto, inputs=[{"n": 1}])
    original = StepRunner._commit

    def crash(self, results, **kwargs):
        raise test_actions.WorkerDied()

    monkeypatch.setattr(StepRunner, "_commit", crash)
    with pytest.raises(test_actions.WorkerDied):
        run_until_idle(run)
    monkeypatch.setattr(StepRunner, "_commit", original)
    assert sum(test_actions.calls.values()) == 1
    expire_leases(run)
    housekeeping()
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.COMPLETED
    assert sum(test_actions.calls.values()) == 1  # the action ran once
    assert outcomes(run) == ["failed", "idempotent_replay"]
    replay = RunItem.objects.get(run=run, outcome="idempotent_replay")
    assert replay.result_ref.startswith("ref-") and replay.attempt == 2


def test_stale_worker_writes_change_nothing(automation):
    run = run_start(automation=automation("test.count"), inputs=[{}])
    runner = running_runner(run, lease_seconds=5)
    claimed = runner._claim()
    results = runner._process(claimed)
    # meanwhile the lease was judged expired and the item handed back
    WorkItem.objects.filter(run=run).update(
        lease_expires_at=timezone.now() - timezone.timedelta(seconds=1)
    )
    StepRun.objects.filter(run=run).update(
        lease_expires_at=timezone.now() - timezone.timedelta(seconds=1)
    )
    leases_reap()
    with pytest.raises(LeaseLost):
        runner._commit(results)
    assert not RunItem.objects.filter(run=run, outcome="succeeded").exists()
    # max_attempts 1: the reaper failed it; the stale commit did not make it done
    assert WorkItem.objects.get(run=run).failure_code == "lease_expired"


def test_a_commit_counts_its_items_and_extends_the_step_run_lease(automation):
    run = run_start(automation=automation("test.count"), inputs=[{}, {}])
    runner = running_runner(run, lease_seconds=5)
    before = StepRun.objects.get(pk=runner.step_run.pk).lease_expires_at
    runner._commit(runner._process(runner._claim()))
    step_run = StepRun.objects.get(pk=runner.step_run.pk)
    assert step_run.items_processed == 2
    assert step_run.lease_expires_at > before + timezone.timedelta(seconds=20)


def test_a_commit_by_a_step_run_that_lost_its_lease_writes_nothing(automation):
    import uuid

    run = run_start(automation=automation("test.count"), inputs=[{}])
    runner = running_runner(run, lease_seconds=5)
    results = runner._process(runner._claim())
    # the step run was taken over (its items still carry this runner's token)
    StepRun.objects.filter(pk=runner.step_run.pk).update(lease_token=uuid.uuid4())
    with pytest.raises(LeaseLost, match="lost its lease"):
        runner._commit(results)
    assert not RunItem.objects.filter(run=run).exists()
    assert WorkItem.objects.get(run=run).state == WorkItemState.IN_PROGRESS
    assert StepRun.objects.get(pk=runner.step_run.pk).items_processed == 0


def test_a_lost_lease_undoes_the_outputs_and_the_next_claim_of_a_commit(automation):
    """The whole commit rolls back: the outputs written for the next step (on
    PostgreSQL before the run's lock), the run items, the settle and the claim of
    the next batch that the commit makes in the same statement."""
    import uuid

    from runs.machines import run_move

    run = run_start(
        automation=automation(
            {"action": "test.count", "batch_size": 1}, "builtin.echo"
        ),
        inputs=[{"n": 1}, {"n": 2}],
    )
    # running, so that the commit claims the next batch
    run_move(run, RunState.RUNNING, actor_label="engine", verb="run.started")
    runner = running_runner(run, lease_seconds=5)
    results = runner._process(runner._claim())
    StepRun.objects.filter(pk=runner.step_run.pk).update(lease_token=uuid.uuid4())
    with pytest.raises(LeaseLost, match="lost its lease"):
        runner._commit(results, claim_next=True)
    first_step = runner.step
    assert not WorkItem.objects.filter(run=run).exclude(step=first_step).exists()
    assert not RunItem.objects.filter(run=run).exists()
    assert sorted(WorkItem.objects.filter(run=run).values_list("state", flat=True)) == [
        WorkItemState.IN_PROGRESS,
        WorkItemState.PENDING,
    ]
    run.refresh_from_db()
    assert (run.ledger_seq, run.total_items) == (2, 2)  # run.created, run.started


def test_a_step_run_delivered_twice_runs_once(automation):
    from runs.engine import step_run_execute

    run = run_start(automation=automation("test.count"), inputs=[{}])
    step_run = StepRun.objects.get(run=run)
    assert step_run_execute(step_run.pk) == "finished"
    assert step_run_execute(step_run.pk) == f"step run {step_run.pk} is finished"
    assert sum(test_actions.calls.values()) == 1


def test_schedule_fires_one_run_per_fire_time(automation):
    from runs.tasks import schedule_fire

    auto = automation(
        "builtin.echo", triggers=[{"kind": "schedule", "cron": "* * * * *"}]
    )
    trigger = auto.triggers.get()
    first = schedule_fire(trigger.pk)
    second = schedule_fire(trigger.pk)
    assert first.startswith("run ") and "already fired" in second
    run = Run.objects.get()
    assert (
        run.trigger == trigger
        and run.trigger_kind == "schedule"
        and run.fired_at.second == 0
    )


def test_housekeeping_sends_a_lost_step_run_task_again(
    automation, django_capture_on_commit_callbacks, monkeypatch
):
    """The Redis broker loses tasks when a worker dies: a step run still queued a
    lease after it was sent is sent again (a duplicate finds it taken)."""
    import django_q.tasks

    sent = []
    monkeypatch.setattr(
        django_q.tasks, "async_task", lambda func, *a, **k: sent.append((func, a))
    )
    run = run_start(automation=automation("test.count"))
    step_run = StepRun.objects.get(run=run)
    sent.clear()  # the ORM broker's task row is written with the run
    assert housekeeping()["requeued"] == 0
    StepRun.objects.filter(pk=step_run.pk).update(
        queued_at=timezone.now() - timezone.timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert housekeeping()["requeued"] == 1
    assert sent == [("runs.tasks.step_run_execute", (step_run.pk,))]
    step_run.refresh_from_db()
    assert step_run.queued_at > timezone.now() - timezone.timedelta(minutes=1)
