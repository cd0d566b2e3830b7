"""Less server work per run item written (PostgreSQL).

- A run item's three foreign keys (run, work item, step) become one on
  PostgreSQL: (run_id, work_item_id, step_id) references the work item's own
  (run_id, id, step_id), so a run item names its work item's run and step (the
  engine always wrote them so) and their existence follows from the work item's
  own keys. One deferred check per run item at commit instead of three. The
  unique constraint it references replaces the run-order index (run_id, id):
  the same prefix serves the run's items in order. SQLite keeps its three keys
  (adding a key there rebuilds the table; its checks cost little in process).
- No index on the run item's idempotency_key nor its subject: the admin's
  search by key reads the run items of the work item the key names, by subject
  those of the work items of that subject (a run item's subject is its work
  item's; `RunItemAdmin`); replays read ActionResult.

The model still declares the three keys, so a later AlterField of one of them
would bring its single key back on PostgreSQL: `tests/runs/test_schema.py` pins
the one key.
"""

from django.db import migrations, models

COMPOSITE = "run_item_work_item_run_step"
COLUMNS = ("run_id", "work_item_id", "step_id")


def _single_keys(schema_editor) -> list[str]:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "runs_runitem")
    return [
        name
        for name, c in constraints.items()
        if c["foreign_key"] and len(c["columns"]) == 1 and c["columns"][0] in COLUMNS
    ]


def one_key(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in _single_keys(schema_editor):
        schema_editor.execute(f'ALTER TABLE runs_runitem DROP CONSTRAINT "{name}"')
    schema_editor.execute(
        f"ALTER TABLE runs_runitem ADD CONSTRAINT {COMPOSITE} "
        "FOREIGN KEY (run_id, work_item_id, step_id) "
        "REFERENCES runs_workitem (run_id, id, step_id) "
        "DEFERRABLE INITIALLY DEFERRED"
    )


def three_keys(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"ALTER TABLE runs_runitem DROP CONSTRAINT {COMPOSITE}")
    model = apps.get_model("runs", "RunItem")
    for column in COLUMNS:
        field = model._meta.get_field(column.removesuffix("_id"))
        schema_editor.execute(
            schema_editor._create_fk_sql(model, field, "_fk_%(to_table)s_%(to_column)s")
        )


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0007_version_author_and_four_eyes"),
        ("runs", "0024_run_fewer_indexes"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="runitem",
            name="run_item_idempotency_key",
        ),
        migrations.RemoveIndex(
            model_name="runitem",
            name="run_item_subject",
        ),
        migrations.RemoveIndex(
            model_name="workitem",
            name="work_item_run_order",
        ),
        migrations.AddConstraint(
            model_name="workitem",
            constraint=models.UniqueConstraint(
                fields=("run", "id", "step"), name="work_item_run_order"
            ),
        ),
        migrations.RunPython(one_key, three_keys),
    ]
