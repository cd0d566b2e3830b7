"""Bulk inserts for the engine's hot path, without building model instances.

`bulk_create` compiles one statement per batch by preparing every value of every
model instance through the field machinery; for thousands of small ledger rows per
second that costs more than the database. Here each column's adapter is chosen
once, rows are plain tuples, and the driver's `executemany` does the rest. Values
are adapted exactly as Django would store them (`get_db_prep_save` for JSON,
`adapt_datetimefield_value` for datetimes), so the ORM reads them back unchanged.
"""

from operator import itemgetter

from django.db import connection, models

from ..models import WorkItem


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

    @classmethod
    def _adapter(cls, field):
        if isinstance(field, models.ForeignKey):
            return cls._adapter(field.target_field)
        if isinstance(field, models.JSONField):
            encoder, adapt_json = field.encoder, connection.ops.adapt_json_value
            return lambda value: adapt_json(value, encoder)
        if isinstance(field, models.DateTimeField):
            return connection.ops.adapt_datetimefield_value
        if isinstance(field, models.UUIDField):
            return lambda value: field.get_db_prep_value(value, connection)
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


class PendingItems:
    """New pending work items of one step of one run, made at one moment (a run's
    inputs, or the outputs of a batch), as parameters for one `executemany`. All
    but three columns are the same for every item: they are adapted once, and
    each item adds only its parent, subject and payload."""

    OWN = ("parent_id", "subject", "payload")

    def __init__(self, *, run_id, step_id, now):
        shared = work_item_row(run_id=run_id, step_id=step_id, payload={}, subject="", now=now)
        for name in self.OWN:
            del shared[name]
        self.inserter = inserter_for(WorkItem, (*shared, *self.OWN))
        self.shared = self.inserter.adapt([shared | dict.fromkeys(self.OWN)])[0][: len(shared)]
        self.adapt_payload = self.inserter.adapters[-1]
        self.params: list[tuple] = []

    def __len__(self):
        return len(self.params)

    def add(self, payload: dict, subject: str, parent_id: int | None = None) -> None:
        self.params.append((*self.shared, parent_id, subject, self.adapt_payload(payload)))

    def insert(self) -> None:
        self.inserter.execute(self.params)


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
