"""The streaming audit CSV: every run item and every audit event of the runs, in
ledger order.

One row per ledger record. A run's run items and audit events share one hash
chain (runs.ledger), so `(run number, seq)` is the order things happened in the
run: the operator's stop sits between the items before and after it. Rows are
typed by the `record` column (`run_item` or `audit_event`); the columns that do
not apply to a type are empty. Audit events are all of the run's chain: the
operator actions (stop, retry, resolve, approve, archive, test case, …, with the
person in `actor`) and the state changes the engine made (`actor` = engine).

Memory is constant: two chunked iterators (`values_list().iterator()`), one per
table, merged on (run number, seq); no model instances, no list of rows. Every
cell goes through `runs.csv.neutralise` (formula cells get a leading `'`).
"""

import heapq
import json

from .csv import stream_rows
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

_RUN = [
    "run__number",
    "run_id",
    "run__automation__slug",
    "run__version__number",
    "run__trigger_kind",
    "run__run_by_label",
    "seq",
]
_ITEM_FIELDS = _RUN + [
    "id",
    "work_item_id",
    "step__name",
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
_EVENT_FIELDS = _RUN + [
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


def _item_row(v) -> list:
    return [
        "run_item", *v[:7],
        v[7], v[8], v[9], v[10], v[11], _json(v[12]), v[13], v[14], v[15],
        v[16], v[17], v[18], v[19], v[20],
        "", "", "", "", "", "",  # actor … reason
        v[21],
    ]


def _event_row(v) -> list:
    at = v[7]
    return [
        "audit_event", *v[:7],
        "", "", "", "", "", "", "", "", "", "", "", "",  # run_item … failure_cause
        at, at,
        v[8], v[9], f"{v[10]}:{v[11]}" if v[10] else "",
        _json(v[12]), _json(v[13]), v[14],
        v[15],
    ]


def audit_rows(runs):
    """Yield the audit CSV rows (lists) of the runs in `runs` (a Run queryset),
    ordered by run number, then ledger seq."""
    run_ids = runs.values("pk")
    items = (
        RunItem.objects.filter(run__in=run_ids)
        .order_by("run__number", "seq")
        .values_list(*_ITEM_FIELDS)
        .iterator(chunk_size=CHUNK_SIZE)
    )
    events = (
        AuditEvent.objects.filter(run__in=run_ids)
        .order_by("run__number", "seq")
        .values_list(*_EVENT_FIELDS)
        .iterator(chunk_size=CHUNK_SIZE)
    )
    merged = heapq.merge(
        ((v[0], v[6], 0, _item_row, v) for v in items),
        ((v[0], v[6], 1, _event_row, v) for v in events),
    )
    for _number, _seq, _kind, shape, values in merged:
        yield shape(values)


def audit_csv(runs):
    """The audit CSV of `runs` as a stream of text lines."""
    return stream_rows(AUDIT_COLUMNS, audit_rows(runs))
