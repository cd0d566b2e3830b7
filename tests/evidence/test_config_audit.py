"""Configuration changes are audit events in the global chain, whichever door
they came through (runs.evidence.config)."""

import io
import json
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse

from automations.models import Automation, Step, Trigger
from runs.api.models import ApiClient
from runs.evidence.config import REDACTED
from runs.ledger import GLOBAL_CHAIN
from runs.models import AuditEvent
from runs.webhooks.models import Webhook


def events(verb=None, since=0, **filters):
    rows = AuditEvent.objects.filter(chain=GLOBAL_CHAIN, seq__gt=since, **filters)
    rows = rows.order_by("seq")
    return list(rows.filter(verb=verb) if verb else rows)


def verify_audit_passes():
    out = io.StringIO()
    call_command("verify_audit", stdout=out, stderr=io.StringIO())
    return "every chain is intact" in out.getvalue()


class _Form(HTMLParser):
    """The fields of a page's form as a browser would post them."""

    def __init__(self):
        super().__init__()
        self.data, self._select, self._textarea = {}, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if (
            tag == "input"
            and name
            and a.get("type") not in ("submit", "button", "file")
        ):
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.data.setdefault(name, []).append(a.get("value", "on"))
            else:
                self.data[name] = [a.get("value", "")]
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select].append(a.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = [""]

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        if tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] = [self.data[self._textarea][0] + data]


def form_data(client, url) -> dict:
    parser = _Form()
    parser.feed(client.get(url).content.decode())
    return {k: v for k, v in parser.data.items() if k != "csrfmiddlewaretoken"}


@pytest.fixture
def admin_client(client, db):
    admin = get_user_model().objects.create_superuser("root", password="pw")
    client.force_login(admin)
    return client


def test_admin_change_form_records_before_and_after(admin_client, automation):
    auto = automation(slug="kyc")
    url = reverse("admin:automations_automation_change", args=[auto.pk])
    data = form_data(admin_client, url)
    data["name"] = ["Weekly KYC review"]
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    (event,) = events("automation.changed")
    assert event.before == {"name": "Kyc"} and event.after == {
        "name": "Weekly KYC review"
    }
    assert event.actor_label == "root" and event.object_id == str(auto.pk)
    assert event.object_type == "automations.automation"
    assert verify_audit_passes()


def test_admin_inline_records_each_trigger_added_changed_and_deleted(
    admin_client, automation
):
    auto = automation(slug="kyc", triggers=[{"kind": "manual"}, {"kind": "api"}])
    manual, api = auto.triggers.order_by("id")
    url = reverse("admin:automations_automation_change", args=[auto.pk])
    data = form_data(admin_client, url)
    total = int(data["triggers-TOTAL_FORMS"][0])
    prefix = f"triggers-{total}-"
    data.update(
        {
            "triggers-TOTAL_FORMS": [str(total + 1)],
            prefix + "kind": ["schedule"],
            prefix + "cron": ["0 6 * * 1"],
            prefix + "enabled": ["on"],
            prefix + "senders": ["[]"],
            prefix + "automation": [str(auto.pk)],
        }
    )
    index = {data[f"triggers-{i}-id"][0]: i for i in range(total)}
    data[f"triggers-{index[str(api.pk)]}-DELETE"] = ["on"]
    data.pop(f"triggers-{index[str(manual.pk)]}-enabled", None)  # untick enabled
    since = events()[-1].seq
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:3000]
    (created,) = events("trigger.created", since)
    assert created.after["kind"] == "schedule" and created.after["cron"] == "0 6 * * 1"
    assert created.before == {} and "last_fired_at" not in created.after
    (deleted,) = events("trigger.deleted")
    assert deleted.object_id == str(api.pk) and deleted.before["kind"] == "api"
    (changed,) = events("trigger.changed")
    assert changed.before == {"enabled": True} and changed.after == {"enabled": False}
    assert {e.actor_label for e in (created, deleted, changed)} == {"root"}
    assert not Trigger.objects.filter(pk=api.pk).exists()
    assert verify_audit_passes()


def test_admin_step_inline_on_a_draft_version(admin_client, automation):
    auto = automation(slug="draft", publish=False)
    version = auto.latest_version()
    url = reverse("admin:automations_automationversion_change", args=[version.pk])
    data = form_data(admin_client, url)
    data["steps-0-batch_size"] = ["25"]
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:3000]
    (event,) = events("step.changed")
    assert event.before == {"batch_size": 100} and event.after == {"batch_size": 25}
    assert event.object_id == str(version.steps.get().pk)


def test_admin_delete_records_the_deleted_row(admin_client, automation):
    auto = automation(slug="kyc", triggers=[{"kind": "schedule", "cron": "0 6 * * 1"}])
    trigger = auto.triggers.get()
    url = reverse("admin:automations_trigger_delete", args=[trigger.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    (event,) = events("trigger.deleted")
    assert event.before["cron"] == "0 6 * * 1" and event.before["automation"] == auto.pk
    assert event.after == {} and event.actor_label == "root"
    assert verify_audit_passes()


def test_webhook_secret_is_redacted_in_every_event(admin_client, automation):
    auto = automation(slug="kyc")
    url = reverse("admin:runs_webhook_add")
    data = {
        "automation": str(auto.pk),
        "url": "https://hooks.example/x",
        "secret": "s3cr3t-value-1",
        "events": "[]",
        "is_active": "on",
    }
    assert admin_client.post(url, data).status_code == 302
    hook = Webhook.objects.get()
    (created,) = events("webhook.created")
    assert created.after["secret"] == REDACTED and created.after["url"] == data["url"]
    hook.secret = "s3cr3t-value-2"
    hook.save()
    (changed,) = events("webhook.changed")
    assert changed.before == {"secret": REDACTED} and changed.after == {
        "secret": REDACTED
    }
    hook.delete()
    (deleted,) = events("webhook.deleted")
    assert deleted.before["secret"] == REDACTED
    stored = json.dumps([[e.before, e.after, e.reason] for e in events()])
    assert "s3cr3t" not in stored
    assert verify_audit_passes()


def test_import_automations_command_records_versions_steps_and_triggers(db, tmp_path):
    since = get_user_model().objects.create_user("ada") and events()[-1].seq
    definition = {
        "slug": "kyc",
        "name": "KYC",
        "publish": True,
        "owners": ["ada"],
        "steps": [
            {"name": "a", "action": "builtin.echo"},
            {"name": "b", "action": "builtin.echo"},
        ],
        "triggers": [{"kind": "api"}, {"kind": "schedule", "cron": "0 6 * * 1"}],
    }
    path = tmp_path / "kyc.json"
    path.write_text(json.dumps(definition))
    call_command("import_automations", str(path), stdout=io.StringIO())
    auto = Automation.objects.get(slug="kyc")
    (created,) = events("automation.created", since)
    assert created.after["slug"] == "kyc" and created.object_id == str(auto.pk)
    (owners,) = events("automation.owners_changed", since)
    assert owners.before == {"owners": []} and owners.after == {"owners": ["ada"]}
    (version,) = events("version.created", since)
    assert version.after["number"] == 1
    steps = events("step.created", since)
    assert [e.after["name"] for e in steps] == ["a", "b"]
    assert {e.after["kind"] for e in events("trigger.created", since)} == {
        "api",
        "schedule",
    }
    assert len(events("version.published", since)) == 1
    labels = {e.actor_label for e in events(since=since)}
    assert labels == {"manage.py import_automations"}

    # the same file again changes nothing, and records nothing
    count = len(events())
    call_command("import_automations", str(path), stdout=io.StringIO())
    assert len(events()) == count

    # a trigger dropped from the file is deleted, with its row in before
    definition["triggers"] = [{"kind": "api"}]
    path.write_text(json.dumps(definition))
    call_command("import_automations", str(path), stdout=io.StringIO())
    (deleted,) = events("trigger.deleted")
    assert deleted.before["cron"] == "0 6 * * 1"
    assert Step.objects.filter(version__automation=auto).count() == 2
    assert verify_audit_passes()


def test_group_membership_changes_from_both_sides(admin_client, db):
    group = Group.objects.create(name="Night shift")
    (created,) = events("group.created")
    assert created.after == {"name": "Night shift"}
    user = get_user_model().objects.create_user("olivia")
    user.groups.add(group)
    (added,) = events("user.groups_changed")
    assert added.before == {"groups": []} and added.after == {"groups": ["Night shift"]}
    assert added.object_id == str(user.pk)
    group.user_set.remove(user)  # the reverse side: still an event on the user
    removed = events("user.groups_changed")[-1]
    assert removed.before == {"groups": ["Night shift"]} and removed.after == {
        "groups": []
    }
    assert verify_audit_passes()


def test_admin_user_form_group_change_names_the_admin(admin_client, db):
    group = Group.objects.create(name="Reviewers")
    user = get_user_model().objects.create_user("victor", password="pw")
    url = reverse("admin:auth_user_change", args=[user.pk])
    data = form_data(admin_client, url)
    data["groups"] = [str(group.pk)]
    data["is_staff"] = ["on"]
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:3000]
    (groups,) = events("user.groups_changed", object_id=str(user.pk))
    assert groups.after == {"groups": ["Reviewers"]} and groups.actor_label == "root"
    changed = events("user.changed", object_id=str(user.pk))
    assert changed[-1].before == {"is_staff": False}
    assert changed[-1].after == {"is_staff": True}
    # the password hash is never in the ledger, only the marker
    (made,) = events("user.created", object_id=str(user.pk))
    assert made.after["password"] == REDACTED
    assert user.password not in json.dumps([e.after for e in events()])


def test_group_permissions_and_api_client_grants(db, automation):
    from django.contrib.auth.models import Permission

    auto = automation(slug="kyc")
    group = Group.objects.create(name="Auditors")
    group.permissions.add(Permission.objects.get(codename="view_run"))
    (perms,) = events("group.permissions_changed")
    assert perms.after == {"permissions": ["runs.view_run"]}
    client = ApiClient.objects.create(
        user=get_user_model().objects.create_user("bot"), name="GRC"
    )
    client.automations.add(auto)
    (grant,) = events("api_client.automations_changed")
    assert grant.before == {"automations": []} and grant.after == {
        "automations": ["kyc"]
    }
    client.user.delete()  # the client goes with its user, and says so
    (gone,) = events("api_client.deleted")
    assert gone.before["automations"] == ["kyc"] and gone.before["name"] == "GRC"
    assert verify_audit_passes()


def test_a_login_records_nothing(client, db):
    get_user_model().objects.create_user("victor", password="pw")
    count = len(events())
    assert client.login(username="victor", password="pw")
    assert len(events()) == count


def test_a_deleted_group_names_its_members(db):
    group = Group.objects.create(name="Night shift")
    user = get_user_model().objects.create_user("olivia")
    user.groups.add(group)
    group.delete()
    (gone,) = events("group.deleted")
    assert gone.before["name"] == "Night shift"
    assert gone.before["groups_of"] == ["olivia"]
    assert verify_audit_passes()


def test_admin_definitions_import_names_the_person_and_the_preview_leaves_none(
    admin_client,
):
    definition = {
        "slug": "imported",
        "name": "Imported",
        "publish": True,
        "steps": [{"name": "a", "action": "builtin.echo"}],
        "triggers": [{"kind": "api"}],
    }
    url = reverse("admin:automations_automation_import_definitions")
    upload = io.BytesIO(json.dumps([definition]).encode())
    upload.name = "defs.json"
    since = events()[-1].seq if events() else 0
    preview = admin_client.post(url, {"file": upload})
    assert events(since=since) == []  # the preview was rolled back, events too
    response = admin_client.post(url, {"payload": preview.context["payload"]})
    assert response.status_code == 302
    recorded = events(since=since)
    assert {e.verb for e in recorded} >= {
        "automation.created",
        "version.created",
        "step.created",
        "trigger.created",
        "version.published",
    }
    assert {e.actor_label for e in recorded} == {"root"}
    assert verify_audit_passes()
