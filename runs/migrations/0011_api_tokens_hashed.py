"""Hashed, expiring API tokens (django-rest-knox), and the migration path for the
plain-text DRF tokens: each existing `authtoken` key is hashed into runs.ApiToken
(the same key keeps working, with no expiry, named "migrated DRF token") and its
plain-text row is deleted. Tokens made later with `drf_create_token` keep working
through the legacy fallback of runs.api.authentication."""

import django.db.models.deletion
from django.apps import apps as global_apps
from django.conf import settings
from django.db import migrations, models
from knox.crypto import hash_token
from knox.settings import CONSTANTS


def legacy_tokens_hash(apps, schema_editor):
    try:
        Token = apps.get_model("authtoken", "Token")
    except LookupError:  # a host project without rest_framework.authtoken
        return
    ApiToken = apps.get_model("runs", "ApiToken")
    for legacy in Token.objects.all().iterator():
        ApiToken.objects.bulk_create(  # not knox's create(): that makes a new key
            [
                ApiToken(
                    digest=hash_token(legacy.key),
                    token_key=legacy.key[: CONSTANTS.TOKEN_KEY_LENGTH],
                    user_id=legacy.user_id,
                    expiry=None,
                    name="migrated DRF token",
                )
            ]
        )
        Token.objects.filter(pk=legacy.pk).delete()


AUTHTOKEN = (
    [("authtoken", "0004_alter_tokenproxy_options")]
    if global_apps.is_installed("rest_framework.authtoken")
    else []
)


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0001_initial"),
        ("runs", "0010_work_item_run_order"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        *AUTHTOKEN,
    ]

    operations = [
        migrations.AlterField(
            model_name="apiclient",
            name="automations",
            field=models.ManyToManyField(
                blank=True,
                help_text="Automations whose runs this client may start, read and control over the API (with its user's permissions).",
                related_name="api_clients",
                to="automations.automation",
            ),
        ),
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                (
                    "digest",
                    models.CharField(max_length=128, primary_key=True, serialize=False),
                ),
                ("token_key", models.CharField(db_index=True, max_length=25)),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("expiry", models.DateTimeField(blank=True, null=True)),
                ("name", models.CharField(blank=True, max_length=200)),
                (
                    "last_used_at",
                    models.DateTimeField(blank=True, editable=False, null=True),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="auth_token_set",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "API token",
                "ordering": ["-created"],
            },
        ),
        migrations.RunPython(legacy_tokens_hash, migrations.RunPython.noop),
    ]
