import sys
from pathlib import Path

import pytest

pytest.importorskip("robocorp.workitems")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "robots" / "example"
ROBOTS = Path(__file__).resolve().parent / "robots"


def robocorp_command(task="review_applications"):
    return ["{python}", "-m", "robocorp.tasks", "run", "tasks.py", "-t", task]


@pytest.fixture
def robot_server(live_server, settings):
    """The live server robots call back (their subprocess speaks HTTP to it)."""
    settings.RUNS_ROBOT_API_URL = live_server.url
    return live_server


@pytest.fixture
def register_robot(settings):
    """Register a robot as the deployer would (RUNS_ROBOTS); returns the step
    parameters that name it."""

    def register(name="robot", *, grace_seconds=None, **spec):
        settings.RUNS_ROBOTS = {**settings.RUNS_ROBOTS, name: spec}
        parameters = {"robot": name}
        if grace_seconds is not None:
            parameters["grace_seconds"] = grace_seconds
        return parameters

    return register


@pytest.fixture
def python():
    return sys.executable


@pytest.fixture
def held_step_run(automation, register_robot):
    """A robot step run in the state the runner leaves it while its robot works:
    running under a lease, its first item claimed. Returns (run, step_run, env)."""
    import uuid

    from django.utils import timezone

    from runs.machines import run_move, step_run_move, work_items_claim
    from runs.models import StepRun
    from runs.robots.runner import RobotRunner
    from runs.services import run_start
    from runs.states import RunState, StepRunState

    def make(inputs, *, steps=("builtin.echo",)):
        auto = automation(
            {
                "name": "robot",
                "action": "builtin.robot",
                "max_attempts": 2,
                "retry_backoff_seconds": 0,
                "parameters": register_robot("true", command=["true"]),
            },
            *steps,
        )
        run = run_start(automation=auto, inputs=inputs)
        run_move(run, RunState.RUNNING, actor_label="engine", verb="run.started")
        step_run = StepRun.objects.select_related("run", "step").get(run=run)
        token = uuid.uuid4()
        now = timezone.now()
        step_run_move(
            step_run,
            StepRunState.RUNNING,
            updates={
                "lease_token": token,
                "lease_expires_at": now + timezone.timedelta(minutes=5),
            },
        )
        (first,) = work_items_claim(
            run,
            step_run.step,
            limit=1,
            token=token,
            owner_id=step_run.pk,
            expires=now + timezone.timedelta(minutes=5),
            now=now,
        )
        runner = RobotRunner(step_run.pk)
        runner.token, runner.lease = token, 300
        return run, step_run, runner.environment(first["id"])

    return make
