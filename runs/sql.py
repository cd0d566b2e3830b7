"""Plain bulk inserts without building model instances (the engine's hot path and
the ledger's run items share them).

`bulk_create` compiles one statement per batch by preparing every value of every
model instance through the field machinery; for thousands of small ledger rows per
second that costs more than the database. Here each column's adapter is chosen
once, rows are plain tuples, and the driver's `executemany` does the rest. Values
are adapted exactly as Django would store them (`get_db_prep_save` for JSON,
`adapt_datetimefield_value` for datetimes), so the ORM reads them back unchanged.

On PostgreSQL the rows go in by COPY (one round trip and no statement per row;
an `executemany` there is still one INSERT per row, parsed and planned each
time); on SQLite by `executemany` (a prepared statement stepped per row, in
process). A COPY is logged like a statement when queries are logged (tests count
round trips by it).
"""

import json
import time
from contextlib import contextmanager
from operator import itemgetter

from django.db import connection, models


def row_getter(names):
    """A function giving a row's values for `names` as a tuple (itemgetter gives a
    bare value for one name)."""
    if len(names) > 1:
        return itemgetter(*names)
    return lambda row: tuple(row[name] for name in names)


class Inserter:
    def __init__(self, model, columns: list[str]):
        self.model = model
        self.fields = [model._meta.get_field(name) for name in columns]
        self.adapters = [self._adapter(field) for field in self.fields]
        table = connection.ops.quote_name(model._meta.db_table)
        names = ", ".join(connection.ops.quote_name(f.column) for f in self.fields)
        marks = ", ".join(["%s"] * len(self.fields))
        self.sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"
        self.copy_sql = f"COPY {table} ({names}) FROM STDIN"

    @classmethod
    def _adapter(cls, field):
        if isinstance(field, models.ForeignKey):
            return cls._adapter(field.target_field)
        if connection.vendor == "postgresql":
            return cls._copy_adapter(field)
        if isinstance(field, models.JSONField):
            encoder, adapt_json = field.encoder, connection.ops.adapt_json_value
            return lambda value: adapt_json(value, encoder)
        if isinstance(field, models.DateTimeField):
            return connection.ops.adapt_datetimefield_value
        if isinstance(field, models.UUIDField):
            return lambda value: field.get_db_prep_value(value, connection)
        return None

    @staticmethod
    def _copy_adapter(field):
        """PostgreSQL: values as COPY's text takes them, made once per distinct
        value by `adapt` (the driver would dump a Jsonb or a datetime once per
        row): JSON as Django's backend writes it (`json.dumps` with the field's
        encoder), datetimes in ISO 8601 with their offset, UUIDs hyphenated."""
        if isinstance(field, models.JSONField):
            encoder = field.encoder
            return lambda value: json.dumps(value, cls=encoder)
        if isinstance(field, models.DateTimeField):
            adapt_dt = connection.ops.adapt_datetimefield_value
            return lambda value: adapt_dt(value).isoformat()
        if isinstance(field, models.UUIDField):
            return lambda value: str(field.get_db_prep_value(value, connection))
        return None

    def adapt(self, rows: list[dict]) -> list[tuple]:
        """Rows as parameter tuples, ready for `execute` (no database access, so it
        can run before the transaction that writes them)."""
        if not rows:
            return []
        take = row_getter([f.attname for f in self.fields])
        plan = [(i, f) for i, f in enumerate(self.adapters) if f is not None]
        if not plan:
            return [take(row) for row in rows]
        # rows of one batch share many values (its timestamps, ids, parameters):
        # adapt each distinct one once per column (containers by identity: the rows
        # keep them alive, so an id is not reused while this runs; empty ones by
        # type; scalars by type and value, so True and 1 stay apart)
        memo: dict = {}
        out = []
        for row in rows:
            values = list(take(row))
            for i, function in plan:
                value = values[i]
                if value is None:
                    continue
                kind = type(value)
                if kind is dict or kind is list:
                    key = (i, id(value)) if value else (i, kind)
                else:
                    key = (i, kind, value)
                try:
                    values[i] = memo[key]
                except KeyError:
                    values[i] = memo[key] = function(value)
            out.append(tuple(values))
        return out

    def execute(self, params) -> None:
        """Insert parameter tuples: a list, or any iterable (its rows are taken
        as they are written; the caller skips an empty one)."""
        if isinstance(params, list) and not params:
            return
        if connection.vendor == "postgresql":
            copy_rows(self.copy_sql, params)
            return
        with connection.cursor() as cursor:
            cursor.executemany(self.sql, params)

    def insert(self, rows: list[dict]) -> None:
        self.execute(self.adapt(rows))


def copy_rows(sql: str, rows) -> None:
    """PostgreSQL: `COPY … FROM STDIN` (text format) of parameter tuples, on the
    connection's current transaction. psycopg dumps each value as it would a query
    parameter (Jsonb, datetimes, UUIDs), and escapes tabs, newlines and
    backslashes. The driver's errors are raised as Django's (IntegrityError…),
    as the cursor wrapper would."""
    started = time.monotonic()
    # Django's cursor wrapper has no `copy`: the driver's cursor does it
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.cursor.copy(sql) as copy,
    ):
        write = copy.write_row
        for row in rows:
            write(row)
    if connection.queries_logged:
        connection.queries_log.append(
            {"sql": sql, "time": f"{time.monotonic() - started:.3f}"}
        )


@contextmanager
def prepared_cursor():
    """A cursor whose statements PostgreSQL prepares once it has run them
    `prepare_threshold` times on the connection (settings: DATABASES OPTIONS,
    `DATABASE_PREPARE_THRESHOLD`), for the few hot statements that cost more to plan
    than to run (a trigger's read of its target and its write). Django's own cursors
    bind parameters on the client, which never prepares; this one binds them on the
    server. With the threshold off (None: Django's default, for poolers that cannot
    keep prepared statements) it prepares nothing, and elsewhere it is Django's
    cursor. It is wrapped as Django wraps its own, so statements are logged."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    import psycopg

    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = psycopg.Cursor(connection.connection)
    # as Django wraps its own cursors (BaseDatabaseWrapper._prepare_cursor), with
    # its public halves: the debug wrapper logs the statements
    if connection.queries_logged:
        wrapped = connection.make_debug_cursor(raw)
    else:
        wrapped = connection.make_cursor(raw)
    with wrapped as cursor:
        yield cursor


_inserters: dict = {}


def inserter_for(model, columns) -> Inserter:
    key = (model, tuple(columns), connection.vendor)
    inserter = _inserters.get(key)
    if inserter is None:
        inserter = _inserters[key] = Inserter(model, list(columns))
    return inserter


def insert_rows(model, rows: list[dict]) -> None:
    """Insert dict rows (keys: field attnames, the same for every row) into `model`."""
    if rows:
        inserter_for(model, rows[0]).insert(rows)
