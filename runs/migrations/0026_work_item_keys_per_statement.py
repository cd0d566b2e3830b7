"""A work item's keys to its run and to its step, checked once per statement
(PostgreSQL).

A foreign key checks each row it guards on its own: a run of 10,000 inputs
paid 20,000 checks, half the server's time of `run_start`, and each batch of
next items paid two per item. On PostgreSQL these two keys become triggers that
do the same checks once per statement:

- `work_item_keys`, after an INSERT or a COPY of items: every run and every step
  the new rows name exists, locked FOR KEY SHARE as a foreign key's check locks
  it (a concurrent delete of it waits for this transaction, then fails on its
  items; an insert after a delete committed finds the row gone). The rows are
  the statement's transition table; one query reads the runs and steps. On
  the 2-core box of 2026-12-02 a statement of one item cost ~45 µs more server
  CPU than with the two keys, one of 10,000 items ~5 ms instead of ~100 ms.
- `work_item_keys_fixed`: an item's run and step never change (they are
  written once, by the engine); an UPDATE that would change either is refused.
  A check of the new values would have to run for every update of every item.
- `run_keeps_work_items`, `step_keeps_work_items`: the NO ACTION side, deferred
  to the commit like a foreign key's: a run or step that work items name is not
  deleted (nor its id changed). Rare writes, one check per row.

Each refusal is an integrity error (SQLSTATE 23503, foreign_key_violation).
The checks read with a new snapshot per query, which is the product's isolation
level (READ COMMITTED, Django's default); a delete in a REPEATABLE READ
transaction would not see items committed after its snapshot, so another level
is refused at startup (check runs.E004).

SQLite keeps its two foreign keys (its checks cost little in process). The model
still declares both keys, so a later AlterField of either would bring its key
back on PostgreSQL: `tests/runs/test_schema.py` pins the triggers.
"""

from django.db import migrations

TABLE = "runs_workitem"
COLUMNS = ("run_id", "step_id")

CREATE = """
CREATE FUNCTION runs_work_item_keys() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    runs_found boolean;
    steps_found boolean;
BEGIN
    -- one query: each table's rows named, locked, counted against the names
    SELECT (SELECT count(*) FROM (SELECT FROM runs_run
                                  WHERE id IN (SELECT run_id FROM new_items)
                                  FOR KEY SHARE) AS locked)
               = (SELECT count(DISTINCT run_id) FROM new_items),
           (SELECT count(*) FROM (SELECT FROM automations_step
                                  WHERE id IN (SELECT step_id FROM new_items)
                                  FOR KEY SHARE) AS locked)
               = (SELECT count(DISTINCT step_id) FROM new_items)
        INTO runs_found, steps_found;
    IF NOT runs_found THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'insert on table "runs_workitem" names a run that does not '
                      'exist',
            TABLE = 'runs_workitem', COLUMN = 'run_id';
    END IF;
    IF NOT steps_found THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'insert on table "runs_workitem" names a step that does not '
                      'exist',
            TABLE = 'runs_workitem', COLUMN = 'step_id';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER work_item_keys AFTER INSERT ON runs_workitem
    REFERENCING NEW TABLE AS new_items
    FOR EACH STATEMENT EXECUTE FUNCTION runs_work_item_keys();

CREATE FUNCTION runs_work_item_keys_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE foreign_key_violation USING
        MESSAGE = format('work item %s: its run and step never change', OLD.id),
        TABLE = 'runs_workitem';
END $$;

CREATE TRIGGER work_item_keys_fixed BEFORE UPDATE OF run_id, step_id
    ON runs_workitem FOR EACH ROW
    WHEN (OLD.run_id IS DISTINCT FROM NEW.run_id
          OR OLD.step_id IS DISTINCT FROM NEW.step_id)
    EXECUTE FUNCTION runs_work_item_keys_fixed();

CREATE FUNCTION runs_work_items_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.id = NEW.id THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'runs_run' THEN
        PERFORM FROM runs_workitem WHERE run_id = OLD.id LIMIT 1;
    ELSE
        PERFORM FROM runs_workitem WHERE step_id = OLD.id LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('%s %s is still named by work items', TG_TABLE_NAME,
                             OLD.id),
            TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER run_keeps_work_items
    AFTER DELETE OR UPDATE OF id ON runs_run
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    EXECUTE FUNCTION runs_work_items_kept();

CREATE CONSTRAINT TRIGGER step_keeps_work_items
    AFTER DELETE OR UPDATE OF id ON automations_step
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    EXECUTE FUNCTION runs_work_items_kept();
"""

DROP = """
DROP TRIGGER step_keeps_work_items ON automations_step;
DROP TRIGGER run_keeps_work_items ON runs_run;
DROP TRIGGER work_item_keys_fixed ON runs_workitem;
DROP TRIGGER work_item_keys ON runs_workitem;
DROP FUNCTION runs_work_items_kept();
DROP FUNCTION runs_work_item_keys_fixed();
DROP FUNCTION runs_work_item_keys();
"""


def _single_keys(schema_editor) -> list[str]:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    return [
        name
        for name, c in constraints.items()
        if c["foreign_key"] and len(c["columns"]) == 1 and c["columns"][0] in COLUMNS
    ]


def keys_per_statement(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in _single_keys(schema_editor):
        schema_editor.execute(f'ALTER TABLE {TABLE} DROP CONSTRAINT "{name}"')
    schema_editor.execute(CREATE, params=None)


def keys_per_row(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(DROP)
    model = apps.get_model("runs", "WorkItem")
    for column in COLUMNS:
        field = model._meta.get_field(column.removesuffix("_id"))
        schema_editor.execute(
            schema_editor._create_fk_sql(model, field, "_fk_%(to_table)s_%(to_column)s")
        )


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0007_version_author_and_four_eyes"),
        ("runs", "0025_engine_run_item_key"),
    ]

    operations = [migrations.RunPython(keys_per_statement, keys_per_row)]
