"""Stopping a run while its robot works: terminate (SIGTERM, then SIGKILL after
the grace period) and complete (the current item finishes, then no more items)."""

import threading
import time

import pytest
from django.db import connection

from runs.engine import run_until_idle
from runs.ledger_verify import verify_chain
from runs.models import RunItem, StepRun, WorkItem
from runs.services import run_start, run_stop
from runs.states import RunItemOutcome, RunState, StepRunState, WorkItemState

from .conftest import ROBOTS, robocorp_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def robot_automation(automation, register_robot, task, started, grace=1):
    return automation(
        {
            "name": "robot",
            "action": "builtin.robot",
            "max_attempts": 3,
            "retry_backoff_seconds": 0,
            "parameters": register_robot(
                task,
                command=robocorp_command(task),
                cwd=str(ROBOTS),
                env={"STARTED_DIR": str(started)},
                grace_seconds=grace,
            ),
        },
        "builtin.echo",
    )


def stop_when_started(run, started, **stop):
    """In another thread: wait until the robot holds an item, then stop the run."""
    errors = []

    def target():
        try:
            deadline = time.monotonic() + 60
            while not any(started.iterdir()):
                if time.monotonic() > deadline:
                    raise TimeoutError("the robot never started an item")
                time.sleep(0.05)
            run_stop(run, **stop)
        except Exception as exc:  # noqa: BLE001 - surfaced by the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, errors


def pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("task", ["slow", "stubborn"])
def test_terminate_mid_robot(robot_server, automation, tmp_path, task, register_robot):
    started = tmp_path / "started"
    started.mkdir()
    auto = robot_automation(automation, register_robot, task, started, grace=1)
    run = run_start(automation=auto, inputs=[{"subject": "a"}, {"subject": "b"}])
    thread, errors = stop_when_started(run, started, step_runs="terminate")
    began = time.monotonic()
    run_until_idle(run)
    thread.join()
    assert not errors
    run.refresh_from_db()

    (in_flight,) = [int(p.name) for p in started.iterdir()]
    pid = int((started / str(in_flight)).read_text())
    assert not pid_alive(pid)  # SIGTERM (slow) or SIGKILL after grace (stubborn)
    item = WorkItem.objects.get(pk=in_flight)
    assert (item.state, item.failure_code, item.failure_message) == (
        WorkItemState.FAILED,
        "terminated",
        "terminated",
    )
    (record,) = RunItem.objects.filter(work_item=item)
    assert (record.outcome, record.failure_cause) == (
        RunItemOutcome.FAILED,
        "terminated",
    )
    other = WorkItem.objects.get(run=run, step__name="robot", subject="b")
    assert other.state == WorkItemState.FAILED and other.failure_code == "stopped"
    assert not WorkItem.objects.filter(
        run=run, state=WorkItemState.IN_PROGRESS
    ).exists()
    step_run = StepRun.objects.get(run=run)
    assert step_run.state == StepRunState.CANCELLED
    if task == "stubborn":
        assert step_run.exit_code == -9  # SIGKILL: it ignored SIGTERM
        assert time.monotonic() - began >= 1  # not before the grace period
    else:
        assert step_run.exit_code != 0
    assert run.state == RunState.CANCELLED
    assert verify_chain(run) is None


def test_complete_lets_the_robot_finish_its_item(
    robot_server, automation, tmp_path, register_robot
):
    started = tmp_path / "started"
    started.mkdir()
    auto = robot_automation(automation, register_robot, "careful", started)
    run = run_start(automation=auto, inputs=[{"subject": "a"}, {"subject": "b"}])
    thread, errors = stop_when_started(run, started, step_runs="complete")
    run_until_idle(run)
    thread.join()
    assert not errors
    run.refresh_from_db()
    states = dict(
        WorkItem.objects.filter(run=run, step__name="robot").values_list(
            "subject", "state"
        )
    )
    # the robot finished "a", then heard "no more items"; "b" never started
    assert states == {"a": WorkItemState.DONE, "b": WorkItemState.FAILED}
    assert [p.name for p in started.iterdir()] == [
        str(WorkItem.objects.get(run=run, subject="a", step__name="robot").pk)
    ]
    step_run = StepRun.objects.get(run=run, step__name="robot")
    assert (step_run.state, step_run.exit_code) == (StepRunState.FINISHED, 0)
    assert not WorkItem.objects.filter(
        run=run, state=WorkItemState.IN_PROGRESS
    ).exists()
    assert run.state == RunState.CANCELLED
    assert verify_chain(run) is None
