"""Run admission: `max_concurrent_runs` holds further runs in pending, and they
start by priority, then age, as slots free (runs.engine.admission)."""

import pytest
from django.utils import timezone

from automations.definitions import DefinitionError, automation_export
from runs.engine import housekeeping, run_until_idle
from runs.engine.admission import queue_positions, runs_admit
from runs.models import AuditEvent, Run, StepRun
from runs.services import InvalidPriority, run_start, run_stop
from runs.states import RunState, StopPendingItems, StopStepRuns
from tests.factories import make_automation

pytestmark = pytest.mark.django_db


def _limited(limit, *steps, **extra):
    return make_automation(
        *(steps or ["builtin.echo"]), max_concurrent_runs=limit, **extra
    )


def _states(runs):
    return [Run.objects.get(pk=r.pk).state for r in runs]


def _positions(runs):
    fresh = list(
        Run.objects.select_related("automation").filter(pk__in=[r.pk for r in runs])
    )
    found = queue_positions(fresh)
    return [found.get(r.pk) for r in runs]


def test_runs_beyond_the_limit_wait_in_pending_without_step_runs():
    auto = _limited(2)
    runs = [run_start(automation=auto) for _ in range(4)]
    assert _states(runs) == ["running", "running", "pending", "pending"]
    assert [StepRun.objects.filter(run=r).count() for r in runs] == [1, 1, 0, 0]
    assert _positions(runs) == [None, None, 1, 2]
    assert Run.objects.get(pk=runs[2].pk).started_at is None


def test_a_run_that_ends_admits_the_next_in_its_own_transaction():
    auto = _limited(1)
    first, second, third = (run_start(automation=auto) for _ in range(3))
    run_until_idle(first)
    # no housekeeping ran: the end of the first started the second
    assert _states([first, second, third]) == ["completed", "running", "pending"]
    assert StepRun.objects.filter(run=second).count() == 1
    started = AuditEvent.objects.get(run=second, verb="run.started")
    assert started.after["admitted"] is True
    run_until_idle(second)
    run_until_idle(third)
    assert _states([first, second, third]) == ["completed"] * 3


def test_waiting_runs_start_by_priority_then_age():
    auto = _limited(1)
    holder = run_start(automation=auto)
    low = run_start(automation=auto, priority=-5)
    old = run_start(automation=auto)
    high_old = run_start(automation=auto, priority=10)
    high_new = run_start(automation=auto, priority=10)
    waiting = [low, old, high_old, high_new]
    assert _positions(waiting) == [4, 3, 1, 2]
    order = []
    run = holder
    for _ in waiting:
        run_until_idle(run)
        run = Run.objects.get(automation=auto, state=RunState.RUNNING)
        order.append(run.pk)
    assert order == [high_old.pk, high_new.pk, old.pk, low.pk]


def test_a_new_run_does_not_jump_the_queue_of_higher_priority():
    auto = _limited(1)
    holder = run_start(automation=auto)
    urgent = run_start(automation=auto, priority=50)
    late = run_start(automation=auto)
    run_until_idle(holder)
    assert _states([urgent, late]) == ["running", "pending"]


def test_a_stopped_waiting_run_leaves_the_queue_and_never_starts():
    auto = _limited(1)
    holder = run_start(automation=auto)
    stopped, after = run_start(automation=auto), run_start(automation=auto)
    assert _positions([stopped, after]) == [1, 2]
    run_stop(
        stopped,
        step_runs=StopStepRuns.COMPLETE,
        pending_items=StopPendingItems.FAILED,
    )
    assert _states([stopped]) == ["cancelled"]
    assert _positions([after]) == [1]
    run_until_idle(holder)
    run_until_idle(after)
    stopped.refresh_from_db()
    assert stopped.state == RunState.CANCELLED and stopped.started_at is None
    assert not StepRun.objects.filter(run=stopped).exists()
    assert not AuditEvent.objects.filter(run=stopped, verb="run.started").exists()
    assert _states([after]) == ["completed"]


def test_stopping_a_waiting_run_frees_no_slot():
    auto = _limited(1)
    holder = run_start(automation=auto)
    stopped, waiting = run_start(automation=auto), run_start(automation=auto)
    run_stop(stopped)
    assert _states([holder, stopped, waiting]) == ["running", "cancelled", "pending"]


def test_a_run_awaiting_input_keeps_its_slot():
    auto = _limited(1, {"action": "builtin.request_approval", "parameters": {}})
    holder = run_start(automation=auto)
    waiting = run_start(automation=auto)
    run_until_idle(holder)
    assert _states([holder, waiting]) == ["awaiting_input", "pending"]


def test_an_unresolved_run_frees_its_slot():
    auto = _limited(1, "test.business_fail")
    holder = run_start(automation=auto, inputs=[{"bad": True}])
    waiting = run_start(automation=auto)
    run_until_idle(holder)
    assert _states([holder, waiting]) == ["unresolved", "running"]


def test_a_run_that_fails_frees_its_slot():
    from runs.engine import run_fail

    auto = _limited(1)
    holder = run_start(automation=auto)
    waiting = run_start(automation=auto)
    run_fail(Run.objects.get(pk=holder.pk), "broken")
    assert _states([holder, waiting]) == ["failed", "running"]


def test_housekeeping_admits_when_the_limit_is_raised_or_removed():
    auto = _limited(1)
    runs = [run_start(automation=auto) for _ in range(4)]
    auto.max_concurrent_runs = 2
    auto.save()
    assert housekeeping()["admitted"] == 1
    assert _states(runs) == ["running", "running", "pending", "pending"]
    auto.max_concurrent_runs = None
    auto.save()
    assert housekeeping()["admitted"] == 2
    assert _states(runs) == ["running"] * 4
    assert housekeeping()["admitted"] == 0


def test_admission_when_full_starts_nothing():
    auto = _limited(1)
    holder, waiting = run_start(automation=auto), run_start(automation=auto)
    assert runs_admit(auto.pk) == []
    assert _states([holder, waiting]) == ["running", "pending"]


def test_unlimited_automations_start_as_before():
    auto = make_automation("builtin.echo")
    runs = [run_start(automation=auto) for _ in range(3)]
    # pending until a worker takes the first step run, as without admission
    assert _states(runs) == ["pending"] * 3
    assert all(StepRun.objects.filter(run=r).exists() for r in runs)
    assert _positions(runs) == [None] * 3


@pytest.mark.parametrize("bad", [101, -101, "1", 1.5, True])
def test_a_priority_out_of_bounds_is_refused_and_writes_nothing(bad):
    auto = _limited(1)
    with pytest.raises(InvalidPriority):
        run_start(automation=auto, priority=bad)
    assert not Run.objects.exists()


def test_the_priority_is_recorded_on_the_run_and_in_its_created_event():
    run = run_start(automation=_limited(3), priority=7)
    assert Run.objects.get(pk=run.pk).priority == 7
    assert AuditEvent.objects.get(run=run, verb="run.created").after["priority"] == 7


@pytest.mark.parametrize("bad", [0, -1, "2", 2.0, True, 10_001])
def test_the_definition_key_is_validated(bad):
    with pytest.raises(DefinitionError, match="max_concurrent_runs"):
        make_automation("builtin.echo", max_concurrent_runs=bad)


def test_the_definition_key_round_trips_and_a_change_is_no_new_version():
    auto = _limited(3, slug="limited")
    assert automation_export(auto)["max_concurrent_runs"] == 3
    again = make_automation("builtin.echo", slug="limited", max_concurrent_runs=5)
    assert again.max_concurrent_runs == 5
    assert again.versions.count() == 1
    removed = make_automation("builtin.echo", slug="limited")
    assert removed.max_concurrent_runs is None
    assert "max_concurrent_runs" not in automation_export(removed)


def test_a_rerun_keeps_the_priority_of_its_run():
    from runs.services import run_rerun

    auto = _limited(1)
    original = run_start(automation=auto, priority=4)
    run_until_idle(original)
    rerun = run_rerun(Run.objects.get(pk=original.pk), version="original")
    assert rerun.priority == 4


def test_a_waiting_run_times_out_only_from_when_it_started():
    auto = _limited(1, timeout=60)
    holder = run_start(automation=auto)
    waiting = run_start(automation=auto)
    # it waited far longer than its timeout
    Run.objects.filter(pk=waiting.pk).update(
        created_at=timezone.now() - timezone.timedelta(hours=2),
        deadline_at=timezone.now() - timezone.timedelta(hours=1),
    )
    assert housekeeping()["timed_out"] == 0
    run_until_idle(holder)
    started = Run.objects.get(pk=waiting.pk)
    assert started.state == RunState.RUNNING
    assert started.deadline_at == started.started_at + timezone.timedelta(seconds=60)
    run_until_idle(started)
    assert Run.objects.get(pk=waiting.pk).state == RunState.COMPLETED


def test_a_rerun_at_the_limit_waits_in_pending_like_a_new_run():
    from runs.services import run_rerun

    auto = _limited(1)
    original = run_start(automation=auto)
    run_until_idle(original)
    holder = run_start(automation=auto)
    rerun = run_rerun(Run.objects.get(pk=original.pk), version="original")
    assert _states([holder, rerun]) == ["running", "pending"]
    assert not StepRun.objects.filter(run=rerun).exists()
    assert _positions([rerun]) == [1]
    run_until_idle(holder)
    assert _states([rerun]) == ["running"]
    run_until_idle(rerun)
    assert _states([rerun]) == ["completed"]


def _unresolved_with_a_holder(limit=1):
    """An unresolved run (one failed item, one done) and a run holding the slot."""
    auto = _limited(limit, "test.business_fail")
    failed = run_start(automation=auto, inputs=[{"bad": True}, {"n": 1}])
    run_until_idle(failed)
    holder = run_start(automation=auto)
    assert _states([failed, holder]) == ["unresolved", "running"]
    return auto, Run.objects.get(pk=failed.pk), holder


def test_a_retry_at_the_limit_waits_in_pending_and_starts_when_a_slot_frees():
    from runs.models import WorkItem
    from runs.services import run_retry

    _auto, failed, holder = _unresolved_with_a_holder()
    assert run_retry(failed) == 1
    assert _states([failed]) == ["pending"]
    # the retried item waits: no step run for it until the slot frees
    assert not StepRun.objects.filter(run=failed, state="queued").exists()
    assert _positions([failed]) == [1]
    retried = AuditEvent.objects.get(run=failed, verb="run.retried")
    assert retried.after["state"] == "pending"
    run_until_idle(holder)
    assert _states([holder, failed]) == ["completed", "running"]
    admitted = AuditEvent.objects.filter(run=failed, verb="run.started").last()
    assert admitted.after["admitted"] is True and admitted.after["retried"] is True
    run_until_idle(failed)
    # the item failed again (the same bad input): a second attempt, once
    assert _states([failed]) == ["unresolved"]
    item = WorkItem.objects.get(run=failed, payload__bad=True)
    assert (item.state, item.attempts) == ("failed", 2)


def test_a_retry_with_a_free_slot_starts_at_once():
    from runs.services import run_retry

    _auto, failed, holder = _unresolved_with_a_holder(limit=2)
    run_retry(failed)
    assert _states([failed, holder]) == ["running", "running"]
    assert StepRun.objects.filter(run=failed, state="queued").count() == 1


def test_a_retry_waits_behind_runs_of_higher_priority():
    from runs.services import run_retry

    auto, failed, holder = _unresolved_with_a_holder()
    urgent = run_start(automation=auto, priority=10)
    run_retry(failed)
    assert _positions([urgent, failed]) == [1, 2]
    run_until_idle(holder)
    assert _states([urgent, failed]) == ["running", "pending"]


def test_a_stop_of_a_waiting_retried_run_settles_it_without_a_start():
    from runs.services import run_retry

    _auto, failed, holder = _unresolved_with_a_holder()
    run_retry(failed)
    run_stop(
        Run.objects.get(pk=failed.pk),
        step_runs=StopStepRuns.COMPLETE,
        pending_items=StopPendingItems.FAILED,
    )
    # its retried item fails "stopped"; nothing else failed in an action now
    assert _states([failed]) == ["cancelled"]
    assert _positions([failed]) == [None]
    run_until_idle(holder)
    assert _states([failed]) == ["cancelled"]
    # started once, at its first start, not again
    assert AuditEvent.objects.filter(run=failed, verb="run.started").count() == 1


def test_a_stop_of_a_waiting_run_retried_in_part_leaves_it_unresolved():
    from runs.models import WorkItem
    from runs.services import run_retry

    auto = _limited(1, "test.business_fail")
    failed = run_start(automation=auto, inputs=[{"bad": True}, {"bad": True}])
    run_until_idle(failed)
    holder = run_start(automation=auto)
    first = WorkItem.objects.filter(run=failed).order_by("id").first()
    run_retry(Run.objects.get(pk=failed.pk), work_item_ids=[first.pk])
    assert _states([failed]) == ["pending"]
    run_stop(Run.objects.get(pk=failed.pk))
    # the item not retried still failed in its action
    assert _states([failed, holder]) == ["unresolved", "running"]
