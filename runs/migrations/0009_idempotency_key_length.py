"""Idempotency keys of the longest action keys fit: "<run>:<item>:<action>" is up to
258 characters (runs.models.ledger.IDEMPOTENCY_KEY_MAX_LENGTH)."""

from django.db import migrations, models


class AlterFieldOutsideSQLite(migrations.AlterField):
    """SQLite does not enforce a varchar's length, and altering a column there remakes
    the table: every run item would be copied for nothing. The state changes
    everywhere; the column only where the length is enforced (PostgreSQL: widening
    a varchar rewrites nothing)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "sqlite":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "sqlite":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0008_item_checks_without_in_lists"),
    ]

    operations = [
        AlterFieldOutsideSQLite(
            model_name="actionresult",
            name="idempotency_key",
            field=models.CharField(max_length=258, primary_key=True, serialize=False),
        ),
        AlterFieldOutsideSQLite(
            model_name="runitem",
            name="idempotency_key",
            field=models.CharField(max_length=258),
        ),
    ]
