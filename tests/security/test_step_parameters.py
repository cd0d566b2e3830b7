"""Finding 10 of the security review: run inputs overrode step parameters.

`builtin.select_subjects` passed its source `{**parameters, **payload}`: an input
`{"days": 100000}` widened a selection the step fixed at 30 days (and the next step
e-mailed the extra suppliers). A source now gets the step's parameters; an input
supplies only what the step lists in `input_parameters` and does not set itself.
"""

import datetime

import pytest
from django.utils import timezone

import automations.demo  # noqa: F401 (registers the demo subject sources)
from automations.models import Subject
from runs.engine import run_until_idle
from runs.models import WorkItem
from runs.services import run_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def suppliers(db):
    today = timezone.localdate()
    for reference, days in [("soon", 10), ("later", 400), ("much-later", 5000)]:
        Subject.objects.create(
            kind="supplier",
            reference=reference,
            due_on=today + datetime.timedelta(days=days),
        )


def _selected(auto, inputs):
    run = run_start(automation=auto, inputs=inputs)
    run_until_idle(run)
    step2 = auto.latest_version().steps.get(order=2)
    return sorted(
        WorkItem.objects.filter(run=run, step=step2).values_list("subject", flat=True)
    )


def _select(parameters):
    return {"action": "builtin.select_subjects", "parameters": parameters}


def test_an_input_cannot_widen_a_selection_the_step_fixed(automation, suppliers):
    auto = automation(
        _select({"source": "demo.suppliers_expiring", "days": 30}), "builtin.echo"
    )
    assert _selected(auto, [{"days": 100000}]) == ["supplier:soon"]


def test_an_input_cannot_supply_a_parameter_the_step_left_unset(automation, suppliers):
    # the source's own default (30 days) holds: the step lets no input through
    auto = automation(_select({"source": "demo.suppliers_expiring"}), "builtin.echo")
    assert _selected(auto, [{"days": 100000}]) == ["supplier:soon"]


def test_a_step_may_let_its_inputs_supply_listed_parameters(automation, suppliers):
    auto = automation(
        _select({"source": "demo.suppliers_expiring", "input_parameters": ["days"]}),
        "builtin.echo",
    )
    assert _selected(auto, [{"days": 500}]) == ["supplier:later", "supplier:soon"]
    # never one the step sets, even when listed
    fixed = automation(
        _select(
            {
                "source": "demo.suppliers_expiring",
                "days": 30,
                "input_parameters": ["days"],
            }
        ),
        "builtin.echo",
    )
    assert _selected(fixed, [{"days": 100000}]) == ["supplier:soon"]
