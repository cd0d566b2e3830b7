"""The Vault API robocorp-vault reads: a real robot reads the secret its step
names and is refused another; the token dies with the step run; bad requests are
4xx."""

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.urls import reverse
from rest_framework.test import APIClient

from runs.engine import run_until_idle
from runs.models import StepRun, WorkItem
from runs.robots import tokens
from runs.secrets.services import secret_set
from runs.services import run_start
from runs.states import StepRunState
from tests.robots.conftest import robocorp_command

pytestmark = [pytest.mark.timeout(180)]

TOKEN = "vault-tok-1a2b3c4d5e-OMEGA"
ROBOT_DIR = Path(__file__).resolve().parent / "robot"


def robot_step(register_robot, secrets):
    parameters = register_robot(
        "vault-reader",
        command=robocorp_command("read_secrets"),
        cwd=str(ROBOT_DIR),
    )
    return {
        "name": "read",
        "action": "builtin.robot",
        "parameters": {**parameters, "secrets": secrets},
    }


@pytest.mark.django_db(transaction=True)
def test_a_real_robot_reads_the_named_secret_and_is_refused_another(
    robot_server, automation, register_robot
):
    secret_set("crm", {"token": TOKEN, "user": "svc"}, description="CRM")
    secret_set("other", {"token": "other-value-never-read"})
    auto = automation(robot_step(register_robot, ["crm"]), "builtin.echo")
    run = run_start(automation=auto, inputs=[{"subject": "ok"}, {"subject": "reject"}])
    run_until_idle(run)
    step_run = StepRun.objects.get(run=run, step__name="read")
    assert step_run.state == StepRunState.FINISHED, step_run.log
    (output,) = WorkItem.objects.filter(run=run, step__name="step2")
    assert output.payload["keys"] == ["token", "user"]
    assert output.payload["length"] == len(TOKEN)
    assert output.payload["description"] == "CRM"
    assert "Not authorized to read secret" in output.payload["refused"]
    assert output.payload["echo"] == "token=[$secret crm.token]"
    # what the robot printed and failed with is kept with the reference
    assert "the token is [$secret crm.token]" in step_run.log
    assert TOKEN not in step_run.log
    rejected = WorkItem.objects.get(run=run, step__name="read", subject="reject")
    assert rejected.failure_message == "no [$secret crm.token]"
    assert rejected.failure_code == "REJECTED"
    from runs.models import AuditEvent, RunItem

    written = json.dumps(
        [
            list(model.objects.values())
            for model in (RunItem, WorkItem, StepRun, AuditEvent)
        ],
        default=str,
    )
    assert TOKEN not in written
    assert "[$secret crm.token]" in written


def test_import_refuses_a_robot_step_naming_an_unknown_secret(
    db, automation, register_robot
):
    from automations.definitions import DefinitionError

    with pytest.raises(DefinitionError, match="parameters.secrets: no secret 'crm'"):
        automation(robot_step(register_robot, ["crm"]))
    with pytest.raises(DefinitionError, match="a list of at most 50 secret names"):
        automation(robot_step(register_robot, "crm"))


def _public_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.fixture
def vault_call(held_step_run, register_robot):
    """A running robot step run naming "crm"; returns call(name, token=, **query)."""

    def make():
        secret_set("crm", {"token": TOKEN})
        secret_set("other", {"token": "x"})
        _run, step_run, env = held_step_run([{"subject": "a"}])
        step_run.step.parameters = {**step_run.step.parameters, "secrets": ["crm"]}
        type(step_run.step).objects.filter(pk=step_run.step.pk).update(
            parameters=step_run.step.parameters
        )
        assert env["RC_API_SECRET_HOST"] == env["RC_API_WORKITEM_HOST"]
        token = env["RC_API_SECRET_TOKEN"]

        def call(name, *, token=token, workspace=None, **query):
            url = reverse(
                "runs-robots:secret",
                args=[workspace or env["RC_WORKSPACE_ID"], name],
            )
            params = {
                "encryptionScheme": "robocloud-vault-transit-v2",
                "publicKey": _public_key(),
                **query,
            }
            client = APIClient()
            return client.get(url, params, HTTP_AUTHORIZATION=f"Bearer {token}")

        return step_run, env, call

    return make


@pytest.mark.django_db
def test_vault_answers_and_refusals(vault_call):
    step_run, env, call = vault_call()
    answer = call("crm")
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"name", "description", "value", "encryption"}
    assert set(body["encryption"]) == {
        "encryptionScheme",
        "encryptedAES",
        "authTag",
        "iv",
    }
    assert TOKEN not in json.dumps(body)
    assert call("other").status_code == 403  # exists, not named
    assert call("missing").status_code == 403  # not named either: no oracle
    assert call("crm", workspace="elsewhere").status_code == 404
    assert call("crm", encryptionScheme="plain").status_code == 400
    assert call("crm", publicKey="not base64!").status_code == 400
    assert call("crm", publicKey="A" * 5000).status_code == 400
    assert call("crm", token="rc1.1.forged").status_code == 401
    # other scopes' tokens are not vault tokens
    assert call("crm", token=env["RC_API_WORKITEM_TOKEN"]).status_code == 401
    # after the step run ends its token reads nothing
    StepRun.objects.filter(pk=step_run.pk).update(state=StepRunState.FINISHED)
    assert call("crm").status_code == 403


@pytest.mark.django_db
def test_a_named_secret_that_is_gone_is_404(vault_call):
    from runs.models import Secret

    _, _, call = vault_call()
    Secret.objects.filter(name="crm").delete()
    assert call("crm").status_code == 404


def test_the_vault_token_is_its_own_scope(db):
    assert "secret" in tokens.SCOPES
