"""A step run's runner taken by the test itself, between the engine's phases:
its step run moved to running with the runner's lease, as `StepRunner.work` does
before its first claim."""

from django.utils import timezone

from automations.actions import get_action
from runs.engine import StepRunner
from runs.machines import step_run_move
from runs.models import StepRun
from runs.states import StepRunState


def running_runner(run, *, action: str = "test.count", lease_seconds: int = 30):
    """The runner of `run`'s one step run, holding its lease, its action `action`."""
    runner = StepRunner(StepRun.objects.get(run=run).pk)
    step_run_move(
        runner.step_run,
        StepRunState.RUNNING,
        updates={
            "lease_token": runner.token,
            "lease_expires_at": timezone.now()
            + timezone.timedelta(seconds=lease_seconds),
        },
    )
    runner.spec = get_action(action)
    return runner
