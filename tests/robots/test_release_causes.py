"""A robot's failure cause is what people read in admin and exports: an HTTP error
that carries this API's JSON body is kept as its detail, never as raw JSON."""

import json

import pytest

from runs.models import RunItem, StepRun, WorkItem
from runs.robots.services import RobotSession, failure_text, work_item_release

pytestmark = pytest.mark.django_db(transaction=True)

DETAIL = "work item 136 cannot change now (it is in_progress)"
BODY = json.dumps({"detail": DETAIL, "code": "read_only"}, separators=(",", ":"))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (BODY, DETAIL),
        (
            f"409 Conflict - {BODY}",
            f"409 Conflict: {DETAIL}",
        ),
        ("core banking did not answer", "core banking did not answer"),
        ("odd {braces} but no JSON {x", "odd {braces} but no JSON {x"),
        ('{"no_detail": 1}', '{"no_detail": 1}'),
    ],
)
def test_failure_text_keeps_the_detail_of_an_api_error(message, expected):
    assert failure_text(message) == expected


def test_a_release_with_a_raw_api_error_records_its_detail(held_step_run):
    run, step_run, _ = held_step_run([{"subject": "ann"}])
    item = WorkItem.objects.get(run=run, step__name="robot")
    work_item_release(
        RobotSession(StepRun.objects.get(pk=step_run.pk)),
        {
            "workItemId": str(item.pk),
            "state": "FAILED",
            "exception": {
                "type": "BUSINESS",
                "message": BODY,
            },
        },
    )
    item.refresh_from_db()
    assert item.failure_message == DETAIL
    assert RunItem.objects.get(work_item=item).failure_cause == DETAIL
