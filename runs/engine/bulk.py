"""New pending work items in bulk, for the engine's hot path (see `runs.sql`)."""

from django.db import connection

from ..models import WorkItem
from ..sql import insert_rows, inserter_for

__all__ = ["PendingItems", "insert_rows", "work_item_row"]


class PendingItems:
    """New pending work items of one step of one run, made at one moment (a run's
    inputs, or the outputs of a batch), as rows for one COPY (PostgreSQL) or
    `executemany` (SQLite). All but three columns are the same for every item:
    they are adapted once, and each item adds only its parent, subject and
    payload. The payloads are serialised as the rows stream to the database, so
    on PostgreSQL the client's JSON work overlaps the server's parsing and index
    inserts of the rows sent before (a COPY is sent in chunks as it is written).
    A new run's inputs do not go by COPY on PostgreSQL: `from_inputs`."""

    OWN = ("parent_id", "subject", "payload")

    def __init__(self, *, run_id, step_id, now):
        shared = work_item_row(
            run_id=run_id, step_id=step_id, payload={}, subject="", now=now
        )
        for name in self.OWN:
            del shared[name]
        self.inserter = inserter_for(WorkItem, (*shared, *self.OWN))
        self.shared = self.inserter.adapt([shared | dict.fromkeys(self.OWN)])[0][
            : len(shared)
        ]
        self.adapt_payload = self.inserter.adapters[-1]
        # three columns, not a tuple per item: a run of 10,000 inputs made
        # 10,000 objects the garbage collector then walked (a full collection
        # every third run_start, 80 ms on a slow box)
        self.parents: list[int | None] = []
        self.subjects: list[str] = []
        self.payloads: list[dict] = []
        # the payloads are a new run's inputs, in order (`run_start`): on
        # PostgreSQL the run's write makes these items from the run's own
        # inputs column (runs.services.start_write)
        self.inputs_of_run = False

    def __len__(self):
        return len(self.payloads)

    def add(self, payload: dict, subject: str, parent_id: int | None = None) -> None:
        self.parents.append(parent_id)
        self.subjects.append(subject)
        self.payloads.append(payload)

    def rows(self):
        """The items as parameter tuples, each payload adapted as it is taken."""
        shared, adapt = self.shared, self.adapt_payload
        for parent_id, subject, payload in zip(
            self.parents, self.subjects, self.payloads, strict=True
        ):
            yield (*shared, parent_id, subject, adapt(payload))

    def from_inputs(self, inputs: str) -> tuple[str, list]:
        """PostgreSQL: the INSERT … SELECT (for a data-modifying CTE) making these
        items from `inputs`, an SQL expression of the run's inputs (jsonb): each
        payload is an element of it, not sent and parsed again, and each
        subject comes from the client (`subject_of`), in one text[] parameter.
        Items keep the inputs' order (their ids too)."""
        quote = connection.ops.quote_name
        fields = self.inserter.fields
        # a foreign key's db_type is its target's
        shared = [
            f"CAST(%s AS {field.db_type(connection)})"
            for field in fields[: len(self.shared)]
        ]
        names = ", ".join(quote(field.column) for field in fields)
        table = quote(WorkItem._meta.db_table)
        sql = (
            f"INSERT INTO {table} ({names}) "
            f"SELECT {', '.join(shared)}, NULL, s.subject, s.payload "
            f"FROM ROWS FROM (jsonb_array_elements({inputs}), "
            "unnest(%s::text[])) WITH ORDINALITY AS s(payload, subject, i) "
            "ORDER BY s.i"
        )
        return sql, [*self.shared, self.subjects]

    def insert(self) -> None:
        if self.payloads:
            self.inserter.execute(self.rows())


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
