"""The database itself refuses values outside a work item's or run item's choices,
with checks SQLite evaluates cheaply on every row the engine writes."""

import pytest
from django.db import IntegrityError, connection, transaction

from runs.engine import step_run_execute
from runs.models import RunItem, StepRun, WorkItem
from runs.services import run_start


@pytest.fixture
def run(automation):
    run = run_start(automation=automation("builtin.echo"), inputs=[{"subject": "a"}])
    step_run_execute(StepRun.objects.get(run=run).pk)
    return run


@pytest.mark.parametrize(
    "model,column,value",
    [
        (WorkItem, "state", "finished"),
        (WorkItem, "failure_type", "transient"),
        (RunItem, "outcome", "succeeded_maybe"),
        (RunItem, "failure_type", "transient"),
    ],
)
def test_a_value_outside_the_choices_is_refused(run, model, column, value):
    table = connection.ops.quote_name(model._meta.db_table)
    with (
        pytest.raises(IntegrityError),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            f"UPDATE {table} SET {connection.ops.quote_name(column)} = %s", [value]
        )
    assert not model.objects.filter(**{column: value}).exists()


@pytest.mark.parametrize("model,column", [(WorkItem, "state"), (RunItem, "outcome")])
def test_every_choice_is_accepted(run, model, column):
    field = model._meta.get_field(column)
    row = model.objects.first()
    for value, _label in field.choices:
        if model is WorkItem and value == "in_progress":
            continue  # needs a lease: its own constraint, tested with the engine
        with transaction.atomic():
            model.objects.filter(pk=row.pk).update(**{column: value})
        assert model.objects.get(pk=row.pk).__dict__[column] == value


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's evaluation of IN")
@pytest.mark.parametrize("model", [WorkItem, RunItem])
def test_choice_checks_are_written_without_in_lists(db, model):
    """SQLite builds a temporary b-tree for `x IN (a, b, c…)` once per statement
    execution: a CHECK written that way costs a tree per row of an `executemany`
    (about 2 µs each; the two on work_item were a third of its insert).
    `x = a OR x = b …` costs nothing like it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s",
            [model._meta.db_table],
        )
        (sql,) = cursor.fetchone()
    assert " IN (" not in sql.upper()


def test_an_action_with_the_longest_key_runs_and_is_journaled(automation):
    """Step.action allows 200 characters; the idempotency key adds the run and item
    ids. PostgreSQL enforces varchar lengths (SQLite does not)."""
    from automations.models import Step
    from runs.engine import run_until_idle
    from runs.models import ActionResult
    from tests.actions import LONG_ACTION

    assert len(LONG_ACTION) == Step._meta.get_field("action").max_length
    run = run_start(automation=automation(LONG_ACTION), inputs=[{"a": 1}, {"a": 2}])
    run_until_idle(run)
    run.refresh_from_db()
    assert (run.state, run.output_items) == ("completed", 2)
    keys = list(
        RunItem.objects.filter(run=run).values_list("idempotency_key", flat=True)
    )
    assert len(keys) == 2 and all(k.endswith(":" + LONG_ACTION) for k in keys)
    assert ActionResult.objects.filter(idempotency_key__in=keys).count() == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_a_parents_outputs_are_found_by_the_partial_parent_index(run):
    """work_item_parent holds items with a parent only (a run's inputs have
    none, so `run_start` writes no entry in it); `parent = x`, the lookup of
    a parent's outputs and of the foreign key's own check, still reads it."""
    parent = WorkItem.objects.filter(run=run).first()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT 1 FROM runs_workitem WHERE parent_id = %s", [parent.pk]
        )
        plan = " ".join(row[0] for row in cursor.fetchall())
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'work_item_parent'"
        )
        (definition,) = cursor.fetchone()
    assert "work_item_parent" in plan
    assert "WHERE (parent_id IS NOT NULL)" in definition


def _run_item_fk_columns() -> list[tuple[str, ...]]:
    """The column lists of run items' foreign keys, each sorted."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(
            cursor, RunItem._meta.db_table
        )
    return sorted(
        tuple(sorted(c["columns"])) for c in constraints.values() if c["foreign_key"]
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's keys")
def test_a_run_item_has_one_foreign_key_its_work_items_run_and_step(db):
    """One check per run item written, not three: (run, work item, step) must be
    a work item's own (run, id, step), and the work item's keys make its run and
    step exist. The step run is recorded without a key (see RunItem)."""
    assert _run_item_fk_columns() == [("run_id", "step_id", "work_item_id")]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite keeps its keys")
def test_sqlite_run_items_keep_a_key_per_column(db):
    assert _run_item_fk_columns() == [("run_id",), ("step_id",), ("work_item_id",)]


@pytest.mark.parametrize("column", ["run_id", "step_id"])
def test_a_run_item_of_another_run_or_step_than_its_work_item_is_refused(
    run, automation, column
):
    other = run_start(automation=automation("builtin.echo"), inputs=[{}])
    value = {
        "run_id": other.pk,
        "step_id": other.version.steps.get().pk,
    }[column]
    item = RunItem.objects.get(run=run)
    if connection.vendor == "sqlite":
        pytest.skip("SQLite checks each key alone: both exist")
    with (
        pytest.raises(IntegrityError),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        RunItem.objects.filter(pk=item.pk).update(**{column: value})
    assert RunItem.objects.get(pk=item.pk).work_item.run_id == run.pk


def _work_item_fk_columns() -> list[tuple[str, ...]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(
            cursor, WorkItem._meta.db_table
        )
    return sorted(tuple(c["columns"]) for c in constraints.values() if c["foreign_key"])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's keys")
def test_a_work_items_run_and_step_are_checked_per_statement(db):
    """Not a foreign key each, which checks each row alone (20,000 checks for a
    run of 10,000 inputs): triggers checking each statement's rows at once, and
    deletes of what items name (migration 0026; their rules:
    tests/runs/test_work_item_keys.py). An AlterField of either key would bring
    its foreign key back."""
    assert _work_item_fk_columns() == [("parent_id",)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
            "WHERE tgname LIKE '%%work_item%%' AND NOT tgisinternal ORDER BY tgname"
        )
        triggers = cursor.fetchall()
    assert triggers == [
        ("runs_run", "run_keeps_work_items"),
        ("automations_step", "step_keeps_work_items"),
        ("runs_workitem", "work_item_keys"),
        ("runs_workitem", "work_item_keys_fixed"),
    ]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite keeps its keys")
def test_sqlite_work_items_keep_a_key_per_column(db):
    assert _work_item_fk_columns() == [("parent_id",), ("run_id",), ("step_id",)]
