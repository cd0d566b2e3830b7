"""GET /api/v1/runs/export.csv: streaming, filtered, formula cells neutralised."""

import csv
import io

import pytest
from django.http import StreamingHttpResponse

from runs.engine import run_until_idle
from runs.models import RunItem
from runs.services import run_start
from tests.factories import make_user

from .conftest import client_for


@pytest.fixture
def runs(automation):
    auto = automation("builtin.echo", slug="kyc")
    dangerous = run_start(
        automation=auto,
        inputs=[
            {"subject": '=HYPERLINK("http://x")'},
            {"subject": "@SUM(1)"},
            {"subject": "plain"},
        ],
    )
    other = run_start(
        automation=automation("builtin.echo", slug="other"),
        inputs=[{"subject": "-2+3"}],
    )
    run_until_idle()
    return dangerous, other


def all_rows(response):
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def rows(response):
    """The run item rows (the audit CSV interleaves audit events, see
    tests/reports/test_audit_export.py)."""
    return [row for row in all_rows(response) if row["record"] == "run_item"]


def test_export_streams_every_run_item(api, runs):
    response = api.get("/api/v1/runs/export.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="run-items')
    data = rows(response)
    assert len(data) == RunItem.objects.count() == 4
    first = data[0]
    assert first["automation"] == "kyc" and first["outcome"] == "succeeded"
    assert first["run_id"] == str(runs[0].pk) and first["hash"]


def test_export_neutralises_formula_cells(api, runs):
    subjects = {row["subject"] for row in rows(api.get("/api/v1/runs/export.csv"))}
    assert subjects == {'\'=HYPERLINK("http://x")', "'@SUM(1)", "plain", "'-2+3"}


def test_export_filters(api, runs):
    data = rows(api.get("/api/v1/runs/export.csv?automation=other"))
    assert [row["subject"] for row in data] == ["'-2+3"]
    assert rows(api.get("/api/v1/runs/export.csv?state=pending")) == []


def test_export_honours_accept_text_csv(api, runs):
    response = api.get("/api/v1/runs/export.csv", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and len(rows(response)) == 4


def test_export_bad_filter_is_400(api, db):
    response = api.get("/api/v1/runs/export.csv?created_after=soon")
    assert response.status_code == 400 and response.json()["code"]


def test_export_needs_export_permission(db):
    reader = make_user("reader", ["view_run"])  # the Viewer role may export
    response = client_for(reader).get("/api/v1/runs/export.csv")
    assert response.status_code == 403
    assert "runs.export_run" in response.json()["detail"]


def test_export_needs_authentication(db):
    assert client_for().get("/api/v1/runs/export.csv").status_code == 401


def test_export_reads_in_chunks(api, runs, monkeypatch):
    """Constant memory: runs come from a chunked iterator, each run's items by
    keyset pages of CHUNK_SIZE rows; the pages join up without gaps or repeats."""
    from django.db.models.query import QuerySet

    import runs.exports

    whole = rows(api.get("/api/v1/runs/export.csv"))
    chunk_sizes = []
    real = QuerySet.iterator

    def spy(self, chunk_size=None):
        chunk_sizes.append(chunk_size)
        return real(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    monkeypatch.setattr(runs.exports, "CHUNK_SIZE", 1)
    paged = rows(api.get("/api/v1/runs/export.csv"))
    assert paged == whole and len(paged) == 4
    assert chunk_sizes == [500]  # the runs


def test_export_user_with_permission(db, runs):
    exporter = make_user("exp", ["view_run", "export_run"])
    assert client_for(exporter).get("/api/v1/runs/export.csv").status_code == 200
