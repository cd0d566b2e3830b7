"""The streaming audit CSV: every run item and every audit event of the runs, in
ledger order.

One row per ledger record. A run's run items and audit events share one hash
chain (runs.ledger), so `(run number, seq)` is the order things happened in the
run: the operator's stop sits between the items before and after it. Rows are
typed by the `record` column (`run_item` or `audit_event`); the columns that do
not apply to a type are empty. Audit events are all of the run's chain: the
operator actions (stop, retry, resolve, approve, archive, test case, …, with the
person in `actor`) and the state changes the engine made (`actor` = engine).

Memory is constant: runs are read in number order, and each run's run items by
the (run, seq) index in chunks, merged with its audit events on seq; no model
instances, no list of rows, no sort of the whole table. Every free-text cell goes
through `runs.csv.csv_safe` (formula cells get a leading `'`).
"""

import csv
import io
import itertools
import json

from django.db import connection

from automations.models import Step

from .csv import csv_safe
from .models import AuditEvent, RunItem

CHUNK_SIZE = 2000

AUDIT_COLUMNS = [
    "record",
    "run_number",
    "run_id",
    "automation",
    "version",
    "trigger",
    "run_by",
    "seq",
    "run_item",
    "work_item",
    "step",
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
    "actor",
    "verb",
    "object",
    "before",
    "after",
    "reason",
    "hash",
]

_RUN_FIELDS = [
    "pk",
    "number",
    "automation__slug",
    "version__number",
    "trigger_kind",
    "run_by_label",
]
_ITEM_COLUMNS = [
    "seq",
    "id",
    "work_item_id",
    "step_id",
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
    "hash",
]
# Read as the database's text: parsing a million timestamps and JSON objects only
# to print them again was most of an export's time.
_AS_TEXT = {"parameters", "started_at", "finished_at"}
_EVENT_FIELDS = [
    "seq",
    "created_at",
    "actor_label",
    "verb",
    "object_type",
    "object_id",
    "before",
    "after",
    "reason",
    "hash",
]


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _text(value) -> str:
    """A free-text cell (subject, cause, reason, names): neutralised. Numbers,
    UUIDs, hashes, timestamps and JSON objects cannot start like a formula and
    are written as they are."""
    return csv_safe(value) if value else ""


def _time(value) -> str:
    return value.isoformat() if value else ""


def _db_time(text) -> str:
    """A timestamp as the database prints it (UTC), in ISO 8601 like `_time`:
    SQLite '2026-11-22 06:00:00.123456', PostgreSQL '…+00'."""
    if not text:
        return ""
    text = text.replace(" ", "T", 1)
    if text.endswith("+00"):
        return text + ":00"
    return text if "+" in text[10:] else text + "+00:00"


def _runs(runs):
    """The runs' identifying cells (neutralised once per run), by number."""
    for pk, number, slug, version, trigger, run_by in (
        runs.order_by("number").values_list(*_RUN_FIELDS).iterator(chunk_size=500)
    ):
        yield pk, [number, str(pk), _text(slug), version, trigger, _text(run_by)]


def audit_rows(runs):
    """Yield the audit CSV rows (lists of cell values, already neutralised) of the
    runs in `runs` (a Run queryset), ordered by run number, then ledger seq.

    Each run's rows are read by the (run, seq) unique index, so nothing is sorted
    and memory holds one chunk of run items and the run's audit events."""
    step_names: dict[int, str] = {}
    for run_id, head in _runs(runs):
        events = list(
            AuditEvent.objects.filter(run_id=run_id).order_by("seq").values_list(*_EVENT_FIELDS)
        )
        items = _run_items(run_id)
        pending = iter(events)
        event = next(pending, None)
        for item in items:
            while event is not None and event[0] < item[0]:
                yield _event_row(head, event)
                event = next(pending, None)
            yield _item_row(head, item, step_names)
        while event is not None:
            yield _event_row(head, event)
            event = next(pending, None)


def _run_items(run_id):
    """A run's items in seq order, CHUNK_SIZE rows per query by keyset on the
    (run, seq) unique index: constant memory on every backend, no server-side
    cursor, and the hot columns come as text (no parsing to print them again)."""
    quote = connection.ops.quote_name
    table = quote(RunItem._meta.db_table)
    columns = ", ".join(
        f"CAST({quote(name)} AS TEXT)" if name in _AS_TEXT else quote(name)
        for name in _ITEM_COLUMNS
    )
    sql = (
        f"SELECT {columns} FROM {table} WHERE run_id = %s AND seq > %s "
        f"ORDER BY seq LIMIT {CHUNK_SIZE}"
    )
    run_value = RunItem._meta.get_field("run").target_field.get_db_prep_value(
        run_id, connection
    )
    after = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(sql, [run_value, after])
            rows = cursor.fetchall()
            yield from rows
            if len(rows) < CHUNK_SIZE:
                return
            after = rows[-1][0]


def _step_name(step_id, names) -> str:
    name = names.get(step_id)
    if name is None:
        name = names[step_id] = _text(
            Step.objects.filter(pk=step_id).values_list("name", flat=True).first() or ""
        )
    return name


def _item_row(head, v, step_names) -> list:
    (seq, pk, work_item, step_id, action, subject, parameters, attempt, key,
     outcome, result_ref, failure_type, cause, started, finished, digest) = v
    return [
        "run_item", *head, seq,
        pk, work_item, _step_name(step_id, step_names), _text(action), _text(subject),
        parameters, attempt, key, outcome, _text(result_ref), failure_type,
        _text(cause), _db_time(started), _db_time(finished),
        "", "", "", "", "", "",  # actor … reason
        digest,
    ]


def _event_row(head, v) -> list:
    seq, at, actor, verb, object_type, object_id, before, after, reason, digest = v
    at = _time(at)
    return [
        "audit_event", *head, seq,
        "", "", "", "", "", "", "", "", "", "", "", "",  # run_item … failure_cause
        at, at,
        _text(actor), _text(verb), f"{object_type}:{object_id}" if object_type else "",
        _json(before), _json(after), _text(reason),
        digest,
    ]


def audit_csv(runs, *, lines_per_chunk: int = 500):
    """The audit CSV of `runs` as a stream of text chunks (whole lines each)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(AUDIT_COLUMNS)
    rows = audit_rows(runs)
    while True:
        chunk = list(itertools.islice(rows, lines_per_chunk))
        writer.writerows(chunk)
        text = buffer.getvalue()
        if text:
            yield text
        if len(chunk) < lines_per_chunk:
            return
        buffer.seek(0)
        buffer.truncate()
