"""GET /api/v1/audit-events/ and GET /api/v1/runs/{id}/evidence.zip."""

import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from runs.engine import run_until_idle
from runs.evidence import verify as v
from runs.models import AuditEvent
from runs.services import run_archive, run_start


def client_for(user):
    # a person's session: a token is narrowed to its API client's automations
    # (tests/security/test_api_grants.py walks these endpoints with one)
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def reader(db):
    user = get_user_model().objects.create_user("reader")
    user.user_permissions.add(Permission.objects.get(codename="view_run"))
    return user


@pytest.fixture
def run(automation):
    run = run_start(automation=automation("builtin.echo", slug="kyc"), inputs=[{}])
    run_until_idle(run)
    run_archive(run, actor=None, reason="filed")
    run.refresh_from_db()
    return run


def test_audit_events_list_filters_and_pages(reader, run):
    api = client_for(reader)
    body = api.get("/api/v1/audit-events/", {"page_size": 2}).json()
    assert len(body["results"]) == 2 and body["next"]
    ids = [e["id"] for e in body["results"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    following = api.get(body["next"]).json()["results"]
    assert not set(ids) & {e["id"] for e in following}

    mine = api.get("/api/v1/audit-events/", {"run": str(run.pk)}).json()["results"]
    assert mine and {e["run"] for e in mine} == {str(run.pk)}
    assert "run.archived" in {e["verb"] for e in mine}

    config = api.get(
        "/api/v1/audit-events/", {"object_type": "automations.trigger"}
    ).json()["results"]
    assert config and {e["chain"] for e in config} == {"global"}
    assert {e["verb"] for e in config} == {"trigger.created"}

    archived = api.get("/api/v1/audit-events/", {"verb": "run.archived"}).json()
    assert [e["reason"] for e in archived["results"]] == ["filed"]
    first = AuditEvent.objects.order_by("created_at").first().created_at
    none = api.get(
        "/api/v1/audit-events/", {"created_before": first.isoformat()}
    ).json()["results"]
    assert none == []
    assert api.get(
        "/api/v1/audit-events/", {"created_after": first.isoformat()}
    ).json()["results"]


@pytest.mark.parametrize(
    "params",
    [
        {"run": "not-a-uuid"},
        {"created_after": "yesterday"},
        {"cursor": "zzz"},
        {"verb": "x" * 101},
    ],
)
def test_audit_events_bad_filters_are_400(reader, params):
    response = client_for(reader).get("/api/v1/audit-events/", params)
    assert response.status_code == 400, response.content


def test_audit_events_need_view_run(db):
    nobody = get_user_model().objects.create_user("nobody")
    assert client_for(nobody).get("/api/v1/audit-events/").status_code == 403
    assert APIClient().get("/api/v1/audit-events/").status_code == 401


def test_evidence_zip_is_a_verifiable_pack(reader, run, tmp_path):
    response = client_for(reader).get(f"/api/v1/runs/{run.pk}/evidence.zip")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f"evidence-run-{run.number}.zip" in response["Content-Disposition"]
    path = tmp_path / "pack.zip"
    path.write_bytes(b"".join(response.streaming_content))
    assert v.verify_pack(path) == []
    with zipfile.ZipFile(path) as z:
        lines = z.read(v.TRAIL).decode().splitlines()
    assert len(lines) == run.ledger_seq + 1


def test_evidence_zip_needs_the_right_to_read_the_run(db, run):
    nobody = get_user_model().objects.create_user("nobody")
    url = f"/api/v1/runs/{run.pk}/evidence.zip"
    assert client_for(nobody).get(url).status_code == 403
    assert APIClient().get(url).status_code == 401


def test_evidence_zip_of_an_unknown_run_is_404(reader):
    api = client_for(reader)
    assert api.get("/api/v1/runs/not-a-uuid/evidence.zip").status_code == 404
    unknown = "00000000-0000-0000-0000-000000000000"
    response = api.get(f"/api/v1/runs/{unknown}/evidence.zip")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def _admin_client(client, user):
    user.is_staff = True
    user.save()
    client.force_login(user)
    return client


def test_admin_run_page_offers_the_pack_and_serves_it(client, reader, run, tmp_path):
    from django.urls import reverse

    admin = _admin_client(client, reader)
    page = admin.get(reverse("admin:runs_run_change", args=[run.pk]))
    url = reverse("admin:runs_run_evidence", args=[run.pk])
    assert url in page.content.decode()
    response = admin.get(url)
    assert response.status_code == 200
    path = tmp_path / "pack.zip"
    path.write_bytes(b"".join(response.streaming_content))
    assert v.verify_pack(path) == []


def test_admin_period_report_offers_the_pack(client, reader, run, tmp_path):
    from django.urls import reverse

    admin = _admin_client(client, reader)
    report = reverse("admin:runs_run_report")
    page = admin.get(report).content.decode()
    url = reverse("admin:runs_run_report_evidence")
    assert url in page
    response = admin.get(url)
    assert response.status_code == 200
    path = tmp_path / "period.zip"
    path.write_bytes(b"".join(response.streaming_content))
    assert v.verify_pack(path) == []
    with zipfile.ZipFile(path) as z:
        assert str(run.pk) in z.read(v.CHAINS).decode()
    bad = admin.get(url, {"start": "2026-02-01", "end": "2026-01-01"})
    assert bad.status_code == 302  # back to the report, with the reason


def test_admin_packs_need_view_run(client, db, run):
    from django.urls import reverse

    nobody = get_user_model().objects.create_user("nobody", is_staff=True)
    client.force_login(nobody)
    # a run the person may not view is a 404, as one that does not exist (issue 15)
    assert (
        client.get(reverse("admin:runs_run_evidence", args=[run.pk])).status_code == 404
    )
    assert client.get(reverse("admin:runs_run_report_evidence")).status_code == 403
