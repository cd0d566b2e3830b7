"""A robot registered by its robot.yaml (RUNS_ROBOTS `robot_yaml` + `task`) runs
as Control Room runs it: the producer -> consumer shape of Robocorp's
template-python-workitems as two robot steps, the producer reading the file the
run's input item carries (an e-mailed orders sheet)."""

import pytest
from django.core.files.base import ContentFile

from runs.engine import run_until_idle
from runs.ledger_verify import verify_chain
from runs.models import StepRun, WorkItem, WorkItemFile
from runs.services import run_start
from runs.states import FailureType, RunState, StepRunState, WorkItemState

from .conftest import ROBOTS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

TEMPLATE = ROBOTS.parent / "template" / "robot.yaml"
ORDERS = b"Name,Zip,Item\nann,10115,Sofa\nbob,,Lamp\ncy,75001,Desk\n"


def test_producer_and_consumer_run_as_two_robot_steps(
    robot_server, automation, register_robot
):
    auto = automation(
        {
            "name": "producer",
            "action": "builtin.robot",
            "parameters": register_robot(
                "orders-producer", robot_yaml=str(TEMPLATE), task="producer"
            ),
        },
        {
            "name": "consumer",
            "action": "builtin.robot",
            "parameters": register_robot(
                "orders-consumer", robot_yaml=str(TEMPLATE), task="consumer"
            ),
        },
    )
    run = run_start(automation=auto, inputs=[{"subject": "orders mail"}])
    item = WorkItem.objects.get(run=run)
    attached = WorkItemFile(work_item=item, name="orders.csv", size=len(ORDERS))
    attached.file.save("orders.csv", ContentFile(ORDERS), save=False)
    attached.save()

    run_until_idle(run)
    run.refresh_from_db()

    assert WorkItem.objects.get(pk=item.pk).state == WorkItemState.DONE
    orders = {
        w.payload["Name"]: w
        for w in WorkItem.objects.filter(run=run, step__name="consumer")
    }
    assert {name: w.payload for name, w in orders.items()} == {
        "ann": {"Name": "ann", "Zip": "10115", "Product": "Sofa"},
        "bob": {"Name": "bob", "Zip": "", "Product": "Lamp"},
        "cy": {"Name": "cy", "Zip": "75001", "Product": "Desk"},
    }
    assert orders["ann"].state == orders["cy"].state == WorkItemState.DONE
    bob = orders["bob"]
    # item.fail() without a type is an APPLICATION failure (robocorp-workitems);
    # the step's one attempt is spent
    assert (bob.state, bob.failure_type, bob.failure_code) == (
        WorkItemState.FAILED,
        FailureType.APPLICATION,
        "MISSING_VALUE",
    )
    consumer = StepRun.objects.get(run=run, step__name="consumer")
    assert consumer.state == StepRunState.FINISHED
    assert "Processing order: ann, 10115, Sofa" in consumer.log
    assert run.state == RunState.UNRESOLVED
    assert verify_chain(run) is None


def test_the_demo_robot_runs_from_its_registration(robot_server):
    """The demo's loan-review (automations/fixtures/credit_union.json) names the
    robot the default RUNS_ROBOTS registers from robots/example/robot.yaml."""
    import json

    from automations.definitions import automation_import

    fixture = ROBOTS.parents[2] / "automations" / "fixtures" / "credit_union.json"
    (loan_review,) = [
        d for d in json.loads(fixture.read_text()) if d["slug"] == "loan-review"
    ]
    assert loan_review["steps"][0]["parameters"]["robot"] == "loan-review"
    auto = automation_import(loan_review).automation
    run = run_start(
        automation=auto,
        inputs=[
            {"applicant": "Harbor Bakery LLC", "amount": 20000, "income": 90000},
            {"applicant": "Pine & Co"},
        ],
    )
    run_until_idle(run)
    review = {
        w.payload["applicant"]: w
        for w in WorkItem.objects.filter(run=run, step__name="review")
    }
    assert review["Harbor Bakery LLC"].state == WorkItemState.DONE
    assert review["Pine & Co"].failure_code == "MISSING_AMOUNT"
    step_run = StepRun.objects.filter(run=run, step__name="review").first()
    assert step_run.exit_code == 0 and "review_applications" in step_run.log
