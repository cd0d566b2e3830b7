"""Two workspaces, each with an automation that ran, and a person of each.

`lending` is ours (Lena holds every workspace role there and nothing tenant-wide);
`aml` is foreign: every object of it must stay invisible to Lena.
"""

import datetime
import json

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from automations.models import Subject, Workspace
from automations.services import workspace_grant
from runs.api.models import ApiClient, IdempotencyKey
from runs.engine import run_until_idle
from runs.mail.models import AutomationSubscription, InboundMessage, Notification
from runs.models import (
    ActionResult,
    AuditEvent,
    Run,
    RunItem,
    WorkItem,
    WorkItemFile,
)
from runs.regression.services import test_case_add
from runs.secrets.services import secret_set
from runs.services import run_start
from runs.webhooks.models import Webhook
from tests.factories import groups_ensure, make_automation, make_user
from tests.robots.conftest import held_step_run, register_robot  # noqa: F401

FOREIGN_SLUG = "aml-secret"
ROLES = ("viewer", "operator", "approver", "author")


def member(username, workspace, roles=ROLES):
    groups_ensure()
    user = make_user(username)
    for role in roles:
        workspace_grant(user=user, workspace=workspace, role=role)
    return type(user).objects.get(pk=user.pk)  # fresh: empty permission caches


def ran(slug, workspace):
    auto = make_automation(
        "builtin.echo", "test.business_fail", slug=slug, workspace=workspace.slug
    )
    Webhook.objects.create(automation=auto, url="http://127.0.0.1:9/hook")
    run = run_start(automation=auto, inputs=[{"subject": f"{slug}-ok"}, {"bad": True}])
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == "unresolved"
    return auto, run


@pytest.fixture
def lena(lending):
    return member("lena", lending)


@pytest.fixture
def arno(aml):
    return member("arno", aml)


@pytest.fixture
def own(lending):
    return ran("loan-review", lending)


@pytest.fixture
def foreign(aml, arno):
    """The foreign automation and run, with one object of every kind around it."""
    auto, run = ran(FOREIGN_SLUG, aml)
    item = WorkItem.objects.filter(run=run).order_by("id").first()
    stored = WorkItemFile(work_item=item, name="secret.txt", size=6)
    stored.file.save("aml/secret.txt", ContentFile(b"secret"), save=False)
    stored.save()
    Subject.objects.create(workspace=aml, kind="account", reference="AML-1")
    other = run_start(automation=auto, inputs=[{"subject": "x"}])
    run_until_idle(other)
    test_case_add(other, actor=arno, name="aml case")
    ActionResult.objects.create(idempotency_key=f"{run.pk}:k", run=run)
    IdempotencyKey.objects.create(
        user=arno,
        automation=auto,
        key="k1",
        request_hash="0" * 64,
        run=run,
        expires_at=timezone.now() + datetime.timedelta(days=1),
    )
    InboundMessage.objects.create(
        automation=auto, run=run, source="stdin", outcome="accepted", subject="aml"
    )
    AutomationSubscription.objects.create(automation=auto, user=arno)
    Notification.objects.create(
        run=run, user=arno, email="arno@example.com", state="failed", mode="digest"
    )
    ApiClient.objects.create(user=arno, name="aml-client").automations.add(auto)
    # a secret named like the foreign automation: no page of ours may show it
    secret_set(FOREIGN_SLUG, {"token": "aml-secret-value"}, workspace=aml.slug)
    return auto, run


def snapshot(run):
    run = Run.objects.get(pk=run.pk)
    return {
        "state": run.state,
        "archived": run.archived,
        "is_test_case": run.is_test_case,
        "items": sorted(
            WorkItem.objects.filter(run=run).values_list("pk", "state", "attempts")
        ),
        "events": AuditEvent.objects.filter(run=run).count(),
        "run_items": RunItem.objects.filter(run=run).count(),
        "runs": Run.objects.filter(automation_id=run.automation_id).count(),
        "automation": json.dumps(
            list(
                type(run.automation)
                .objects.filter(pk=run.automation_id)
                .values("name", "status", "workspace_id")
            )
        ),
        "workspaces": Workspace.objects.count(),
    }
