"""The streaming audit CSV: every run item and every audit event of the runs, in
ledger order.

One row per ledger record. A run's run items and audit events share one hash
chain (runs.ledger), so `(run number, seq)` is the order things happened in the
run: the operator's stop sits between the items before and after it. Rows are
typed by the `record` column (`run_item` or `audit_event`); the columns that do
not apply to a type are empty. Audit events are all of the run's chain: the
operator actions (stop, retry, resolve, approve, archive, test case, …, with the
person in `actor`) and the state changes the engine made (`actor` = engine).

Memory is constant: runs are read in number order, and each run's run items and
audit events by their (run, seq) indexes in chunks of CHUNK_SIZE, merged on seq;
no model instances, no list of a run's rows, no sort of the whole table. Every
free-text cell goes through `runs.csv.csv_safe` (formula cells get a leading `'`).

Speed: the statement that reads a chunk of run items also writes their cells as
CSV (quoting, timestamps), so Python only joins the lines; a row with a cell that
starts like a formula is flagged by that statement and written in Python
(`_item_row`), where the neutralising rule lives.
"""

import csv
import datetime
import itertools
import json

from django.db import connection
from django.http import StreamingHttpResponse
from django.utils import timezone

from automations.models import Step, result_url_fill

from .csv import Echo, csv_safe
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
    # after the hash: a link derived from result_ref and the step's result_url
    # template, not part of the ledger record
    "result_url",
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


def _runs(runs):
    """The runs' identifying cells (neutralised once per run), by number."""
    for pk, number, slug, version, trigger, run_by in (
        runs.order_by("number").values_list(*_RUN_FIELDS).iterator(chunk_size=500)
    ):
        yield pk, [number, str(pk), _text(slug), version, trigger, _text(run_by)]


def _step_name(step_id, names) -> str:
    name = names.get(step_id)
    if name is None:
        name = names[step_id] = _text(
            Step.objects.filter(pk=step_id).values_list("name", flat=True).first() or ""
        )
    return name


def _result_url(step_id, result_ref, templates) -> str:
    """The run item's deep link (`Step.result_url` filled), or ''."""
    if not result_ref:
        return ""
    template = templates.get(step_id)
    if template is None:
        template = templates[step_id] = (
            Step.objects.filter(pk=step_id).values_list("result_url", flat=True).first()
            or ""
        )
    return result_url_fill(template, result_ref)


def _item_row(head, v, step_names, templates) -> list:
    (
        seq,
        pk,
        work_item,
        step_id,
        action,
        subject,
        parameters,
        attempt,
        key,
        outcome,
        result_ref,
        failure_type,
        cause,
        started,
        finished,
        digest,
    ) = v
    return [
        "run_item",
        *head,
        seq,
        pk,
        work_item,
        _step_name(step_id, step_names),
        _text(action),
        _text(subject),
        parameters,
        attempt,
        key,
        outcome,
        _text(result_ref),
        failure_type,
        _text(cause),
        started,
        finished,
        "",
        "",
        "",
        "",
        "",
        "",  # actor … reason
        digest,
        _result_url(step_id, result_ref, templates),
    ]


def _event_row(head, v) -> list:
    seq, at, actor, verb, object_type, object_id, before, after, reason, digest = v
    before, after = json.loads(before), json.loads(after)
    return [
        "audit_event",
        *head,
        seq,
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",  # run_item … failure_cause
        at,
        at,
        _text(actor),
        _text(verb),
        f"{object_type}:{object_id}" if object_type else "",
        _json(before),
        _json(after),
        _text(reason),
        digest,
        "",  # result_url
    ]


def _cell(text: str) -> str:
    """`text` as csv.writer writes a cell (excel dialect, QUOTE_MINIMAL): the Python
    twin of `_sql_cell`, for the cells joined into the lines the database writes."""
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _sql_functions():
    if connection.vendor == "sqlite":
        return "instr", "char"
    return "strpos", "chr"


def _sql_cell(expr: str) -> str:
    """SQL writing the text `expr` as `_cell` does."""
    find, char = _sql_functions()
    special = " OR ".join(
        f"{find}({expr}, {c}) > 0"
        for c in ("','", "'\"'", f"{char}(10)", f"{char}(13)")
    )
    quoted = f"'\"' || replace({expr}, '\"', '\"\"') || '\"'"
    return f"(CASE WHEN {special} THEN {quoted} ELSE {expr} END)"


def _sql_time(column: str) -> str:
    """SQL writing a timestamp column in ISO 8601, UTC, as `isoformat()` does:
    '2026-11-22T06:00:00.123456+00:00', or no fraction when it is zero.

    SQLite holds the text Django wrote, which is that with a space for the "T".
    PostgreSQL's own text form drops a fraction's trailing zeros ('.12'), so there
    it is written with to_char: the same bytes on both databases."""
    if connection.vendor == "postgresql":
        utc = f"({column} AT TIME ZONE 'UTC')"
        whole = f"""to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS')"""
        return (
            f"(CASE WHEN to_char({utc}, 'US') = '000000' THEN {whole} "
            f"ELSE {whole} || '.' || to_char({utc}, 'US') END || '+00:00')"
        )
    return f"(replace({column}, ' ', 'T') || '+00:00')"


def _sql_text(column: str) -> str:
    return f"CAST({column} AS TEXT)"


# the free-text cells of a run item, neutralised in Python when one starts like a
# formula (rare: the SQL only flags the row)
_FREE_TEXT = ("action", "subject", "result_ref", "failure_cause")


def _run_item_lines_sql() -> str:
    """One statement that writes each run item's CSV cells, but for its run's
    cells and its step's name, which are the same for many rows: the database
    does per cell what csv.writer and `_item_row` would do in Python."""
    quote = connection.ops.quote_name
    table = quote(RunItem._meta.db_table)
    _, char = _sql_functions()
    starts = f"('=', '+', '-', '@', {char}(9), {char}(13))"
    flag = " OR ".join(f"substr({quote(c)}, 1, 1) IN {starts}" for c in _FREE_TEXT)
    numbers = " || ',' || ".join(
        _sql_text(quote(c)) for c in ("seq", "id", "work_item_id")
    )
    cells = [
        _sql_cell(quote("action")),
        _sql_cell(quote("subject")),
        _sql_cell(_sql_text(quote("parameters"))),
        _sql_text(quote("attempt")),
        _sql_cell(quote("idempotency_key")),
        _sql_cell(quote("outcome")),
        _sql_cell(quote("result_ref")),
        _sql_cell(quote("failure_type")),
        _sql_cell(quote("failure_cause")),
        _sql_time(quote("started_at")),
        _sql_time(quote("finished_at")) + " || ',,,,,,'",  # actor … reason are empty
        quote("hash"),
    ]
    tail = " || ',' || ".join(cells)
    return (
        f"SELECT seq, id, step_id, {quote('result_ref')}, "
        f"CASE WHEN {flag} THEN NULL ELSE {numbers} END, "
        f"CASE WHEN {flag} THEN NULL ELSE {tail} END "
        f"FROM {table} WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT {CHUNK_SIZE}"
    )


def _events_sql() -> str:
    """A chunk of a run's audit events after a seq, in seq order, as text (the JSON
    parsed in Python)."""
    quote = connection.ops.quote_name
    columns = ", ".join(
        _sql_time(quote(name))
        if name == "created_at"
        else _sql_text(quote(name))
        if name in ("before", "after")
        else quote(name)
        for name in _EVENT_FIELDS
    )
    return (
        f"SELECT {columns} FROM {quote(AuditEvent._meta.db_table)} "
        f"WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT {CHUNK_SIZE}"
    )


def _run_item_row(pk):
    """One run item's cells as `_item_row` takes them (JSON and times as text)."""
    quote = connection.ops.quote_name
    columns = ", ".join(
        _sql_time(quote(name))
        if name in ("started_at", "finished_at")
        else _sql_text(quote(name))
        if name == "parameters"
        else quote(name)
        for name in _ITEM_COLUMNS
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM {quote(RunItem._meta.db_table)} WHERE id = %s", [pk]
        )
        return cursor.fetchone()


def _pages(cursor, sql: str, run_value):
    """The rows of a run's chunked `sql` (its ledger rows after a seq, CHUNK_SIZE
    at a time), one chunk in memory at a time. Each chunk is fetched whole, so
    the run items' and the audit events' pages can share one cursor."""
    after = 0
    while True:
        cursor.execute(sql, [run_value, after])
        rows = cursor.fetchall()
        yield from rows
        if len(rows) < CHUNK_SIZE:
            return
        after = rows[-1][0]


def audit_lines(runs):
    """The audit CSV's lines after the header, one per ledger record, as csv.writer
    would write them (tested): each run item's cells are written by the statement
    that reads it, a run's audit events are merged in on seq. Both are read in
    chunks: memory does not grow with the size of a run."""
    sql = _run_item_lines_sql()
    events_sql = _events_sql()
    # the lines Python writes: audit events, rows with a formula cell
    line = csv.writer(Echo()).writerow
    step_names: dict[int, str] = {}
    step_cells: dict[int, str] = {}
    templates: dict[int, str] = {}
    run_field = RunItem._meta.get_field("run").target_field
    for run_id, head in _runs(runs):
        prefix = line(["run_item", *head])[:-2] + ","
        run_value = run_field.get_db_prep_value(run_id, connection)
        with connection.cursor() as cursor:
            events = _pages(cursor, events_sql, run_value)
            event = next(events, None)
            for seq, pk, step_id, ref, first, rest in _pages(cursor, sql, run_value):
                while event is not None and event[0] < seq:
                    yield line(_event_row(head, event))
                    event = next(events, None)
                if rest is None:  # a cell to neutralise: the reference path
                    row = _run_item_row(pk)
                    yield line(_item_row(head, row, step_names, templates))
                    continue
                step = step_cells.get(step_id)
                if step is None:
                    step = step_cells[step_id] = _cell(_step_name(step_id, step_names))
                url = _cell(_result_url(step_id, ref, templates))
                yield f"{prefix}{first},{step},{rest},{url}\r\n"
            while event is not None:
                yield line(_event_row(head, event))
                event = next(events, None)


def audit_csv(runs, *, lines_per_chunk: int = 500):
    """The audit CSV of `runs` as a stream of text chunks (whole lines each)."""
    yield csv.writer(Echo()).writerow(AUDIT_COLUMNS)
    lines = audit_lines(runs)
    while chunk := list(itertools.islice(lines, lines_per_chunk)):
        yield "".join(chunk)


def audit_filename(*, run_number=None, start=None, end=None, at=None) -> str:
    """The audit CSV's file name: what it covers and when it was written, in UTC:
    `audit-trail-run-42-20261201T070005Z.csv`, `audit-trail-2026-11-01-to-
    2026-11-30-20261201T070005Z.csv` (a date range, both days included), or
    `audit-trail-runs-20261201T070005Z.csv` (a list of runs)."""
    stamp = (at or timezone.now()).astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    if run_number is not None:
        what = f"run-{int(run_number)}"
    elif start is not None and end is not None:
        what = f"{start:%Y-%m-%d}-to-{end:%Y-%m-%d}"
    else:
        what = "runs"
    return f"audit-trail-{what}-{stamp}.csv"


def audit_response(runs, filename: str) -> StreamingHttpResponse:
    """The audit CSV of `runs` streamed as a download named `filename` (the
    caller has narrowed `runs` to what the person may export)."""
    response = StreamingHttpResponse(
        audit_csv(runs), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
