"""Bulk inserts for the engine's hot path, without building model instances.

`bulk_create` compiles one statement per batch by preparing every value of every
model instance through the field machinery; for thousands of small ledger rows per
second that costs more than the database. Here each column's adapter is chosen
once, rows are plain tuples, and the driver's `executemany` does the rest. Values
are adapted exactly as Django would store them (`get_db_prep_save` for JSON,
`adapt_datetimefield_value` for datetimes), so the ORM reads them back unchanged.
"""

from django.db import connection, models


class Inserter:
    def __init__(self, model, columns: list[str]):
        self.model = model
        self.fields = [model._meta.get_field(name) for name in columns]
        self.adapters = [self._adapter(field) for field in self.fields]
        table = connection.ops.quote_name(model._meta.db_table)
        names = ", ".join(connection.ops.quote_name(f.column) for f in self.fields)
        marks = ", ".join(["%s"] * len(self.fields))
        self.sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"

    @classmethod
    def _adapter(cls, field):
        if isinstance(field, models.ForeignKey):
            return cls._adapter(field.target_field)
        if isinstance(field, models.JSONField):
            encoder = field.encoder
            return lambda value: connection.ops.adapt_json_value(value, encoder)
        if isinstance(field, models.DateTimeField):
            return connection.ops.adapt_datetimefield_value
        if isinstance(field, models.UUIDField):
            return lambda value: field.get_db_prep_value(value, connection)
        return None

    def adapt(self, rows: list[dict]) -> list[tuple]:
        """Rows as parameter tuples, ready for `execute` (no database access, so it
        can run before the transaction that writes them)."""
        adapters = list(zip([f.attname for f in self.fields], self.adapters))
        # rows of one batch share many values (its timestamps, ids): adapt each
        # distinct scalar once
        memo: dict = {}

        def adapt(function, value):
            if value is None or function is None:
                return value
            if isinstance(value, (dict, list)):
                return function(value)
            try:
                return memo[value]
            except KeyError:
                memo[value] = adapted = function(value)
                return adapted

        return [tuple(adapt(f, row[name]) for name, f in adapters) for row in rows]

    def execute(self, params: list[tuple]) -> None:
        if params:
            with connection.cursor() as cursor:
                cursor.executemany(self.sql, params)

    def insert(self, rows: list[dict]) -> None:
        self.execute(self.adapt(rows))


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


def work_item_row(*, run_id, step_id, payload, subject, now, parent_id=None) -> dict:
    """A new pending work item as a row for `insert_rows` (every column set: raw
    inserts get no model defaults)."""
    return {
        "run_id": run_id,
        "step_id": step_id,
        "parent_id": parent_id,
        "state": "pending",
        "subject": subject,
        "payload": payload,
        "attempts": 0,
        "available_at": now,
        "lease_owner_id": None,
        "lease_token": None,
        "lease_expires_at": None,
        "failure_type": "",
        "failure_code": "",
        "failure_message": "",
        "note": "",
        "approvers": [],
        "approval_deadline": None,
        "approval": None,
        "created_at": now,
        "updated_at": now,
    }
