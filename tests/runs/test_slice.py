"""A step run gives its worker to another that waited a slice in the queue
(`RUNS_STEP_RUN_SLICE_SECONDS`), and continues in a fresh task queued behind it:
with two workers a run's third step no longer waits for its first to finish, and
runs share the workers too."""

import pytest
from django.utils import timezone

from runs.engine import StepRunner, run_until_idle
from runs.models import Run, RunItem, StepRun, WorkItem
from runs.services import run_start
from runs.states import RunState, StepRunState, WorkItemState


@pytest.fixture
def sliced(settings):
    settings.RUNS_STEP_RUN_SLICE_SECONDS = 0.2
    return settings


def _slow_run(automation, items=60):
    """A run of one step whose batches take 100 ms or more (five items a batch,
    each sleeping 20 ms)."""
    auto = automation(
        {"action": "test.slow", "batch_size": 5, "parameters": {"seconds": 0.02}}
    )
    run = run_start(automation=auto, inputs=[{"n": i} for i in range(items)])
    return run, StepRun.objects.get(run=run)


def _waiting(automation, seconds: float) -> StepRun:
    """Another run's step run, queued `seconds` ago, no worker has taken it."""
    other = run_start(automation=automation("builtin.echo"), inputs=[{}])
    waiting = StepRun.objects.get(run=other)
    StepRun.objects.filter(pk=waiting.pk).update(
        queued_at=timezone.now() - timezone.timedelta(seconds=seconds)
    )
    return waiting


def _done(run) -> int:
    return WorkItem.objects.filter(run=run, state=WorkItemState.DONE).count()


def test_a_step_run_hands_its_worker_to_one_waiting_a_slice(automation, sliced):
    run, step_run = _slow_run(automation)
    _waiting(automation, seconds=5)
    assert StepRunner(step_run.pk).execute() == "handed over"
    step_run.refresh_from_db()
    # back in the queue, no lease, its items not yet done are pending again
    assert step_run.state == StepRunState.QUEUED
    assert step_run.lease_token is None
    assert 0 < _done(run) < 60
    assert not WorkItem.objects.filter(
        run=run, state=WorkItemState.IN_PROGRESS
    ).exists()
    # the fresh task takes it on from there
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.COMPLETED
    assert _done(run) == 60
    # each item's action ran once: one run item per work item
    assert RunItem.objects.filter(run=run).count() == 60
    assert RunItem.objects.filter(run=run).values("work_item").distinct().count() == 60


def test_with_nothing_waiting_a_step_run_keeps_its_worker(automation, sliced):
    run, step_run = _slow_run(automation)
    assert StepRunner(step_run.pk).execute() == "finished"
    assert _done(run) == 60


def test_one_queued_only_a_moment_ago_is_not_yet_owed_the_worker(automation, sliced):
    sliced.RUNS_STEP_RUN_SLICE_SECONDS = 30
    _run, step_run = _slow_run(automation, items=10)
    _waiting(automation, seconds=5)
    assert StepRunner(step_run.pk).execute() == "finished"


def test_a_step_run_queued_longer_than_a_lease_is_housekeepings(automation, sliced):
    # its task was lost (housekeeping queues it again): no worker is coming
    # for it, so nobody hands over to it
    _run, step_run = _slow_run(automation)
    _waiting(automation, seconds=sliced.RUNS_LEASE_SECONDS + 5)
    assert StepRunner(step_run.pk).execute() == "finished"


def test_slices_off(automation, sliced):
    sliced.RUNS_STEP_RUN_SLICE_SECONDS = 0
    run, step_run = _slow_run(automation)
    _waiting(automation, seconds=5)
    assert StepRunner(step_run.pk).execute() == "finished"
    assert Run.objects.get(pk=run.pk).state == RunState.COMPLETED
