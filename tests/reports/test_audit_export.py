"""The streaming audit CSV: run items and audit events in ledger order."""

import csv
import io

import pytest

from runs.engine import run_until_idle
from runs.exports import AUDIT_COLUMNS
from runs.services import run_archive, run_start
from tests.api.conftest import client_for
from tests.factories import make_user


def _rows(response):
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def exporter(db):
    return client_for(make_user("exp", ["view_run", "export_run", "archive_run"]))


def test_items_and_operator_events_interleave_in_ledger_order(
    automation, exporter, user
):
    auto = automation(
        {"action": "test.business_fail", "parameters": {"note": "=cmd|' /C calc'!A0"}},
        slug="kyc",
    )
    run = run_start(
        automation=auto,
        inputs=[
            {"subject": '=HYPERLINK("http://evil")'},
            {"subject": "+1-2", "bad": 1},
        ],
        actor=user,
    )
    run_until_idle()
    run.refresh_from_db()
    run_archive(run, actor=user, reason="@SUM(A1)")
    rows = _rows(exporter.get("/api/v1/runs/export.csv"))
    assert list(rows[0]) == AUDIT_COLUMNS
    assert [int(r["seq"]) for r in rows] == list(range(1, len(rows) + 1))
    kinds = [r["record"] for r in rows]
    assert kinds.count("run_item") == 2 and kinds[0] == "audit_event"
    assert rows[0]["verb"] == "run.created" and rows[0]["actor"] == "alice"
    archive = rows[-1]
    assert archive["record"] == "audit_event" and archive["verb"] == "run.archived"
    assert archive["reason"] == "'@SUM(A1)"  # neutralised
    items = [r for r in rows if r["record"] == "run_item"]
    assert {r["automation"] for r in items} == {"kyc"}
    assert {r["version"] for r in items} == {"1"} and items[0]["trigger"] == "manual"
    assert {r["subject"] for r in items} == {'\'=HYPERLINK("http://evil")', "'+1-2"}
    failed = next(r for r in items if r["outcome"] == "failed")
    assert failed["failure_cause"] == "the subject is not eligible"
    # parameters are JSON as executed; the cell starts with "{", so it stays as is
    assert '"note": "=cmd' in items[0]["parameters"]
    for row in rows:  # no cell of the file starts like a formula
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")) or (
                value.lstrip("+-").replace(".", "").isdigit()
            )


def test_admin_export_action_streams_the_audit_csv(automation, admin_client):
    run = run_start(automation=automation("builtin.echo"), inputs=[{"subject": "-x"}])
    run_until_idle()
    response = admin_client.post(
        "/admin/runs/run/",
        {
            "action": "export_csv",
            "_selected_action": [run.pk],
            "confirm": "1",
            "what": "audit",
        },
    )
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = _rows(response)
    assert [r["subject"] for r in rows if r["record"] == "run_item"] == ["'-x"]


TRICKY = [
    "plain",
    "comma, inside",
    'a "quoted" word',
    "two\nlines",
    "carriage\rreturn",
    "=SUM(A1:A2)",
    "-12",
    "+3.5",
    "@mention, with comma",
    "\tTAB",
    "ünïcödé ☃",
    "",
]


def test_cells_are_written_as_the_csv_module_reads_them_back(
    automation, exporter, user
):
    """The database writes most cells of the file; every cell must read back as
    the run item's value (neutralised where it starts like a formula), and the
    file must be exactly what csv.writer would write for those cells."""
    import datetime
    import json

    from runs.csv import csv_safe
    from runs.models import RunItem

    auto = automation(
        {"action": "builtin.echo", "parameters": {"note": 'x, "y"\nz', "n": [1, 2]}},
        slug="tricky",
    )
    run = run_start(
        automation=auto, inputs=[{"subject": s} for s in TRICKY], actor=user
    )
    run_until_idle()
    for i, item in enumerate(RunItem.objects.filter(run=run).order_by("seq")):
        # the engine wrote these; the export does not check hashes, so other
        # free-text columns can be given tricky values too
        RunItem.objects.filter(pk=item.pk).update(
            result_ref=TRICKY[(i + 3) % len(TRICKY)],
            failure_cause=TRICKY[(i + 5) % len(TRICKY)],
        )
    response = exporter.get("/api/v1/runs/export.csv")
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    rewritten = io.StringIO()
    csv.writer(rewritten).writerows(rows)
    assert rewritten.getvalue() == text  # minimal quoting, CRLF, like csv.writer
    header, body = rows[0], rows[1:]
    assert header == AUDIT_COLUMNS
    cells = [dict(zip(header, row)) for row in body if row[0] == "run_item"]
    items = list(RunItem.objects.filter(run=run).select_related("step").order_by("seq"))
    assert len(cells) == len(items) == len(TRICKY)

    def when(value):
        return datetime.datetime.fromisoformat(value)

    for cell, item in zip(cells, items):
        assert cell["seq"] == str(item.seq) and cell["run_item"] == str(item.pk)
        assert cell["work_item"] == str(item.work_item_id)
        assert cell["step"] == csv_safe(item.step.name)
        assert cell["action"] == csv_safe(item.action)
        assert cell["subject"] == csv_safe(item.subject)
        assert cell["result_ref"] == csv_safe(item.result_ref)
        assert cell["failure_cause"] == csv_safe(item.failure_cause)
        assert json.loads(cell["parameters"]) == item.parameters
        assert cell["attempt"] == str(item.attempt)
        assert cell["idempotency_key"] == item.idempotency_key
        assert cell["outcome"] == item.outcome and cell["hash"] == item.hash
        assert when(cell["started_at"]) == item.started_at
        assert when(cell["finished_at"]) == item.finished_at
        assert cell["run_number"] == str(run.number) and cell["automation"] == "tricky"
        assert all(
            cell[c] == "" for c in ("actor", "verb", "object", "before", "after")
        )
    subjects = {cell["subject"] for cell in cells}
    assert "'=SUM(A1:A2)" in subjects and "-12" in subjects and "'\tTAB" in subjects


def _export_rows(runs):
    from runs.exports import audit_csv

    return list(csv.DictReader(io.StringIO("".join(audit_csv(runs)))))


def test_audit_events_of_a_run_are_read_in_pages(automation, user, monkeypatch):
    """Constant memory: a run's audit events come in chunks of CHUNK_SIZE by seq,
    like its run items, never all at once; the ledger order is kept."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from runs import exports, ledger
    from runs.models import AuditEvent, Run

    run = run_start(
        automation=automation("builtin.echo"), inputs=[{"a": i} for i in range(3)]
    )
    run_until_idle()
    run.refresh_from_db()
    for n in range(7):
        ledger.append(run=run, events=[ledger.audit_event(verb=f"test.e{n}", run=run)])
    events = AuditEvent.objects.filter(run=run).count()
    assert events >= 10
    monkeypatch.setattr(exports, "CHUNK_SIZE", 3)
    with CaptureQueriesContext(connection) as queries:
        rows = _export_rows(Run.objects.filter(pk=run.pk))
    table = AuditEvent._meta.db_table
    reads = [
        q["sql"] for q in queries.captured_queries if f'FROM "{table}"' in q["sql"]
    ]
    assert len(reads) >= events // 3 and all("LIMIT 3" in sql for sql in reads)
    assert [int(r["seq"]) for r in rows] == list(range(1, run.ledger_seq + 1))
    assert [r["record"] for r in rows].count("audit_event") == events


# microseconds as isoformat writes them: none when 0, else all six digits
MOMENTS = [
    (2026, 3, 1, 12, 0, 0, 0),
    (2026, 3, 1, 12, 0, 0, 120000),
    (2026, 3, 1, 12, 0, 0, 5),
    (1999, 12, 31, 23, 59, 59, 123456),
]


def test_timestamps_are_written_byte_for_byte_as_on_sqlite(automation, user):
    """SQLite keeps a timestamp as Django wrote it, which the export turns into
    `isoformat()` in UTC; PostgreSQL's text form drops trailing zeros of the
    fraction. The file must be the same on both."""
    import datetime

    from runs.models import AuditEvent, Run, RunItem

    auto = automation("builtin.echo")
    run = run_start(
        automation=auto,
        inputs=[{"subject": f"s{i}"} for i in range(3)] + [{"subject": "=formula"}],
    )
    run_until_idle()
    moments = [datetime.datetime(*m, tzinfo=datetime.UTC) for m in MOMENTS]
    items = list(RunItem.objects.filter(run=run).order_by("seq"))
    assert len(items) == 4
    for item, moment in zip(items, moments):
        RunItem.objects.filter(pk=item.pk).update(
            started_at=moment, finished_at=moment + datetime.timedelta(microseconds=1)
        )
    events = list(AuditEvent.objects.filter(run=run).order_by("seq"))
    for event, moment in zip(events, moments):
        AuditEvent.objects.filter(pk=event.pk).update(created_at=moment)
    rows = _export_rows(Run.objects.filter(pk=run.pk))
    written = {
        (r["record"], r["seq"]): (r["started_at"], r["finished_at"]) for r in rows
    }
    for item, moment in zip(items, moments):
        later = moment + datetime.timedelta(microseconds=1)
        assert written["run_item", str(item.seq)] == (
            moment.isoformat(),
            later.isoformat(),
        )
    for event, moment in zip(events, moments):
        assert written["audit_event", str(event.seq)] == (moment.isoformat(),) * 2
    # the formula row goes the Python way, with the same rule
    assert any(r["subject"] == "'=formula" for r in rows)
