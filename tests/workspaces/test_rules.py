"""The workspace rule (automations.workspaces), its commands and audit events, and
the doors that are not URLs: definitions import, approvals, e-mail addresses,
subject sources, robots, notifications."""

import io

import pytest
from django.core.management import CommandError, call_command

from automations.definitions import DefinitionError, automation_import
from automations.models import Membership, Subject, Trigger, TriggerKind, Workspace
from automations.workspaces import (
    automations_visible_to,
    holds_role,
    may,
    may_somewhere,
    workspaces_where,
)
from runs.models import AuditEvent
from runs.services import RunsError, run_start, work_item_decide
from tests.factories import make_automation, make_user

from .conftest import member


def command(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def fresh(user):
    return type(user).objects.get(pk=user.pk)


def test_a_workspace_role_grants_its_permissions_there_only(lena, lending, aml):
    assert may(lena, "runs.stop_run", lending.pk)
    assert not may(lena, "runs.stop_run", aml.pk)
    assert workspaces_where(lena, "runs.view_run") == frozenset({lending.pk})
    assert may_somewhere(lena, "automations.change_automation")


def test_roles_mean_their_groups_permissions(lending, aml):
    approver = member("apo", lending, roles=["approver"])
    assert may(approver, "runs.approve_run", lending.pk)
    assert may(approver, "runs.view_run", lending.pk)
    assert not may(approver, "runs.stop_run", lending.pk)
    assert not may(approver, "runs.view_run", aml.pk)


def test_groups_stay_roles_in_every_workspace_and_superusers_see_all(
    viewer, lending, aml
):
    assert workspaces_where(viewer, "runs.view_run") is None
    assert not may(viewer, "runs.stop_run", aml.pk)
    root = make_user("root", is_superuser=True)
    assert workspaces_where(root, "runs.stop_run") is None
    assert workspaces_where(make_user("nobody2"), "runs.view_run") == frozenset()


def test_automations_visible_to_a_member(lena, own, foreign):
    assert list(automations_visible_to(lena).values_list("slug", flat=True)) == [
        "loan-review"
    ]


def test_commands_add_grant_and_revoke_with_audit_events(db):
    assert "created" in command("workspace_add", "kyc", "--name", "KYC team")
    assert "exists" in command("workspace_add", "kyc")
    make_user("kim")
    assert "granted" in command("workspace_grant", "kim", "kyc", "operator")
    assert "already held" in command("workspace_grant", "kim", "kyc", "operator")
    kim = Membership.objects.get(user__username="kim").user
    assert kim.is_staff  # a role means signing in to admin
    assert may(fresh(kim), "runs.stop_run", Workspace.objects.get(slug="kyc").pk)
    assert "revoked" in command("workspace_grant", "kim", "kyc", "operator", "--revoke")
    assert not Membership.objects.exists()
    verbs = list(
        AuditEvent.objects.filter(chain="global")
        .filter(verb__startswith=("membership"))
        .values_list("verb", "actor_label")
    )
    assert verbs == [
        ("membership.created", "manage.py workspace_grant"),
        ("membership.deleted", "manage.py workspace_grant"),
    ]
    created = AuditEvent.objects.get(verb="workspace.created")
    assert created.after["slug"] == "kyc"
    # who holds which role where, by name: an auditor reads no ids
    granted = AuditEvent.objects.get(verb="membership.created")
    assert granted.after == {"user": "kim", "workspace": "kyc", "role": "operator"}
    revoked = AuditEvent.objects.get(verb="membership.deleted")
    assert revoked.before == granted.after


@pytest.mark.parametrize(
    "args,message",
    [
        (["nobody-at-all", "default", "viewer"], "no user named"),
        (["kim", "nowhere", "viewer"], "no workspace 'nowhere'"),
    ],
)
def test_grant_refuses_unknown_names(db, args, message):
    make_user("kim")
    with pytest.raises(CommandError, match=message):
        command("workspace_grant", *args)
    assert not Membership.objects.exists()


def test_workspace_add_refuses_a_bad_slug(db):
    with pytest.raises(CommandError, match="slug"):
        command("workspace_add", "no spaces")
    assert not Workspace.objects.filter(slug="no spaces").exists()


def test_import_into_an_unknown_workspace_is_an_error(db):
    with pytest.raises(DefinitionError, match="workspace: no workspace 'nope'"):
        make_automation("builtin.echo", slug="x", workspace="nope")
    assert not Workspace.objects.filter(slug="nope").exists()


def test_import_by_a_person_needs_author_rights_there(lending, aml, lena):
    definition = {
        "slug": "sneaky",
        "name": "Sneaky",
        "workspace": "aml",
        "steps": [{"name": "s", "action": "builtin.echo"}],
    }
    with pytest.raises(DefinitionError, match="may not author automations in"):
        automation_import(definition, actor=lena)
    ok = automation_import({**definition, "workspace": "lending"}, actor=lena)
    assert ok.automation.workspace == lending


def test_import_does_not_move_an_automation(own, aml):
    with pytest.raises(DefinitionError, match="does not move it"):
        make_automation("builtin.echo", slug="loan-review", workspace="aml")


def test_export_names_a_workspace_other_than_default(own):
    from automations.definitions import automation_export

    assert automation_export(own[0])["workspace"] == "lending"
    assert "workspace" not in automation_export(make_automation("builtin.echo"))


def test_an_email_address_belongs_to_one_workspace(lending, aml):
    make_automation(
        "builtin.echo",
        slug="lend-mail",
        workspace="lending",
        triggers=[{"kind": "email", "address": "in@bank.example"}],
    )
    with pytest.raises(DefinitionError, match="belongs to another workspace"):
        make_automation(
            "builtin.echo",
            slug="aml-mail",
            workspace="aml",
            triggers=[{"kind": "email", "address": "IN@bank.example"}],
        )
    # the same workspace may share it (one message, several automations)
    make_automation(
        "builtin.echo",
        slug="lend-mail-2",
        workspace="lending",
        triggers=[{"kind": "email", "address": "in@bank.example"}],
    )
    assert Trigger.objects.filter(kind=TriggerKind.EMAIL).count() == 2


def test_subject_sources_select_the_runs_workspace_only(lending, aml):
    Subject.objects.create(workspace=lending, kind="account", reference="L-1")
    Subject.objects.create(workspace=aml, kind="account", reference="A-1")
    auto = make_automation(
        {
            "action": "builtin.select_subjects",
            "parameters": {"source": "subjects", "kind": "account"},
        },
        "builtin.echo",
        slug="pick",
        workspace="lending",
    )
    from runs.engine import run_until_idle
    from runs.models import WorkItem

    run = run_start(automation=auto, inputs=[{}])
    run_until_idle(run)
    subjects = set(
        WorkItem.objects.filter(run=run)
        .exclude(subject="")
        .values_list("subject", flat=True)
    )
    assert "account:L-1" in subjects and "account:A-1" not in subjects


def _awaiting(approvers, workspace):
    from runs.engine import run_until_idle

    auto = make_automation(
        {
            "action": "builtin.request_approval",
            "parameters": {"approvers": approvers},
        },
        workspace=workspace.slug,
    )
    run = run_start(automation=auto, inputs=[{"subject": "s"}])
    run_until_idle(run)
    return run, run.work_items.get(state="awaiting_input")


def test_approvers_named_by_workspace_role(lending, aml):
    run, item = _awaiting(["workspace:approver"], lending)
    outsider = member("otto", aml, roles=["approver"])
    with pytest.raises(RunsError, match="not among the approvers"):
        work_item_decide(run, actor=outsider, work_item_id=item.pk, decision="approve")
    insider = member("ines", lending, roles=["approver"])
    assert holds_role(insider, "approver", lending.pk)
    decided = work_item_decide(
        run, actor=insider, work_item_id=item.pk, decision="approve"
    )
    assert decided.work_item.state == "pending"


def test_robots_get_their_workspace_as_rc_workspace_id(held_step_run):
    run, _step_run, env = held_step_run([{"subject": "ann"}])
    assert env["RC_WORKSPACE_ID"] == run.automation.workspace.slug == "default"


def test_a_robot_token_reaches_its_own_workspace_paths_only(held_step_run, client):
    _run, _step_run, env = held_step_run([{"subject": "ann"}])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {env['RC_API_WORKITEM_TOKEN']}"}
    item = env["RC_WORKITEM_ID"]
    ours = client.get(
        f"/robots/json-v1/workspaces/default/workitems/{item}/data", **auth
    )
    assert ours.status_code == 200
    other = client.get(f"/robots/json-v1/workspaces/aml/workitems/{item}/data", **auth)
    assert other.status_code == 404


def test_notifications_skip_people_without_a_role_there(foreign, lena):
    from runs.mail.models import AutomationSubscription
    from runs.mail.notifications import notification_recipients

    auto, _run = foreign
    lena.email = "lena@example.com"
    lena.save()
    AutomationSubscription.objects.create(automation=auto, user=lena)
    names = [u.username for u, _mode in notification_recipients(auto)]
    assert "lena" not in names


@pytest.mark.django_db(transaction=True)
def test_the_migration_puts_everything_in_default_with_the_groups_roles():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [
        ("runs", "0019_step_run_files"),
        ("automations", "0005_step_result_url"),
    ]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        old.get_model("automations", "Automation").objects.create(
            slug="old", name="Old"
        )
        old.get_model("automations", "Subject").objects.create(
            kind="account", reference="OLD-1"
        )
        Group = old.get_model("auth", "Group")
        person = old.get_model("auth", "User").objects.create(username="olaf")
        person.groups.add(Group.objects.get_or_create(name="Operator")[0])
    finally:
        MigrationExecutor(connection).migrate(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )
    from automations.models import Automation

    default = Workspace.objects.get(slug="default")
    assert Automation.objects.get(slug="old").workspace == default
    assert Subject.objects.get(reference="OLD-1").workspace == default
    assert list(
        Membership.objects.filter(user__username="olaf").values_list(
            "workspace__slug", "role"
        )
    ) == [("default", "operator")]


def test_the_work_items_list_and_inbox_keep_to_the_callers_workspaces(lending, aml):
    """GET /api/v1/work-items/ (and ?awaiting=me) narrows items on their own path
    (permissions.work_items_visible_to): an approver of one workspace sees its
    items and none of another's, by session and by token alike."""
    from runs.api.models import ApiClient
    from tests.api.conftest import client_for

    ours, our_item = _awaiting(["workspace:approver"], lending)
    theirs, their_item = _awaiting(["workspace:approver"], aml)
    ines = member("ines", lending, roles=["viewer", "approver"])
    # her token's grants name both automations: the workspace rule still holds
    grants = ApiClient.objects.create(user=ines, name="ines's tool")
    grants.automations.add(ours.automation, theirs.automation)
    for client in (client_for(ines), client_for(ines, token=True)):
        response = client.get("/api/v1/work-items/")
        assert response.status_code == 200, response.content
        listed = response.json()["results"]
        assert {row["run"] for row in listed} == {str(ours.pk)}
        inbox = client.get("/api/v1/work-items/", {"awaiting": "me"}).json()
        assert [row["id"] for row in inbox["results"]] == [our_item.pk]
    assert their_item.run_id == theirs.pk
