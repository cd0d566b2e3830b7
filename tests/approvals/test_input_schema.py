"""Typed input: the `input_schema` of builtin.request_approval is checked at import
and the approval's data against it, whoever decides through whichever door."""

import pytest

from automations.definitions import DefinitionError, automation_import
from runs.engine import run_until_idle
from runs.models import AuditEvent, WorkItem
from runs.services import InvalidInput, InvalidRequest, work_item_decide
from runs.states import RunState, WorkItemState

from .conftest import SIX_DIGITS, code_step


def definition(*steps):
    return {"slug": "typed", "name": "Typed", "steps": list(steps)}


@pytest.mark.parametrize(
    "schema,message",
    [
        ("six digits", "must be an object"),
        ({"type": "object", "properties": {"x": {"type": "strin"}}}, "JSON Schema"),
        ({"type": "array"}, '"type": "object"'),
        ({"type": "object", "properties": {}}, "at least one field"),
        (
            {"type": "object", "properties": {"x": {"type": "array"}}},
            "properties.x.type",
        ),
        (
            {"type": "object", "properties": {"x": {"type": "string", "pattern": "("}}},
            "properties.x.pattern",
        ),
        (
            {
                "type": "object",
                "properties": {"x": {"type": "string"}},
                "required": ["y"],
            },
            "required: not among the properties: y",
        ),
    ],
)
def test_a_bad_schema_is_refused_at_import_naming_the_field(db, schema, message):
    with pytest.raises(DefinitionError) as caught:
        automation_import(
            definition(code_step() | {"parameters": {"input_schema": schema}})
        )
    assert "steps[0].parameters.input_schema" in str(caught.value)
    assert message in str(caught.value)


def test_a_good_schema_imports(db):
    result = automation_import(definition(code_step()))
    step = result.version.steps.get()
    assert step.parameters["input_schema"] == SIX_DIGITS


def test_input_schema_only_on_an_approval_step(db):
    step = {
        "name": "e",
        "action": "builtin.echo",
        "parameters": {"input_schema": SIX_DIGITS},
    }
    with pytest.raises(DefinitionError, match="only for builtin.request_approval"):
        automation_import(definition(step))


@pytest.mark.parametrize(
    "parameters,field",
    [
        ({"approvers": "bob"}, "approvers"),
        ({"deadline_seconds": -1}, "deadline_seconds"),
    ],
)
def test_approval_parameters_are_checked_at_import(db, parameters, field):
    with pytest.raises(DefinitionError, match=f"parameters.{field}"):
        automation_import(definition(code_step(**parameters)))


@pytest.mark.parametrize(
    "data,field",
    [
        ({}, "data.code"),
        ({"code": "12345"}, "data.code"),
        ({"code": "12345a"}, "data.code"),
        ({"code": 123456}, "data.code"),
        ({"code": "123456", "amount": 0}, "data.amount"),
        ({"code": "123456", "channel": "fax"}, "data.channel"),
        ({"code": "123456", "confirmed": "yes"}, "data.confirmed"),
    ],
)
def test_approval_data_must_match_the_schema(code_run, approver, data, field):
    item = WorkItem.objects.get(run=code_run)
    with pytest.raises(InvalidInput) as caught:
        work_item_decide(
            code_run,
            actor=approver,
            work_item_id=item.pk,
            decision="approve",
            data=data,
        )
    assert [where for where, _ in caught.value.problems] == [field]
    assert str(caught.value).startswith(field)
    item.refresh_from_db()
    assert item.state == WorkItemState.AWAITING_INPUT and item.approval is None
    assert not AuditEvent.objects.filter(run=code_run, verb="work_item.approved")


def test_approval_with_valid_data_flows_on_with_it(code_run, approver):
    item = WorkItem.objects.get(run=code_run)
    data = {"code": "004211", "amount": 5, "confirmed": True, "channel": "sms"}
    work_item_decide(
        code_run, actor=approver, work_item_id=item.pk, decision="approve", data=data
    )
    run_until_idle(code_run)
    code_run.refresh_from_db()
    assert code_run.state == RunState.COMPLETED
    out = WorkItem.objects.get(run=code_run, step__name="step2")
    assert out.payload == {"account": "A-1", **data}
    event = AuditEvent.objects.get(run=code_run, verb="work_item.approved")
    assert event.after["data"] == data and event.actor == approver


def test_reject_needs_a_reason_and_ignores_the_schema(code_run, approver):
    item = WorkItem.objects.get(run=code_run)
    for reason in ("", "   "):
        with pytest.raises(InvalidRequest, match="reason is required"):
            work_item_decide(
                code_run,
                actor=approver,
                work_item_id=item.pk,
                decision="reject",
                reason=reason,
            )
    item.refresh_from_db()
    assert item.state == WorkItemState.AWAITING_INPUT
    work_item_decide(
        code_run,
        actor=approver,
        work_item_id=item.pk,
        decision="reject",
        reason="the customer withdrew",
    )
    item.refresh_from_db()
    assert (item.state, item.failure_message) == ("failed", "the customer withdrew")
