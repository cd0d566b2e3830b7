import pytest

from runs.engine import run_until_idle
from runs.services import run_start
from tests.factories import make_user

SIX_DIGITS = {
    "type": "object",
    "properties": {
        "code": {
            "type": "string",
            "pattern": "^[0-9]{6}$",
            "title": "Six-digit code",
            "description": "The code the bank sent by SMS",
        },
        "amount": {"type": "integer", "minimum": 1, "maximum": 1000},
        "confirmed": {"type": "boolean"},
        "channel": {"type": "string", "enum": ["sms", "mail"]},
    },
    "required": ["code"],
}


def code_step(**parameters):
    return {
        "name": "code",
        "action": "builtin.request_approval",
        "parameters": {"input_schema": SIX_DIGITS, **parameters},
    }


@pytest.fixture
def starter(db):
    return make_user("sam", ["approve_run", "view_run", "view_workitem"], is_staff=True)


@pytest.fixture
def approver(db):
    return make_user(
        "bob",
        ["approve_run", "view_run", "view_workitem"],
        is_staff=True,
        email="bob@example.com",
    )


@pytest.fixture
def code_run(automation, starter, approver):
    """A run whose one item waits for bob's six-digit code (deadline an hour)."""
    auto = automation(
        code_step(approvers=["bob"], deadline_seconds=3600),
        "builtin.echo",
        owners=["sam"],
    )
    run = run_start(automation=auto, inputs=[{"account": "A-1"}], actor=starter)
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == "awaiting_input"
    return run
