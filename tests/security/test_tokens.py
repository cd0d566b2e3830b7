"""Issue 20, finding 15 (the token half): API tokens were DRF `authtoken` keys, kept
in plain text and never expiring. Now they are django-rest-knox tokens (a SHA-512
digest at rest), with an expiry and a last use, shown once by `api_token_create`;
requests keep sending `Authorization: Token <key>`, and legacy DRF tokens keep
working (and are hashed into the new table by the migration)."""

import datetime
import importlib
import io

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from runs.api.models import ApiClient, ApiToken
from runs.api.tokens import api_token_create, api_token_revoke
from runs.models import AuditEvent
from tests.factories import make_user


def me(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/me/")


def create_command(*args) -> str:
    """stdout (the key alone, for `KEY=$(...)`) then stderr (what it is)."""
    out, err = io.StringIO(), io.StringIO()
    call_command("api_token_create", *args, stdout=out, stderr=err)
    assert len(out.getvalue().split()) == 1
    return out.getvalue() + err.getvalue()


def every_stored_text() -> str:
    """Every row of the token tables as text: a key must appear in none of them."""
    rows = []
    with connection.cursor() as cursor:
        for table in (ApiToken._meta.db_table, Token._meta.db_table):
            cursor.execute(f"SELECT * FROM {table}")  # table names are ours
            rows.extend(cursor.fetchall())
    return repr(rows)


def test_command_prints_a_token_once_and_stores_only_its_digest(db):
    user = make_user("erp")
    out = create_command("erp", "--name", "ERP nightly", "--expires-days", "30")
    key = out.strip().splitlines()[0]
    assert len(key) >= 40 and " " not in key
    assert key not in every_stored_text()
    token = ApiToken.objects.get()
    assert (token.user, token.name) == (user, "ERP nightly")
    assert token.expiry > timezone.now() + datetime.timedelta(days=29)
    assert "not shown again" in out
    response = me(key)
    assert response.status_code == 200, response.content
    assert response.json() == {"username": "erp", "auth": "token"}


def test_default_expiry_and_bad_arguments(db):
    make_user("erp")
    create_command("erp")
    assert ApiToken.objects.get().expiry is not None  # no token lives forever
    with pytest.raises(CommandError, match="no user"):
        create_command("nobody-here")
    for days in ("0", "-1", "100000"):
        with pytest.raises(CommandError, match="expires-days"):
            create_command("erp", "--expires-days", days)
    assert ApiToken.objects.count() == 1


def test_expired_token_is_401_and_stays_listed(db):
    token, key = api_token_create(user=make_user("erp"), expires_days=1)
    assert me(key).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(
        expiry=timezone.now() - datetime.timedelta(seconds=1)
    )
    response = me(key)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert ApiToken.objects.filter(pk=token.pk).exists()  # admin still shows it


def test_use_is_recorded(db):
    token, key = api_token_create(user=make_user("erp"), expires_days=1)
    assert token.last_used_at is None
    me(key)
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None


def test_revoked_token_is_401_and_both_are_in_the_ledger(db):
    admin = make_user("root", is_superuser=True)
    token, key = api_token_create(user=make_user("erp"), name="ERP", actor=admin)
    api_token_revoke(token=token, actor=admin)
    assert me(key).status_code == 401
    events = AuditEvent.objects.filter(verb__startswith="api_token.").order_by("seq")
    assert [(e.verb, e.actor, e.chain) for e in events] == [
        ("api_token.created", admin, "global"),
        ("api_token.revoked", admin, "global"),
    ]
    assert all(key not in repr(e.after) + e.object_id for e in events)
    call_command("verify_audit", stdout=io.StringIO())  # the chain holds


def test_inactive_user_token_is_401(db):
    user = make_user("erp")
    _, key = api_token_create(user=user)
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    assert me(key).status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Token", "Token a b", "Token \xe9\xe9", "Token " + "0" * 64, "Token short"],
)
def test_malformed_tokens_are_401_never_500(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get("/api/v1/me/").status_code == 401


def test_legacy_drf_token_keeps_working_and_is_narrowed_too(db, automation):
    user = make_user("old-script", ["view_run"])
    out = io.StringIO()
    call_command("drf_create_token", "old-script", stdout=out)
    key = Token.objects.get(user=user).key
    response = me(key)
    assert response.status_code == 200 and response.json()["auth"] == "token"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    from runs.services import run_start

    run = run_start(automation=automation())
    assert client.get(f"/api/v1/runs/{run.pk}/").status_code == 404  # no API client
    ApiClient.objects.create(user=user, name="old").automations.add(run.automation)
    assert client.get(f"/api/v1/runs/{run.pk}/").status_code == 200


def test_migration_hashes_legacy_tokens_so_the_same_keys_keep_working(db):
    user = make_user("old-script")
    legacy = Token.objects.create(user=user)
    key = legacy.key
    migration = importlib.import_module("runs.migrations.0011_api_tokens_hashed")
    migration.legacy_tokens_hash(django_apps, None)
    assert not Token.objects.exists()  # no plain-text key left at rest
    assert key not in every_stored_text()
    token = ApiToken.objects.get(user=user)
    assert token.name == "migrated DRF token" and token.expiry is None
    assert me(key).status_code == 200


def test_admin_lists_tokens_without_keys_and_revokes(db, client):
    admin = make_user("root", is_superuser=True, is_staff=True)
    token, key = api_token_create(user=make_user("erp"), name="ERP nightly")
    client.force_login(admin)
    page = client.get("/admin/runs/apitoken/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "ERP nightly" in html
    assert key not in html and key[:15] not in html
    assert client.get("/admin/runs/apitoken/add/").status_code == 403
    action = {"action": "delete_selected", "_selected_action": [token.pk]}
    confirm = client.post("/admin/runs/apitoken/", action)
    assert confirm.status_code == 200 and ApiToken.objects.exists()  # asks first
    response = client.post("/admin/runs/apitoken/", {**action, "post": "yes"})
    assert response.status_code == 302
    assert not ApiToken.objects.exists()
    assert me(key).status_code == 401
    assert AuditEvent.objects.filter(verb="api_token.revoked", actor=admin).exists()


def test_system_check_names_the_token_settings(monkeypatch, settings):
    from knox.settings import knox_settings

    from runs.checks import api_token_model

    assert api_token_model() == []
    monkeypatch.setattr(knox_settings, "TOKEN_MODEL", "knox.AuthToken")
    settings.MIGRATION_MODULES = {}
    error, warning = api_token_model()
    assert error.id == "runs.E010" and "runs.ApiToken" in error.hint
    assert warning.id == "runs.W010" and "MIGRATION_MODULES" in warning.hint


def test_admin_token_list_has_a_fixed_query_count(db, client):
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    client.force_login(make_user("root", is_superuser=True, is_staff=True))
    counts = []
    for n in (1, 6):
        while ApiToken.objects.count() < n:
            api_token_create(user=make_user(f"u{ApiToken.objects.count()}"))
        with CaptureQueriesContext(conn) as queries:
            assert client.get("/admin/runs/apitoken/").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
