"""Secrets belong to a workspace: a reference names a secret of its automation's
workspace (at import, publish and the call), the Vault API serves the run's
workspace only, `secret_set --workspace`, and the admin shows a person the
secrets of their workspaces only."""

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from automations.definitions import DefinitionError
from automations.models import Workspace
from automations.services import AutomationStateError, version_publish, workspace_add
from runs.engine import run_until_idle
from runs.models import AuditEvent, Secret, WorkItem
from runs.secrets.references import resolve
from runs.secrets.services import secret_set
from runs.services import run_start
from tests.factories import make_automation
from tests.secrets.test_vault import TOKEN as VAULT_TOKEN
from tests.secrets.test_vault import vault_call  # noqa: F401
from tests.workspaces.conftest import member

OURS = "lending-value-7f3a9c"
THEIRS = "aml-value-2b8d41"
REF = {"$secret": "crm.token"}


@pytest.fixture
def seen_server():
    """An HTTP server that keeps the Authorization header of every request."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/", seen
    server.shutdown()


def http_step(url):
    return {
        "action": "builtin.http_request",
        "parameters": {"url": url, "headers": {"Authorization": REF}},
    }


def test_the_same_name_in_two_workspaces_resolves_to_its_own_value(
    lending, aml, seen_server
):
    url, seen = seen_server
    secret_set("crm", {"token": OURS}, workspace="lending")
    secret_set("crm", {"token": THEIRS}, workspace="aml")
    assert Secret.objects.filter(name="crm").count() == 2
    assert resolve({"h": REF}, lending.pk).parameters == {"h": OURS}
    assert resolve({"h": REF}, aml.pk).parameters == {"h": THEIRS}
    for workspace, value in (("lending", OURS), ("aml", THEIRS)):
        auto = make_automation(http_step(url), workspace=workspace)
        run = run_start(automation=auto, inputs=[{"subject": workspace}])
        run_until_idle(run)
        assert WorkItem.objects.get(run=run).state == "done"
        assert seen[-1] == value
    assert seen == [OURS, THEIRS]


def test_a_definition_refers_only_to_secrets_of_its_workspace(lending, aml):
    secret_set("crm", {"token": THEIRS}, workspace="aml")
    with pytest.raises(DefinitionError, match="no secret 'crm'") as caught:
        make_automation(http_step("http://127.0.0.1:9/"), workspace="lending")
    assert THEIRS not in str(caught.value)
    # a robot step naming it is refused the same way
    with pytest.raises(DefinitionError, match="parameters.secrets: no secret 'crm'"):
        make_automation(
            {
                "action": "builtin.robot",
                "parameters": {"robot": "loan-review", "secrets": ["crm"]},
            },
            workspace="lending",
        )
    make_automation(http_step("http://127.0.0.1:9/"), workspace="aml")


def test_publish_checks_the_automations_workspace(lending, aml):
    secret_set("crm", {"token": OURS}, workspace="lending")
    secret_set("crm", {"token": THEIRS}, workspace="aml")
    auto = make_automation(
        http_step("http://127.0.0.1:9/"), workspace="lending", publish=False
    )
    Secret.objects.filter(workspace=lending).delete()
    with pytest.raises(AutomationStateError, match="no secret 'crm'"):
        version_publish(auto.versions.get())


def test_the_call_does_not_take_another_workspaces_secret(lending, aml):
    secret_set("crm", {"token": OURS}, workspace="lending")
    auto = make_automation(http_step("http://127.0.0.1:9/"), workspace="lending")
    Secret.objects.filter(workspace=lending).delete()
    secret_set("crm", {"token": THEIRS}, workspace="aml")
    run = run_start(automation=auto, inputs=[{"subject": "a"}])
    run_until_idle(run)
    item = WorkItem.objects.get(run=run)
    assert (item.state, item.failure_code) == ("failed", "secret_unavailable")


@pytest.mark.django_db
def test_the_vault_never_serves_another_workspaces_secret(vault_call):  # noqa: F811
    step_run, _env, call = vault_call()
    ours = step_run.run.automation.workspace.slug
    workspace_add(slug="aml", name="AML team")
    secret_set("crm", {"token": "aml-only"}, description="theirs", workspace="aml")
    answer = call("crm", workspace=ours)
    assert answer.status_code == 200
    assert answer.json()["description"] == ""  # ours, made without one
    Secret.objects.filter(name="crm", workspace__slug=ours).delete()
    # the other workspace's "crm" exists; this run's workspace has none
    assert call("crm", workspace=ours).status_code == 404
    assert call("crm", workspace="aml").status_code == 404  # not the run's path
    assert VAULT_TOKEN


def set_cmd(name, values, *args):
    out = io.StringIO()
    call_command(
        "secret_set", name, *args, stdin=io.StringIO(json.dumps(values)), stdout=out
    )
    return out.getvalue()


def test_secret_set_writes_into_the_named_workspace(lending):
    assert "of workspace default created" in set_cmd("crm", {"token": OURS})
    assert "of workspace lending created" in set_cmd(
        "crm", {"token": THEIRS}, "--workspace", "lending"
    )
    assert "of workspace lending updated" in set_cmd(
        "crm", {"token": THEIRS + "2"}, "--workspace", "lending"
    )
    by_workspace = {
        s.workspace.slug: s.get_values()["token"] for s in Secret.objects.all()
    }
    assert by_workspace == {"default": OURS, "lending": THEIRS + "2"}
    events = AuditEvent.objects.filter(object_type="runs.secret").order_by("seq")
    assert [(e.verb, (e.after or {}).get("workspace")) for e in events] == [
        ("secret.created", "default"),
        ("secret.created", "lending"),
        ("secret.changed", None),  # the values changed, not the workspace
    ]
    Secret.objects.get(workspace=lending).delete()
    deleted = AuditEvent.objects.filter(verb="secret.deleted").get()
    assert deleted.before["workspace"] == "lending"
    assert deleted.before["name"] == "crm"
    text = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert OURS not in text and THEIRS not in text


def test_secret_set_refuses_an_unknown_workspace_and_writes_nothing(db):
    with pytest.raises(CommandError, match="no workspace 'nowhere'"):
        set_cmd("crm", {"token": OURS}, "--workspace", "nowhere")
    assert not Secret.objects.exists()
    assert not Workspace.objects.filter(slug="nowhere").exists()
    assert not AuditEvent.objects.filter(object_type="runs.secret").exists()


# -- admin ----------------------------------------------------------------------


def staff_member(username, workspace):
    user = member(username, workspace)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return type(user).objects.get(pk=user.pk)


def test_the_admin_shows_a_member_the_secrets_of_their_workspace(client, lending, aml):
    ours = secret_set("crm", {"token": OURS}, workspace="lending")[0]
    theirs = secret_set("aml-vault", {"token": THEIRS}, workspace="aml")[0]
    client.force_login(staff_member("lena", lending))
    listing = client.get(reverse("admin:runs_secret_changelist"))
    text = listing.content.decode()
    assert listing.status_code == 200
    assert "crm" in text and "aml-vault" not in text
    assert OURS not in text
    change = reverse("admin:runs_secret_change", args=[theirs.pk])
    assert client.get(change).status_code == 404
    posted = client.post(change, {"name": "x", "values": json.dumps({"k": "v"})})
    assert posted.status_code == 404
    assert Secret.objects.get(pk=theirs.pk).get_values() == {"token": THEIRS}
    assert (
        client.get(reverse("admin:runs_secret_delete", args=[theirs.pk])).status_code
        == 404
    )
    assert (
        client.get(reverse("admin:runs_secret_history", args=[theirs.pk])).status_code
        == 404
    )
    # our own is changeable; its workspace stays
    own_change = reverse("admin:runs_secret_change", args=[ours.pk])
    page = client.get(own_change)
    assert page.status_code == 200 and OURS not in page.content.decode()
    client.post(
        own_change,
        {"workspace": aml.pk, "name": "crm", "description": "d", "values": ""},
    )
    ours.refresh_from_db()
    assert (ours.workspace_id, ours.description) == (lending.pk, "d")


def test_the_admin_adds_secrets_only_in_the_members_workspaces(client, lending, aml):
    client.force_login(staff_member("lena", lending))
    add = reverse("admin:runs_secret_add")
    values = json.dumps({"token": OURS})
    refused = client.post(add, {"workspace": aml.pk, "name": "crm", "values": values})
    assert refused.status_code == 200  # the form again: not a choice
    assert not Secret.objects.exists()
    done = client.post(add, {"workspace": lending.pk, "name": "crm", "values": values})
    assert done.status_code == 302
    assert Secret.objects.get().workspace_id == lending.pk
    # the same name again in the same workspace is a form error, not a 500
    again = client.post(add, {"workspace": lending.pk, "name": "crm", "values": values})
    assert again.status_code == 200
    assert Secret.objects.count() == 1


def test_a_rename_onto_a_taken_name_is_a_form_error(client, lending):
    secret_set("crm", {"token": OURS}, workspace="lending")
    other = secret_set("erp", {"token": OURS}, workspace="lending")[0]
    client.force_login(staff_member("lena", lending))
    change = reverse("admin:runs_secret_change", args=[other.pk])
    response = client.post(change, {"name": "crm", "description": "", "values": ""})
    assert response.status_code == 200
    assert "this workspace has a secret of this name" in response.content.decode()
    assert Secret.objects.get(pk=other.pk).name == "erp"


@pytest.mark.django_db(transaction=True)
def test_the_migration_puts_existing_secrets_into_default():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("runs", "0020_approver_group")]
    after = [("runs", "0021_secret_workspace")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    # a database without the default workspace yet: the migration makes it
    old.get_model("automations", "Workspace").objects.all().delete()
    old.get_model("automations", "Workspace").objects.create(slug="x", name="X")
    old.get_model("runs", "Secret").objects.create(
        name="crm", keys=["token"], ciphertext="opaque"
    )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    secret = Secret.objects.get(name="crm")
    assert secret.workspace.slug == "default"
    assert secret.ciphertext == "opaque"  # values untouched
    # unique per workspace now: the same name elsewhere is allowed
    Secret.objects.create(
        workspace=Workspace.objects.get(slug="x"), name="crm", ciphertext="o"
    )
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Secret.objects.create(workspace=secret.workspace, name="crm", ciphertext="o")
