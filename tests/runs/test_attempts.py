"""One rule for "an attempt ended", whichever path ends it: a Python action's
application error, a robot's APPLICATION release, a robot exiting with its item, a
lease that ran out. The same attempt gives the same retry time on every path, and
after the last attempt every path fails the item the same way."""

import uuid

import pytest
from django.utils import timezone

from runs.engine import run_until_idle
from runs.engine.progress import leases_reap
from runs.machines import run_move, step_run_move, work_items_claim
from runs.machines.attempt import retry_at, retry_backoff
from runs.models import Run, RunItem, StepRun, WorkItem
from runs.robots.runner import RobotRunner
from runs.robots.services import RobotSession, work_item_release
from runs.services import run_start
from runs.states import FailureType, RunItemOutcome, RunState, StepRunState

NOW = timezone.now().replace(microsecond=0)
BACKOFF = 10


@pytest.fixture(autouse=True)
def _true_robot(settings):
    """The robot steps name a robot the deployer registered (RUNS_ROBOTS)."""
    settings.RUNS_ROBOTS = {"true": {"command": ["true"]}}


@pytest.fixture
def frozen(monkeypatch):
    """Every path reads the same clock (no assertion depends on elapsed time)."""
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


def _held(automation, action, max_attempts, attempt=1, **parameters):
    """A run whose one item is in its first attempt, leased by a running step run."""
    auto = automation(
        {
            "action": action,
            "max_attempts": max_attempts,
            "retry_backoff_seconds": BACKOFF,
            "parameters": parameters,
        }
    )
    run = run_start(automation=auto, inputs=[{"subject": "s1"}])
    run_move(run, RunState.RUNNING, actor_label="engine", verb="run.started")
    step_run = StepRun.objects.select_related("run", "step").get(run=run)
    WorkItem.objects.filter(run=run).update(attempts=attempt - 1)
    token = uuid.uuid4()
    expires = NOW + timezone.timedelta(minutes=5)
    step_run_move(
        step_run,
        StepRunState.RUNNING,
        updates={"lease_token": token, "lease_expires_at": expires},
    )
    work_items_claim(
        run,
        step_run.step,
        limit=1,
        token=token,
        owner_id=step_run.pk,
        expires=expires,
        now=NOW,
    )
    return run, step_run


def _python(automation, max_attempts, attempt=1):
    auto = automation(
        {
            "action": "test.flaky",
            "max_attempts": max_attempts,
            "retry_backoff_seconds": BACKOFF,
            "parameters": {"fail_times": 5},
        }
    )
    run = run_start(automation=auto, inputs=[{"subject": "s1"}])
    WorkItem.objects.filter(run=run).update(attempts=attempt - 1)
    run_until_idle(run)
    return run


def _lost_lease(automation, max_attempts, attempt=1):
    run, _ = _held(automation, "builtin.echo", max_attempts, attempt)
    WorkItem.objects.filter(run=run).update(
        lease_expires_at=NOW - timezone.timedelta(1)
    )
    StepRun.objects.filter(run=run).update(lease_expires_at=NOW - timezone.timedelta(1))
    assert leases_reap(NOW) == 1
    return run


def _robot_release(automation, max_attempts, attempt=1):
    run, step_run = _held(
        automation, "builtin.robot", max_attempts, attempt, robot="true"
    )
    item = WorkItem.objects.get(run=run)
    work_item_release(
        RobotSession(StepRun.objects.get(pk=step_run.pk)),
        {
            "workItemId": str(item.pk),
            "state": "FAILED",
            "exception": {"type": "APPLICATION", "code": "DOWN", "message": "down"},
        },
    )
    return run


def _robot_exit(automation, max_attempts, attempt=1):
    run, step_run = _held(
        automation, "builtin.robot", max_attempts, attempt, robot="true"
    )
    runner = RobotRunner(step_run.pk)
    runner.token = step_run.lease_token
    runner._settle_held(exit_code=3)
    return run


PATHS = [_python, _lost_lease, _robot_release, _robot_exit]


def test_the_retry_rule_doubles_the_backoff_until_the_last_attempt(automation):
    step = (
        automation(
            {"action": "builtin.echo", "max_attempts": 3, "retry_backoff_seconds": 5}
        )
        .versions.get()
        .steps.get()
    )
    assert [retry_backoff(step, n) for n in (1, 2, 3)] == [5, 10, None]
    assert retry_at(step, 2, NOW) == NOW + timezone.timedelta(seconds=10)
    assert retry_at(step, 3, NOW) is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("number", [1, 2])
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.__name__.strip("_"))
def test_a_failed_attempt_is_retried_after_the_steps_backoff(
    automation, frozen, path, number
):
    run = path(automation, max_attempts=3, attempt=number)
    item = WorkItem.objects.get(run=run, step__order=1)
    assert item.state == "pending" and item.attempts == number
    # the same attempt number gives the same retry time on every path: the
    # step's backoff, doubled per attempt (a lost lease waits it too)
    backoff = BACKOFF * 2 ** (number - 1)
    assert item.available_at == frozen + timezone.timedelta(seconds=backoff)
    (attempt,) = RunItem.objects.filter(run=run, work_item=item)
    assert (attempt.attempt, attempt.outcome, attempt.failure_type) == (
        number,
        RunItemOutcome.FAILED,
        FailureType.APPLICATION,
    )
    assert Run.objects.get(pk=run.pk).failed_items == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.__name__.strip("_"))
def test_after_the_last_attempt_every_path_fails_the_item_alike(
    automation, frozen, path
):
    run = path(automation, max_attempts=1)
    item = WorkItem.objects.get(run=run, step__order=1)
    assert (item.state, item.failure_type, item.lease_token) == (
        "failed",
        FailureType.APPLICATION,
        None,
    )
    assert item.failure_code and item.failure_message
    (attempt,) = RunItem.objects.filter(run=run, work_item=item)
    assert (attempt.outcome, attempt.failure_type, attempt.failure_cause) == (
        RunItemOutcome.FAILED,
        FailureType.APPLICATION,
        item.failure_message,
    )
    assert Run.objects.get(pk=run.pk).failed_items == 1
