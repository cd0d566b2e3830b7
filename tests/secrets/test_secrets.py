"""Secrets at rest, their doors (secret_set, admin) and their audit events."""

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from automations.models import default_workspace_id
from runs.models import AuditEvent, Secret, Webhook
from runs.secrets import crypto
from runs.secrets.services import secret_set
from tests.factories import make_automation

VALUE = "s3cr3t-Pa55word-xyzzy"


def set_secret(name, values, description=None):
    call_command(
        "secret_set",
        name,
        *(["--description", description] if description is not None else []),
        stdin=io.StringIO(json.dumps(values)),
        stdout=io.StringIO(),
    )
    return Secret.objects.get(name=name)


def every_audit_byte() -> str:
    return json.dumps(
        list(AuditEvent.objects.values()), default=str, ensure_ascii=False
    )


def test_secret_set_encrypts_and_the_row_holds_no_value(db):
    secret = set_secret("crm", {"username": "svc", "password": VALUE}, "CRM login")
    assert secret.keys == ["password", "username"]
    assert secret.description == "CRM login"
    assert VALUE not in secret.ciphertext
    row = json.dumps(list(Secret.objects.values()), default=str)
    assert VALUE not in row
    assert secret.get_values() == {"username": "svc", "password": VALUE}


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("not json " + VALUE, "not valid JSON"),
        ('["a"]', "non-empty JSON object"),
        ("{}", "non-empty JSON object"),
        ('{"k": 1}', "must be a string"),
        ('{"k": ""}', "is empty"),
        ('{"bad key": "v"}', "letters, digits"),
        ('{"k": NaN}', "not valid JSON"),
        ('{"k": "\\ud800"}', "lone surrogate"),
        (json.dumps({"k": "x" * 20_000}), "over 16384"),
        ("[" * 100_000, "not valid JSON"),
        ("[" * 200_000, "over 131072 bytes"),
    ],
)
def test_secret_set_refuses_bad_values_without_echoing_them(db, stdin, message):
    with pytest.raises(CommandError) as caught:
        call_command("secret_set", "crm", stdin=io.StringIO(stdin))
    assert message in str(caught.value)
    assert VALUE not in str(caught.value)
    assert not Secret.objects.exists()


def test_secret_set_refuses_a_bad_name(db):
    with pytest.raises(CommandError, match="Letters, digits"):
        call_command("secret_set", "no spaces", stdin=io.StringIO('{"k": "v"}'))
    assert not Secret.objects.exists()


def test_create_rotate_delete_are_audit_events_without_values(db):
    secret = set_secret("crm", {"password": VALUE})
    set_secret("crm", {"password": VALUE + "-2", "username": "svc"})
    Secret.objects.get(name="crm").delete()
    events = list(AuditEvent.objects.filter(object_type="runs.secret").order_by("seq"))
    assert [e.verb for e in events] == [
        "secret.created",
        "secret.changed",
        "secret.deleted",
    ]
    created, changed, deleted = events
    assert created.object_id == str(secret.pk)
    assert created.after["name"] == "crm"
    assert created.after["keys"] == ["password"]
    assert created.after["ciphertext"] == "[redacted]"
    assert created.actor_label == "manage.py secret_set"
    assert changed.before["keys"] == ["password"]
    assert changed.after["keys"] == ["password", "username"]
    assert deleted.before["name"] == "crm"
    text = every_audit_byte()
    assert VALUE not in text
    assert secret.ciphertext not in text


def test_rotation_keeps_every_secret_and_webhook_secret_readable(db, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.RUNS_SECRET_KEYS = [old]
    secret_set("crm", {"password": VALUE})
    hook = Webhook.objects.create(
        automation=make_automation(), url="http://127.0.0.1:9/hook"
    )
    plain_hook_secret = hook.secret
    settings.RUNS_SECRET_KEYS = [new, old]  # a new key first: both decrypt
    assert Secret.objects.get(name="crm").get_values() == {"password": VALUE}
    out = io.StringIO()
    call_command("secrets_reencrypt", stdout=out)
    assert "re-encrypted 1 secret(s) and 1 webhook secret(s)" in out.getvalue()
    event = AuditEvent.objects.get(verb="secrets.reencrypted")
    assert event.after == {"secrets": 1, "webhooks": 1, "keys": 2}
    assert event.actor_label == "manage.py secrets_reencrypt"
    settings.RUNS_SECRET_KEYS = [new]  # the old key dropped
    assert Secret.objects.get(name="crm").get_values() == {"password": VALUE}
    assert Webhook.objects.get(pk=hook.pk).secret == plain_hook_secret
    # a key that opens nothing: reading says so, re-encrypting rewrites nothing
    settings.RUNS_SECRET_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.UndecryptableError):
        Secret.objects.get(name="crm").get_values()
    with pytest.raises(CommandError, match="nothing was re-encrypted"):
        call_command("secrets_reencrypt")
    assert AuditEvent.objects.filter(verb="secrets.reencrypted").count() == 1
    settings.RUNS_SECRET_KEYS = [new]
    assert Secret.objects.get(name="crm").get_values() == {"password": VALUE}


def test_unset_keys_derive_from_secret_key_and_deploy_check_warns(db, settings):
    from runs.secrets.checks import secret_keys_set, secret_keys_valid

    settings.RUNS_SECRET_KEYS = []
    secret_set("crm", {"password": VALUE})
    assert Secret.objects.get(name="crm").get_values() == {"password": VALUE}
    assert [w.id for w in secret_keys_set()] == ["runs.W311"]
    settings.RUNS_SECRET_KEYS = ["not-a-fernet-key"]
    assert [e.id for e in secret_keys_valid()] == ["runs.E311"]
    settings.RUNS_SECRET_KEYS = [Fernet.generate_key().decode()]
    assert secret_keys_set() == [] and secret_keys_valid() == []


def test_webhook_secret_is_encrypted_in_its_column_and_still_signs(db):
    from django.db import connection

    from runs.webhooks.services import signature, signature_verify

    hook = Webhook.objects.create(
        automation=make_automation(), url="http://127.0.0.1:9/hook"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM runs_webhook WHERE id = %s", [hook.pk])
        (stored,) = cursor.fetchone()
    assert stored != hook.secret and hook.secret not in stored
    assert crypto.decrypt(stored) == hook.secret
    header = signature(Webhook.objects.get(pk=hook.pk).secret, "1", "{}")
    assert signature_verify(hook.secret, "1", "{}", header, tolerance=10**10)


def test_the_data_migration_encrypts_plain_webhook_secrets(db):
    import importlib

    from django.db import connection

    migration = importlib.import_module("runs.migrations.0015_secrets")
    hook = Webhook.objects.create(
        automation=make_automation(), url="http://127.0.0.1:9/hook"
    )
    with connection.cursor() as cursor:  # as before the migration: plain
        cursor.execute(
            "UPDATE runs_webhook SET secret = %s WHERE id = %s", ["plain-old", hook.pk]
        )
    migration.webhook_secrets_encrypt_on(connection)
    migration.webhook_secrets_encrypt_on(connection)  # twice: still once
    assert Webhook.objects.get(pk=hook.pk).secret == "plain-old"


def test_api_token_create_and_revoke_are_audited_without_the_digest(db, user):
    from runs.api.tokens import api_token_create, api_token_revoke

    token, key = api_token_create(user=user, name="ci", expires_days=5)
    api_token_revoke(token=token)
    events = AuditEvent.objects.filter(verb__startswith="api_token.").order_by("seq")
    assert [(e.verb, (e.after or e.before)["name"]) for e in events] == [
        ("api_token.created", "ci"),
        ("api_token.revoked", "ci"),
    ]
    text = every_audit_byte()
    assert token.digest not in text and key not in text
    assert token.token_key not in text


# -- admin ----------------------------------------------------------------------


def test_author_writes_values_in_admin_and_never_sees_them(client, author):
    client.force_login(author)
    add = reverse("admin:runs_secret_add")
    assert client.get(add).status_code == 200
    response = client.post(
        add,
        {
            "workspace": default_workspace_id(),
            "name": "crm",
            "description": "",
            "values": json.dumps({"pw": VALUE}),
        },
    )
    assert response.status_code == 302, response.content
    secret = Secret.objects.get(name="crm")
    assert secret.get_values() == {"pw": VALUE}
    change = reverse("admin:runs_secret_change", args=[secret.pk])
    page = client.get(change).content.decode()
    assert "pw" in page and VALUE not in page
    assert secret.ciphertext not in page
    # a form that fails does not render what was typed
    typed = json.dumps({"pw": 5, "x": VALUE})
    bad = client.post(change, {"name": "crm", "values": typed})
    assert bad.status_code == 200 and VALUE not in bad.content.decode()
    # empty values keep the stored ones
    client.post(change, {"name": "crm", "description": "now described", "values": ""})
    secret.refresh_from_db()
    assert secret.description == "now described"
    assert secret.get_values() == {"pw": VALUE}
    for url in (reverse("admin:runs_secret_changelist"), change + "../history/"):
        assert VALUE not in client.get(url).content.decode()


def test_viewer_sees_names_only_and_cannot_change(client, viewer):
    secret = secret_set("crm", {"pw": VALUE})[0]
    client.force_login(viewer)
    listing = client.get(reverse("admin:runs_secret_changelist")).content.decode()
    assert "crm" in listing and VALUE not in listing
    change = reverse("admin:runs_secret_change", args=[secret.pk])
    page = client.get(change)
    assert page.status_code == 200 and VALUE not in page.content.decode()
    assert 'name="values"' not in page.content.decode()
    client.post(change, {"name": "crm", "values": json.dumps({"pw": "other"})})
    assert Secret.objects.get(pk=secret.pk).get_values() == {"pw": VALUE}
    assert client.get(reverse("admin:runs_secret_add")).status_code == 403


def test_nobody_without_permission_cannot_see_secrets(client, nobody):
    nobody.is_staff = True
    nobody.save()
    client.force_login(nobody)
    assert client.get(reverse("admin:runs_secret_changelist")).status_code == 403
