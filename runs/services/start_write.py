"""The write of a new run: its number, row, first work items, `run.created` event
and first step runs, in plain statements prepared before the transaction.

Everything but the run number is known before the write: the run's id is made
here, its chain is empty, so its `run.created` event is chained (and the run's head
set) beforehand, and the rows are adapted once (`runs.sql`). Under the write lock
only the statements run; the ORM compiled each of them per call, which on a
trigger cost more than the database did (issue 19).

On PostgreSQL the whole write is one statement of data-modifying CTEs (the number,
the run, its event, its items when they are few, its step runs): with the Redis
broker it commits alone (`run_start`), one round trip where there were nine. A run
of many inputs gets its items in that statement too, made on the server from the
run's own `inputs` (an INSERT … SELECT over its elements, the subjects in one
array): each payload is sent and parsed once, not again by a COPY. On
SQLite, which has no data-modifying CTEs and whose statements run in process,
each is a statement of its own.

Run numbers stay gapless: the counter advances in the transaction that creates the
run (`next_number`'s upsert, the first CTE on PostgreSQL).
"""

from django.db import connection
from django.db.models import AutoField

from ..engine.bulk import PendingItems
from ..models import AuditEvent, Run, Sequence, StepRun
from ..sql import inserter_for

# work items written inside the one statement on PostgreSQL (parameters grow with
# them); a run of more inputs gets them by COPY, which costs two round trips
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
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            number, ids = _write_postgresql(
                cursor,
                run_rows,
                run_row,
                number_at,
                [(event_rows, event_params), (step_run_rows, step_run_params)],
                items,
            )
        else:
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


def _write_postgresql(cursor, run_rows, run_row, number_at, others, items):
    marks = ["%s"] * len(run_row)
    marks[number_at] = "(SELECT value FROM n)"
    del run_row[number_at]
    ctes = [f"n AS ({next_number_sql()})"]
    params = ["run"]
    inline = one_statement(items)
    from_inputs = len(items) > INLINE_ITEMS and items.inputs_of_run
    returning = " RETURNING inputs" if from_inputs else ""
    ctes.append(f"r AS ({_into(run_rows)} VALUES ({', '.join(marks)}){returning})")
    params += run_row
    if from_inputs:
        # many inputs: their items from the run's inputs column, as written
        sql, item_params = items.from_inputs("(SELECT inputs FROM r)")
        ctes.append(f"w AS ({sql})")
        params += item_params
    elif inline and len(items):
        values, item_params = _values(items.inserter, list(items.rows()))
        ctes.append(f"w AS ({_into(items.inserter)} VALUES {values})")
        params += item_params
    step_runs = "ARRAY[]::bigint[]"
    for index, (inserter, rows) in enumerate(others):
        if not rows:
            continue
        values, row_params = _values(inserter, rows)
        returning = " RETURNING id" if inserter.model is StepRun else ""
        ctes.append(f"c{index} AS ({_into(inserter)} VALUES {values}{returning})")
        params += row_params
        if returning:
            step_runs = f"ARRAY(SELECT id FROM c{index} ORDER BY id)"
    cursor.execute(
        f"WITH {', '.join(ctes)} SELECT (SELECT value FROM n), {step_runs}", params
    )
    number, ids = cursor.fetchone()
    if not inline:
        items.insert()  # COPY: the run's row is this transaction's already
    return number, list(ids)
