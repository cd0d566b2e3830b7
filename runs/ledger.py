"""The tamper-evident ledger: audit events and run items in hash chains.

Each run has its own chain (its audit events and run items share one sequence), so
workers of different runs never queue behind one lock; events that belong to no run
chain on the global head. Every row stores the hash of the row before it and a hash
over its own fields; the chain's head (seq, hash) is kept on the run or on a
LedgerHead row, so deleting the last rows is detected too.

Callers append inside their own transaction: the row lock on the head serialises
appenders of one chain (on SQLite the IMMEDIATE transaction already does).
"""

import datetime
import hashlib
import json
import math
import uuid
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from .models import AuditEvent, LedgerHead, Run, RunItem, run_item_ledger_fields
from .sql import inserter_for, row_getter

GLOBAL_CHAIN = "global"


def _default(value):
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat()
    return str(value)


def _canonical(fields: dict) -> str:
    return json.dumps(
        fields,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_default,
    )


def idempotency_key(run_id, work_item_id, action_key: str) -> str:
    """A run item's key: stable across every attempt of one item at one action."""
    return f"{run_id}:{work_item_id}:{action_key}"


def jsonb_stable(value):
    """`value` with each JSON number PostgreSQL's jsonb would not give back as
    written replaced by what it gives back, so a ledger row hashes the same before
    and after the round trip (SQLite keeps the text as written).

    jsonb keeps numbers as `numeric`: it has no negative zero (-0.0 comes back 0.0)
    and writes no exponent (1e16 comes back 10000000000000000, an int to Python).
    A float whose shortest form has an exponent is integral from 1e16 up, so it
    becomes that int; below that (1e-07) it comes back the same float. Returns
    `value` itself when nothing changes."""
    kind = type(value)
    if kind is float:
        if value == 0.0 and math.copysign(1.0, value) < 0:
            return 0.0
        if value.is_integer() and "e" in repr(value):
            return int(value)
        return value
    if kind is dict:
        items = {key: jsonb_stable(item) for key, item in value.items()}
        same = all(items[key] is item for key, item in value.items())
        return value if same else items
    if kind is list or kind is tuple:
        items = [jsonb_stable(item) for item in value]
        same = all(new is old for new, old in zip(items, value))
        return value if same else items
    return value


def _json_attnames(model) -> tuple[str, ...]:
    return tuple(
        f.attname
        for f in model._meta.concrete_fields
        if f.get_internal_type() == "JSONField"
    )


def content_digest(fields: dict) -> str:
    """SHA-256 of a row's fields in canonical JSON."""
    return hashlib.sha256(_canonical(fields).encode()).hexdigest()


_encode_str = (
    json.encoder.encode_basestring
)  # what json.dumps uses with ensure_ascii=False


def _run_item_keys() -> tuple[tuple, dict]:
    """run_item_ledger_fields' keys in sorted order, as `content_digest` writes them,
    each with the column it is read from (None: a constant), and the constants.

    Read off the function itself, by calling it on a mapping that answers each
    column with its own name: a field added to the model's ledger fields reaches
    the engine's template without a second list to keep in step."""
    read = []

    class Names(dict):
        def __missing__(self, name):
            read.append(name)
            return name

    fields = run_item_ledger_fields(Names())
    keys = tuple(
        (key, fields[key] if fields[key] in read else None) for key in sorted(fields)
    )
    return keys, {key: fields[key] for key, name in keys if name is None}


_RUN_ITEM_KEYS, _RUN_ITEM_CONSTANTS = _run_item_keys()


def _scalar(value) -> str:
    kind = type(value)
    if kind is str or isinstance(
        value, str
    ):  # outcomes and failure types are str enums
        return _encode_str(value)
    if kind is int:
        return int.__repr__(value)
    if kind is datetime.datetime:
        return _encode_str(_default(value))
    return _canonical(value)


def run_item_digests(shared: dict, rows: list[dict]) -> list[str]:
    """`content_digest(run_item_ledger_fields(shared | row))` for each row, byte for
    byte: the canonical JSON is written from a template that holds the values the
    rows share, their run always among them (the engine's hot path; equality with
    the general form is tested)."""
    if "run_id" not in shared:
        raise ValueError("run items are prepared for one run: run_id must be shared")
    parts, own = [], []
    for key, name in _RUN_ITEM_KEYS:
        if name is None:
            value = _canonical(_RUN_ITEM_CONSTANTS[key]).replace("%", "%%")
        elif name in shared:
            value = shared[name]
            value = _encode_str(str(value)) if name == "run_id" else _scalar(value)
            value = value.replace("%", "%%")  # a literal in the template
        else:
            value = "%s"
            own.append(name)
        parts.append(f'"{key}":{value}')
    template = "{" + ",".join(parts) + "}"
    take = row_getter(own)
    sha256 = hashlib.sha256
    return [
        sha256((template % tuple(map(_scalar, take(row)))).encode()).hexdigest()
        for row in rows
    ]


def link_hash(prev_hash: str, seq: int, digest: str) -> str:
    """A row's hash: its place in the chain (previous hash, seq) and its content."""
    return hashlib.sha256(f"{prev_hash}|{seq}|{digest}".encode()).hexdigest()


def record_hash(prev_hash: str, seq: int, fields: dict) -> str:
    return link_hash(prev_hash, seq, content_digest(fields))


def _chain(records, seq: int, prev: str) -> tuple[int, str]:
    for record in records:
        # stored as it is hashed, whatever the database does to JSON numbers
        for name in _json_attnames(type(record)):
            setattr(record, name, jsonb_stable(getattr(record, name)))
        seq += 1
        record.seq = seq
        record.prev_hash = prev
        record.hash = prev = record_hash(prev, seq, record.ledger_fields())
    return seq, prev


class PreparedRunItems:
    """Run items made ready outside the writing transaction: their content digests
    and adapted column values. Under the run's lock, `append` only links them
    (seq, previous hash) and inserts them, so the lock is held briefly.

    `shared` holds the columns every row has in common (a step run's batch: its
    run, step, step run, action, parameters and end time), adapted once; `rows`
    the others. Every column is in one or the other, and `run_id` is shared: the
    rows are appended to one run's chain."""

    COLUMNS = (
        "run_id",
        "work_item_id",
        "step_id",
        "step_run_id",
        "action",
        "subject",
        "parameters",
        "attempt",
        "idempotency_key",
        "outcome",
        "result_ref",
        "failure_type",
        "failure_cause",
        "started_at",
        "finished_at",
    )

    def __init__(self, shared: dict, rows: list[dict]):
        own = [name for name in self.COLUMNS if name not in shared]
        # stored as it is hashed, whatever the database does to JSON numbers
        if "parameters" in shared:
            shared = {**shared, "parameters": jsonb_stable(shared["parameters"])}
        else:
            rows = [
                {**row, "parameters": jsonb_stable(row["parameters"])} for row in rows
            ]
        self.digests = run_item_digests(shared, rows)
        # the rows' columns are adapted now; their chain columns once linked
        head = inserter_for(RunItem, list(shared)).adapt([shared])[0] if shared else ()
        self.params = [head + row for row in inserter_for(RunItem, own).adapt(rows)]
        self.inserter = inserter_for(
            RunItem, (*shared, *own, "seq", "prev_hash", "hash")
        )

    def __len__(self):
        return len(self.digests)

    def link_and_insert(self, seq: int, prev: str) -> tuple[int, str]:
        linked = []
        for base, digest in zip(self.params, self.digests):
            seq += 1
            current = link_hash(prev, seq, digest)
            linked.append((*base, seq, prev, current))
            prev = current
        self.inserter.execute(linked)
        return seq, prev


def _actor_label(actor, label: str) -> str:
    if label:
        return label
    if actor is not None:
        return actor.get_username()
    return "system"


def audit_event(
    *,
    verb: str,
    obj=None,
    run: Run | None = None,
    actor=None,
    actor_label: str = "",
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
) -> AuditEvent:
    """Build an unsaved AuditEvent; pass it to `append` to chain and save it."""
    target = obj if obj is not None else run
    return AuditEvent(
        run=run,
        chain=str(run.pk) if run is not None else GLOBAL_CHAIN,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=_actor_label(actor, actor_label),
        verb=verb,
        object_type=target._meta.label_lower if target is not None else "",
        object_id=str(target.pk) if target is not None else "",
        before=before or {},
        after=after or {},
        reason=reason,
        created_at=timezone.now(),
    )


def append(
    *,
    run: Run | None = None,
    events: list[AuditEvent] = (),
    run_items: list[RunItem] = (),
    prepared: PreparedRunItems | None = None,
    counters: dict | None = None,
    head: tuple[int, str] | None = None,
) -> None:
    """Chain and save ledger rows for one run (or the global chain when run is None).

    `prepared` run items (the engine's bulk path) are chained after `run_items`.
    `counters` are extra field updates for the run row (F expressions allowed),
    written in the same UPDATE that moves the chain head.

    `head` (seq, hash): the run's chain head, from a caller that already holds the
    run's row in its own transaction (`run_start`: the run it just inserted), so it
    is not locked and read again; the rows are then written without a savepoint of
    their own (a failure undoes the caller's whole transaction, the run with them).
    """
    if not events and not run_items and not prepared and not counters:
        return
    if head is not None and (
        run is None or not transaction.get_connection().in_atomic_block
    ):
        raise ValueError("a known head needs its run and the caller's transaction")
    with transaction.atomic(savepoint=head is None):
        if run is None:
            if run_items or prepared:
                raise ValueError("run items always belong to a run")
            head, _ = LedgerHead.objects.select_for_update().get_or_create(
                key=GLOBAL_CHAIN
            )
            seq, prev = _chain(events, head.seq, head.hash)
            AuditEvent.objects.bulk_create(events)
            LedgerHead.objects.filter(key=GLOBAL_CHAIN).update(seq=seq, hash=prev)
            return
        seq, prev = head or run_lock(run, "ledger_seq", "ledger_hash")
        # audit events first, then run items: the order is part of the chain
        seq, prev = _chain(events, seq, prev)
        seq, prev = _chain(run_items, seq, prev)
        if events:
            AuditEvent.objects.bulk_create(events)
        if run_items:
            RunItem.objects.bulk_create(run_items, batch_size=500)
        if prepared:
            seq, prev = prepared.link_and_insert(seq, prev)
        Run.objects.filter(pk=run.pk).update(
            ledger_seq=seq, ledger_hash=prev, **(counters or {})
        )
        run.ledger_seq, run.ledger_hash = seq, prev


def chain_new_run(run: Run, events: list[AuditEvent]) -> None:
    """Chain the first events of a run whose row is not written yet, and set the
    run's head to the last of them: its chain is empty (seq 0, no previous hash),
    so nothing is locked or read, and the run's INSERT carries its head
    (`run_start`). The caller inserts the run and the events in one transaction."""
    if run.ledger_seq or run.ledger_hash or not run._state.adding:
        raise ValueError("only a run not yet written starts its chain here")
    if any(event.run_id != run.pk for event in events):
        raise ValueError("the events must be about the run")
    run.ledger_seq, run.ledger_hash = _chain(events, 0, "")


def _run_key(run: Run) -> int:
    """The run's key in PostgreSQL's advisory locks: 64 bits of its UUID. Two runs
    sharing one only wait for each other more often than they need to."""
    return int.from_bytes(uuid.UUID(str(run.pk)).bytes[:8], "big", signed=True)


def _run_row(run: Run) -> tuple[str, object]:
    """The runs table's quoted name and the run's key as the database takes it,
    for the plain statements on its row below."""
    table = connection.ops.quote_name(Run._meta.db_table)
    return table, Run._meta.pk.get_db_prep_value(run.pk, connection)


def run_lock(run: Run, *fields: str):
    """Lock the run for the rest of the transaction and read `fields` from its
    row (the state when none are named): one value for one field, else a tuple.

    This is the run's exclusive lock: every change of its state, every operator
    action and every ledger append outside a step run's commit takes it. It is two
    locks on PostgreSQL, taken in this order: the run's advisory lock, exclusive
    (it waits for the step runs committing a batch, which hold it shared, see
    `run_share`; PostgreSQL queues its lock requests, so step runs arriving later
    wait behind it), then the run's row FOR UPDATE.

    The first lock a transaction takes on a run is this one or `run_share`. Locks
    are taken in one order everywhere, the run, then its work items, then its step
    runs, so two writers of one run queue instead of deadlocking (SQLite's
    IMMEDIATE transaction already holds the one write lock). Run admission
    (runs.engine.admission) locks the automation row after the row of the run that
    moved and before the waiting runs it starts, which it takes with SKIP LOCKED."""
    names = fields or ("state",)
    if connection.vendor == "postgresql":
        values = _advisory_read(run, names, shared=False)
    else:
        values = (
            Run.objects.select_for_update()
            .filter(pk=run.pk)
            .values_list(*names)
            .first()
        )
    if values is None:
        raise Run.DoesNotExist(f"run {run.pk} does not exist")
    return values[0] if len(names) == 1 else values


def run_share(run: Run) -> str:
    """A step run's commit of a batch, PostgreSQL: hold the run's advisory lock
    shared for the rest of the transaction and read its state.

    Step runs of one run hold it together, so their item writes (the settle, the
    next claim, the next step's items) run side by side; only their chain appends
    take turns (`batch_head`). A holder of `run_lock` waits for them, and they for
    it. The state is read as the statement began, which may be before a `run_lock`
    holder that was waited for committed: a stop is then seen at the next batch
    (what the statements after this one change, they find as it was committed)."""
    row = _advisory_read(run, ("state",), shared=True)
    if row is None:
        raise Run.DoesNotExist(f"run {run.pk} does not exist")
    return row[0]


def _advisory_read(run: Run, names, *, shared: bool):
    """PostgreSQL: take the run's advisory lock, shared or exclusive, and read
    `names` from its row, in one statement (None: no such run). Exclusive, the
    row is locked FOR UPDATE too, above the join, after the advisory lock, and
    read as the last writer committed it (FOR UPDATE re-reads a row changed
    since the statement began)."""
    quote = connection.ops.quote_name
    columns = ", ".join(f"r.{quote(Run._meta.get_field(n).column)}" for n in names)
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    table, pk = _run_row(run)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM {function}(%s) AS l, {table} r WHERE r.id = %s"
            + ("" if shared else " FOR UPDATE OF r"),
            [_run_key(run), pk],
        )
        return cursor.fetchone()


@dataclass(slots=True)
class BatchHead:
    """The run's chain head and state, read under the run's row lock in a step
    run's commit (see `batch_head`)."""

    seq: int
    hash: str
    state: str


def batch_head(run: Run) -> BatchHead:
    """Lock the run row and read its chain head and state: the chain lock of a
    step run's commit, which two step runs of a run take in turn. On PostgreSQL it
    comes after `run_share` and the item writes; FOR NO KEY UPDATE, the strength
    of the UPDATE that follows it (the run's key does not change): it takes turns
    with the other step runs' and leaves the key-share locks of rows referring to
    the run alone. On SQLite it is the commit's first statement (the IMMEDIATE
    transaction holds the write lock already). One plain statement: it runs once
    per batch."""
    table, pk = _run_row(run)
    lock = " FOR NO KEY UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT ledger_seq, ledger_hash, state FROM {table} WHERE id = %s{lock}",
            [pk],
        )
        return BatchHead(*cursor.fetchone())


def head_update(
    run: Run, seq: int, prev: str, increments: dict[str, int], sets: dict
) -> tuple[str, list]:
    """The UPDATE that moves the run's chain head to (seq, prev) and its counters
    (`increments` added, `sets` set), as plain SQL and parameters."""
    quote = connection.ops.quote_name
    table, pk = _run_row(run)
    assignments = ["ledger_seq = %s", "ledger_hash = %s"]
    assignments += [f"{quote(name)} = {quote(name)} + %s" for name in increments]
    assignments += [f"{quote(name)} = %s" for name in sets]
    return (
        f"UPDATE {table} SET {', '.join(assignments)} WHERE id = %s",
        [seq, prev, *increments.values(), *sets.values(), pk],
    )


def append_batch(
    run: Run,
    prepared: PreparedRunItems,
    *,
    head: BatchHead,
    increments: dict[str, int],
    sets: dict,
) -> None:
    """The engine's per-batch append: link and insert `prepared` run items after
    `head` (read by `batch_head` in this transaction) and move the run's head and
    counters, in plain statements (this runs under the write lock once per batch;
    the ORM's query building would double its hold)."""
    # called inside the step run's commit: no savepoint of its own
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        seq, prev = prepared.link_and_insert(head.seq, head.hash)
        cursor.execute(*head_update(run, seq, prev, increments, sets))
    run.ledger_seq, run.ledger_hash = seq, prev
    head.seq, head.hash = seq, prev
