"""Findings 8 and 9 of the security review: JSON the database cannot hold.

`1e400` overflows to inf, `NaN`/`Infinity` are not JSON, and a lone UTF-16 surrogate
(`"\\ud800"`) is valid JSON text that no UTF-8 database encodes. Every JSON entry
(API trigger, controls, input; the robots' work-items API) reads its body through
`runs.api.parsers.json_parse` and answers 400, writing nothing.
"""

import pytest

from runs.models import AuditEvent, Run, WorkItem
from tests.api.conftest import client_for
from tests.factories import make_user
from tests.robots.conftest import held_step_run  # noqa: F401 (fixture)

BAD_BODIES = {
    "overflow": '{"inputs": [{"amount": 1e400}]}',
    "negative overflow": '{"inputs": [{"amount": -1e400}]}',
    "NaN": '{"inputs": [{"amount": NaN}]}',
    "Infinity": '{"inputs": [{"amount": -Infinity}]}',
    "lone surrogate": '{"inputs": [{"name": "\\ud800"}]}',
    "lone low surrogate in a key": '{"inputs": [{"\\udc00": 1}]}',
}


@pytest.mark.parametrize("text", BAD_BODIES.values(), ids=BAD_BODIES)
def test_json_parse_refuses_what_the_database_cannot_hold(text):
    from runs.api.parsers import JSONBoundsError, json_parse

    with pytest.raises(JSONBoundsError):
        json_parse(text)


def test_json_parse_keeps_what_it_can():
    from runs.api.parsers import json_parse

    # a surrogate pair is one character (U+1F600), large finite numbers stay
    assert json_parse('{"a": "\\ud83d\\ude00", "b": 1e300, "c": 10}') == {
        "a": "\U0001f600",
        "b": 1e300,
        "c": 10,
    }


@pytest.fixture
def operator(db):
    from tests.factories import OPERATOR

    return make_user("olivia", OPERATOR)


@pytest.mark.django_db
@pytest.mark.parametrize("text", BAD_BODIES.values(), ids=BAD_BODIES)
def test_trigger_refuses_them_with_400_and_starts_nothing(operator, automation, text):
    auto = automation("builtin.echo")
    response = client_for(operator).post(
        f"/api/v1/automations/{auto.slug}/runs/", text, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "parse_error"
    assert not Run.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text",
    [
        '{"work_item": ITEM, "decision": "approve", "data": {"x": 1e400}}',
        '{"work_item": ITEM, "decision": "approve", "data": {"x": "\\udfff"}}',
        '{"work_item": ITEM, "decision": "approve", "reason": "\\ud800"}',
    ],
)
def test_input_and_controls_refuse_them_with_400(operator, automation, text):
    from runs.services import run_start

    auto = automation({"action": "builtin.echo", "requires_approval": True})
    run = run_start(automation=auto, inputs=[{"subject": "a"}])
    item = WorkItem.objects.get(run=run)
    events = AuditEvent.objects.count()
    client = client_for(operator)
    response = client.post(
        f"/api/v1/runs/{run.pk}/input/",
        text.replace("ITEM", str(item.pk)),
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    response = client.post(
        f"/api/v1/runs/{run.pk}/stop/",
        '{"reason": "\\ud800"}',
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert AuditEvent.objects.count() == events


@pytest.fixture
def robot(held_step_run, client):  # noqa: F811
    run, step_run, env = held_step_run([{"subject": "ann"}])
    process = f"/robots/process-v1/workspaces/default/processes/{run.automation.slug}"
    robot_run = f"{process}/runs/{run.pk}/robotRuns/{step_run.pk}"
    items = "/robots/json-v1/workspaces/default/workitems"
    item = env["RC_WORKITEM_ID"]

    def call(method, url, text, scope):
        token = env[f"RC_API_{scope.upper()}_TOKEN"]
        return getattr(client, method)(
            url,
            data=text,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )

    return {
        "call": call,
        "process": process,
        "robot_run": robot_run,
        "items": items,
        "item": item,
    }


ROBOT_BAD = ['{"x": "\\ud800"}', '{"x": 1e400}', '{"x": NaN}']


@pytest.mark.django_db
@pytest.mark.parametrize("text", ROBOT_BAD)
def test_robot_payload_put_refuses_them_with_400(robot, text):
    item = WorkItem.objects.get(pk=robot["item"])
    response = robot["call"](
        "put", f"{robot['items']}/{item.pk}/data", text, "workitem"
    )
    assert response.status_code == 400, response.content
    item.refresh_from_db()
    assert item.payload == {"subject": "ann"}


@pytest.mark.django_db
@pytest.mark.parametrize("text", ROBOT_BAD)
def test_robot_release_and_output_refuse_them_with_400(robot, text):
    item = robot["item"]
    release = (
        text.replace(
            '{"x"',
            f'{{"workItemId": "{item}", "state": "FAILED", "exception": {{'
            '"type": "APPLICATION", "code": "c", "message"',
        ).rstrip("}")
        + "}}"
    )
    response = robot["call"](
        "post", robot["robot_run"] + "/release-work-item", release, "process"
    )
    assert response.status_code == 400, response.content
    response = robot["call"](
        "post",
        f"{robot['process']}/work-items/{item}/output",
        '{"payload": ' + text + "}",
        "process",
    )
    assert response.status_code == 400, response.content
    assert WorkItem.objects.get(pk=item).state == "in_progress"
