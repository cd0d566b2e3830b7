"""A real Robocorp robot (robocorp-tasks + robocorp-workitems from PyPI) as a step,
against a live server: inputs, outputs with files, BUSINESS and APPLICATION
failures, the ledger."""

import pytest
from django.core.management import call_command

from runs.engine import run_until_idle
from runs.ledger_verify import verify_chain
from runs.models import RunItem, StepRun, WorkItem, WorkItemFile
from runs.services import run_start
from runs.states import (
    FailureType,
    RunItemOutcome,
    RunState,
    StepRunState,
    WorkItemState,
)

from .conftest import EXAMPLE, robocorp_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def robot_step(register_robot, tmp_path):
    return {
        "name": "review",
        "action": "builtin.robot",
        "max_attempts": 2,
        "retry_backoff_seconds": 0,
        "parameters": register_robot(
            "loan-review",
            command=robocorp_command(),
            cwd=str(EXAMPLE),
            env={"FLAKY_MARKER_DIR": str(tmp_path)},
            grace_seconds=5,
        ),
    }


APPLICATIONS = [
    {"subject": "ann", "applicant": "ann", "amount": 1000, "income": 5000},
    {"subject": "bob", "applicant": "bob", "amount": None, "income": 3000},
    {"subject": "flaky", "applicant": "flaky", "amount": 100, "income": 1000},
    {"subject": "cy", "applicant": "cy", "amount": 9000, "income": 1000},
]


def test_example_robot_runs_as_a_step(
    robot_server, automation, tmp_path, register_robot
):
    auto = automation(
        robot_step(register_robot, tmp_path), {"name": "file", "action": "builtin.echo"}
    )
    run = run_start(automation=auto, inputs=APPLICATIONS)
    run_until_idle(run)
    run.refresh_from_db()

    review = {
        w.subject: w for w in WorkItem.objects.filter(run=run, step__name="review")
    }
    assert {s: w.state for s, w in review.items()} == {
        "ann": WorkItemState.DONE,
        "bob": WorkItemState.FAILED,
        "flaky": WorkItemState.DONE,
        "cy": WorkItemState.DONE,
    }
    bob = review["bob"]
    assert (bob.failure_type, bob.failure_code, bob.attempts) == (
        FailureType.BUSINESS,
        "MISSING_AMOUNT",
        1,
    )
    assert "no amount requested" in bob.failure_message
    # the APPLICATION failure was retried: attempt 1 failed, attempt 2 succeeded
    flaky = RunItem.objects.filter(work_item=review["flaky"]).order_by("seq")
    assert [(r.attempt, r.outcome, r.failure_type) for r in flaky] == [
        (1, RunItemOutcome.FAILED, FailureType.APPLICATION),
        (2, RunItemOutcome.SUCCEEDED, ""),
    ]
    assert "core banking did not answer" in flaky[0].failure_cause
    assert review["flaky"].attempts == 2

    outputs = WorkItem.objects.filter(run=run, step__name="file").order_by("id")
    assert [(o.parent.subject, o.payload["decision"]) for o in outputs] == [
        ("ann", "approved"),
        ("flaky", "approved"),
        ("cy", "referred"),
    ]
    assert all(o.state == WorkItemState.DONE for o in outputs)  # the echo step ran
    letters = WorkItemFile.objects.filter(work_item__in=outputs).order_by("work_item")
    assert len(letters) == 3
    first = letters[0]
    assert first.name == f"decision-{review['ann'].pk}.txt"
    assert (
        first.file.read().decode()
        == "Dear ann,\nyour application for 1000.00 is approved.\n"
    )

    assert run.state == RunState.UNRESOLVED  # bob's business failure waits for people
    # output_items: the run's outputs, its last step's (the echo step's 3), kept
    assert (run.total_items, run.output_items, run.failed_items) == (7, 3, 1)
    assert run.outputs.count() == 3
    # robot: 5 releases (ann, bob, flaky twice, cy); echo: 3 items
    assert run.actions_invoked == 8
    review_items = RunItem.objects.filter(run=run, step__name="review")
    assert review_items.count() == 5
    assert {
        r.idempotency_key for r in review_items.filter(work_item=review["ann"])
    } == {f"{run.pk}:{review['ann'].pk}:builtin.robot"}
    step_run = StepRun.objects.get(run=run, step__name="review")
    assert step_run.state == StepRunState.FINISHED and step_run.exit_code == 0
    assert "review_applications" in step_run.log and step_run.items_processed == 5
    assert not WorkItem.objects.filter(
        run=run, state=WorkItemState.IN_PROGRESS
    ).exists()
    assert verify_chain(run) is None
    call_command("verify_audit")


def test_robot_that_exits_non_zero_fails_its_item_as_application_error(
    robot_server, automation, tmp_path, register_robot
):
    script = tmp_path / "crash.py"
    script.write_text("import sys\nprint('about to crash')\nsys.exit(3)\n")
    auto = automation(
        {
            "name": "review",
            "action": "builtin.robot",
            "max_attempts": 2,
            "retry_backoff_seconds": 0,
            "parameters": register_robot(command=["{python}", str(script)]),
        }
    )
    run = run_start(automation=auto, inputs=[{"subject": "ann"}])
    run_until_idle(run)
    run.refresh_from_db()
    item = WorkItem.objects.get(run=run)
    # retried once by a second step run (a second robot), then failed for good
    assert (item.state, item.attempts, item.failure_code) == (
        WorkItemState.FAILED,
        2,
        "robot_exit",
    )
    assert item.failure_type == FailureType.APPLICATION
    step_runs = StepRun.objects.filter(run=run).order_by("id")
    assert [(s.state, s.exit_code) for s in step_runs] == [
        (StepRunState.FAILED, 3),
        (StepRunState.FAILED, 3),
    ]
    assert "about to crash" in step_runs[0].log
    assert "exited with code 3" in step_runs[0].error
    assert run.state == RunState.UNRESOLVED and run.failed_items == 1
    assert verify_chain(run) is None


def test_robot_log_and_exit_code_show_in_admin(
    robot_server, automation, tmp_path, admin_client, register_robot
):
    script = tmp_path / "noisy.py"
    script.write_text(
        "import sys\nprint('x' * 5000)\nprint('robot says <bye>')\nsys.exit(0)\n"
    )
    auto = automation(
        {
            "name": "review",
            "action": "builtin.robot",
            "parameters": register_robot(command=["{python}", str(script)]),
        }
    )
    run = run_start(automation=auto, inputs=[{"subject": "ann"}])
    from django.test import override_settings

    with override_settings(RUNS_ROBOT_LOG_BYTES=1000):
        run_until_idle(run)
    step_run = StepRun.objects.get(run=run)
    # the robot never released its item: it fails, retried per max attempts (1)
    assert WorkItem.objects.get(run=run).failure_code == "robot_exit"
    assert step_run.exit_code == 0 and len(step_run.log) <= 1000
    assert (
        step_run.log.rstrip().endswith("robot says <bye>")
        and "characters cut" in step_run.log
    )
    page = admin_client.get(f"/admin/runs/steprun/{step_run.pk}/change/")
    assert page.status_code == 200
    assert b"robot says &lt;bye&gt;" in page.content
    listing = admin_client.get("/admin/runs/steprun/")
    assert listing.status_code == 200
