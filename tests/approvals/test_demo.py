from django.contrib.auth import get_user_model
from django.core.management import call_command

from runs.models import Run, WorkItem
from runs.services import decision_refusal


def test_seed_demo_leaves_a_payment_waiting_for_a_six_digit_code(db):
    call_command("seed_demo", verbosity=0)
    run = Run.objects.get(automation__slug="payment-release")
    assert run.state == "awaiting_input"
    item = WorkItem.objects.select_related("step").get(run=run, state="awaiting_input")
    schema = item.step.parameters["input_schema"]
    assert schema["properties"]["code"]["pattern"] == "^[0-9]{6}$"
    olivia = get_user_model().objects.get(username="olivia")
    assert decision_refusal(run, item, olivia) == ""
