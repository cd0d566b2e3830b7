"""The write of a new run: its number, row, first work items, `run.created` event
and first step runs, in plain statements prepared before the transaction.

Everything but the run number is known before the write: the run's id is made
here, its chain is empty, so its `run.created` event is chained (and the run's head
set) beforehand, and the rows are adapted once (`runs.sql`). Under the write lock
only the statements run; the ORM compiled each of them per call, which on a
trigger cost more than the database did (issue 19).

On PostgreSQL the whole write is one statement of data-modifying CTEs (the number,
the run, its event, its items when they are few, its step runs): with the Redis
broker it commits alone (`run_start`), one round trip where there were nine. Each
table's rows are one JSON parameter, so the statement's text does not change with
the number of items and the server prepares it (`runs.sql.prepared_cursor`):
planning it cost the server more than running it. A run of many inputs gets its
items in that statement too, made on the server from the run's own `inputs` (an
INSERT … SELECT over its elements, the subjects in one array,
`PendingItems.from_inputs`): each payload is sent and parsed once. On
SQLite, which has no data-modifying CTEs and whose statements run in process,
each is a statement of its own.

Run numbers stay gapless: the counter advances in the transaction that creates the
run (`next_number`'s upsert, the first CTE on PostgreSQL).
"""

import functools
import json

from django.db import connection
from django.db.models import AutoField, JSONField

from ..engine.bulk import PendingItems
from ..models import AuditEvent, Run, Sequence, StepRun
from ..sql import inserter_for, prepared_cursor

# work items written as JSON inside the one statement on PostgreSQL; a run of more
# inputs has them made from its own inputs column (PendingItems.from_inputs), other
# items (none today) go by COPY after the statement
INLINE_ITEMS = 50

NUMBER_SQL = (
    "INSERT INTO {table} (name, value) VALUES (%s, 1) "
    "ON CONFLICT (name) DO UPDATE SET value = {table}.value + 1 RETURNING value"
)


def next_number_sql() -> str:
    """Advance a named counter and return it, creating it at 1: one upsert (SQLite
    >= 3.35 and PostgreSQL both have `ON CONFLICT … RETURNING`); the row lock
    serialises concurrent callers."""
    return NUMBER_SQL.format(table=connection.ops.quote_name(Sequence._meta.db_table))


def one_statement(items: PendingItems) -> bool:
    """True when `run_write` is a single statement (PostgreSQL: few items, or
    the run's inputs, made into items from its own row)."""
    return connection.vendor == "postgresql" and (
        len(items) <= INLINE_ITEMS or items.inputs_of_run
    )


def _columns(model) -> tuple[str, ...]:
    return tuple(
        f.attname
        for f in model._meta.concrete_fields
        # the database assigns automatic keys (AutoField's subclasses too)
        if not isinstance(f, AutoField)
    )


def _inserter(model):
    return inserter_for(model, _columns(model))


def _marks(count: int) -> str:
    return "(" + ", ".join(["%s"] * count) + ")"


def _values(inserter, rows: list[tuple]) -> tuple[str, list]:
    group = _marks(len(inserter.fields))
    return ", ".join([group] * len(rows)), [value for row in rows for value in row]


def _into(inserter) -> str:
    return inserter.sql.split(" VALUES ", 1)[0]


def run_write(
    run: Run,
    *,
    items: PendingItems,
    events: list[AuditEvent],
    step_runs: list[StepRun],
) -> list[int]:
    """Insert `run` (its number taken now and set on it), `items`, its chained
    `events` and `step_runs`, inside the caller's transaction; return the step
    runs' ids, in the order given."""
    run_rows = _inserter(Run)
    event_rows = _inserter(AuditEvent)
    step_run_rows = _inserter(StepRun)
    number_at = run_rows.fields.index(Run._meta.get_field("number"))
    run_row = list(run_rows.adapt([vars(run)])[0])
    event_params = event_rows.adapt([vars(event) for event in events])
    step_run_params = step_run_rows.adapt([vars(step_run) for step_run in step_runs])
    if connection.vendor == "postgresql":
        with prepared_cursor() as cursor:
            number, ids = _write_postgresql(
                cursor,
                run_rows,
                run_row,
                number_at,
                [(event_rows, event_params), (step_run_rows, step_run_params)],
                items,
            )
    else:
        with connection.cursor() as cursor:
            cursor.execute(next_number_sql(), ["run"])
            number = run_row[number_at] = cursor.fetchone()[0]
            cursor.execute(run_rows.sql, run_row)
            items.insert()
            if event_params:
                cursor.executemany(event_rows.sql, event_params)
            ids = []
            if step_run_params:
                values, params = _values(step_run_rows, step_run_params)
                cursor.execute(
                    f"{_into(step_run_rows)} VALUES {values} RETURNING id", params
                )
                ids = sorted(row[0] for row in cursor.fetchall())
    run.number = number
    run._state.adding, run._state.db = False, connection.alias
    for step_run, pk in zip(step_runs, ids, strict=True):
        step_run.pk = pk
        step_run._state.adding, step_run._state.db = False, connection.alias
    return ids


def _json_rows(inserter, rows: list[tuple]) -> str:
    """Rows adapted for PostgreSQL (`Inserter.adapt`: JSON columns as their JSON
    text, datetimes and UUIDs as strings) as one JSON array of objects, for
    `json_populate_recordset`: one parameter per table, however many columns and
    rows it has. A JSON column's text goes as a string, parsed by the statement."""
    names = [field.column for field in inserter.fields]
    return json.dumps([dict(zip(names, row, strict=True)) for row in rows])


def _insert_json(inserter, *, number_from: str | None = None) -> str:
    """`INSERT INTO table (columns) SELECT columns FROM` the rows of one JSON
    parameter (`_json_rows`); `number_from` stands in for the run's number."""
    qn = connection.ops.quote_name
    table = qn(inserter.model._meta.db_table)
    columns, chosen = [], []
    for field in inserter.fields:
        column = qn(field.column)
        columns.append(column)
        if field.attname == "number" and number_from:
            chosen.append(number_from)
        elif isinstance(field, JSONField):
            chosen.append(f"(j.{column} #>> '{{}}')::jsonb")
        else:
            chosen.append(f"j.{column}")
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(chosen)} "
        f"FROM json_populate_recordset(NULL::{table}, %s::json) AS j"
    )


def _write_postgresql(cursor, run_rows, run_row, number_at, others, items):
    """One statement of data-modifying CTEs whose text depends only on which
    tables get rows (each table's rows are one JSON parameter): the server
    prepares it once per connection (`runs.sql.prepared_cursor`), and the driver
    binds one parameter per table where it bound one per column of every row.
    A run of many inputs has its items made from its own inputs column."""
    run_row[number_at] = None  # the statement takes it from the counter
    parts = [(run_rows, [run_row])]
    inline = one_statement(items)
    from_inputs = len(items) > INLINE_ITEMS and items.inputs_of_run
    if inline and len(items) and not from_inputs:
        parts.append((items.inserter, list(items.rows())))
    parts += [(inserter, rows) for inserter, rows in others if rows]
    params = ["run", *(_json_rows(inserter, rows) for inserter, rows in parts)]
    items_sql = None
    if from_inputs:
        items_sql, item_params = items.from_inputs("(SELECT inputs FROM c0)")
        params += item_params
    cursor.execute(
        _statement(tuple(inserter for inserter, _ in parts), items_sql), params
    )
    number, ids = cursor.fetchone()
    if not inline:
        items.insert()  # COPY: the run's row is this transaction's already
    return number, list(ids)


@functools.cache
def _statement(inserters: tuple, items_sql: str | None) -> str:
    """The write's text for these tables' rows, the run's first (its number from
    the counter's upsert), then `items_sql` (items made from the run's inputs,
    which the run's CTE then returns); the step runs' ids come back in order."""
    ctes = [f"n AS ({next_number_sql()})"]
    step_runs = "ARRAY[]::bigint[]"
    for index, inserter in enumerate(inserters):
        number_from = "(SELECT value FROM n)" if index == 0 else None
        returning = " RETURNING id" if inserter.model is StepRun else ""
        if index == 0 and items_sql:
            returning = " RETURNING inputs"
        ctes.append(
            f"c{index} AS ({_insert_json(inserter, number_from=number_from)}"
            f"{returning})"
        )
        if inserter.model is StepRun:
            step_runs = f"ARRAY(SELECT id FROM c{index} ORDER BY id)"
    if items_sql:
        ctes.append(f"w AS ({items_sql})")
    return f"WITH {', '.join(ctes)} SELECT (SELECT value FROM n), {step_runs}"
