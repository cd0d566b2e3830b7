"""GET /api/v1/runs/ (cursor pagination, filters), run detail, work items, run items."""

import pytest
from django.utils import timezone

from runs.api.models import ApiClient
from runs.engine import run_until_idle
from runs.models import Run, RunItem, WorkItem
from runs.services import run_archive, run_start

from .conftest import client_for
from .test_trigger import RUN_FIELDS

WORK_ITEM_FIELDS = {"id", "step", "state", "subject", "payload", "attempts", "failure"}
RUN_ITEM_FIELDS = {
    "id",
    "work_item",
    "step",
    "action",
    "subject",
    "attempt",
    "idempotency_key",
    "outcome",
    "result_ref",
    "result_url",
    "failure_cause",
    "started_at",
    "finished_at",
}


@pytest.fixture
def finished_run(automation):
    """A run with one done and one failed (business) item, settled unresolved."""
    auto = automation("builtin.echo", "test.business_fail", slug="kyc")
    run = run_start(
        automation=auto, inputs=[{"subject": "ok"}, {"subject": "no", "bad": True}]
    )
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == "unresolved"
    return run


def numbers(response):
    return [r["number"] for r in response.json()["results"]]


def test_list_newest_first_with_contract_fields(
    api, automation, django_assert_max_num_queries
):
    auto = automation("builtin.echo")
    runs = [run_start(automation=auto) for _ in range(3)]
    with django_assert_max_num_queries(6):
        response = api.get("/api/v1/runs/")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"next", "previous", "results"}
    assert numbers(response) == [r.number for r in reversed(runs)]
    assert set(data["results"][0]) == RUN_FIELDS


def test_list_query_count_does_not_grow_with_rows(api, automation):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    auto = automation("builtin.echo")
    run_start(automation=auto)
    with CaptureQueriesContext(connection) as few:
        api.get("/api/v1/runs/")
    for _ in range(10):
        run_start(automation=auto)
    with CaptureQueriesContext(connection) as many:
        assert len(api.get("/api/v1/runs/").json()["results"]) == 11
    assert len(many.captured_queries) == len(few.captured_queries)


def test_cursor_pagination_walks_every_run_once(api, automation):
    auto = automation("builtin.echo")
    made = [run_start(automation=auto).number for _ in range(5)]
    seen, next_url = [], "/api/v1/runs/?page_size=2"
    while next_url:
        response = api.get(next_url)
        assert response.status_code == 200
        assert len(response.json()["results"]) <= 2
        seen += numbers(response)
        next_url = response.json()["next"]
    assert seen == sorted(made, reverse=True)


def test_bad_cursor_is_400(api, db):
    response = api.get("/api/v1/runs/?cursor=garbage")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"


def test_unknown_api_path_is_a_json_404(api, db):
    for path in ("/api/v1/nothing/", "/api/v1/runs/a.b/c/", "/api/v1/runs/x/stop"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def test_filters(api, automation, finished_run):
    other = run_start(automation=automation("builtin.echo", slug="other"))
    run_archive(finished_run)

    def listed(query):
        response = api.get(f"/api/v1/runs/?{query}")
        assert response.status_code == 200, response.content
        return numbers(response)

    assert listed("state=unresolved") == [finished_run.number]
    assert listed("state=unresolved&state=pending") == [
        other.number,
        finished_run.number,
    ]
    assert listed("automation=kyc") == [finished_run.number]
    assert listed("automation=nothing") == []
    assert listed("archived=true") == [finished_run.number]
    assert listed("archived=false") == [other.number]
    assert listed("trigger=manual") == [other.number, finished_run.number]
    assert listed("trigger=api") == []
    Run.objects.filter(pk=finished_run.pk).update(
        created_at=timezone.now() - timezone.timedelta(days=2)
    )
    yesterday = (timezone.now() - timezone.timedelta(days=1)).isoformat()
    from urllib.parse import quote

    assert listed(f"created_after={quote(yesterday)}") == [other.number]
    assert listed(f"created_before={quote(yesterday)}") == [finished_run.number]


def test_datetime_filters_take_any_offset(api, automation):
    """Found by fuzzing: PostgreSQL refused +23:13 (a 500); now normalised to UTC."""
    run = run_start(automation=automation("builtin.echo"))
    response = api.get("/api/v1/runs/?created_after=2000-01-01T00:00:00%2B23:13")
    assert response.status_code == 200 and numbers(response) == [run.number]


@pytest.mark.parametrize(
    "query",
    [
        "state=nonsense",
        "trigger=fax",
        "created_after=yesterday",
        "archived=maybe",
        "created_before=0001-01-01T00:00:00%2B05:00",
    ],
)
def test_bad_filter_is_400(api, db, query):
    response = api.get(f"/api/v1/runs/?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] and body["code"] and "errors" in body


def test_detail(api, finished_run):
    response = api.get(f"/api/v1/runs/{finished_run.pk}/")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == RUN_FIELDS
    assert (data["state"], data["failed_items"], data["version"]) == (
        "unresolved",
        1,
        1,
    )
    assert data["lead_time_seconds"] >= 0 and data["completed_at"]


@pytest.mark.parametrize(
    "pk", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "a.b", "%C2%AA"]
)
def test_unknown_run_is_404(api, db, pk):
    for path in ("", "work-items/", "items/"):
        response = api.get(f"/api/v1/runs/{pk}/{path}")
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def test_work_items(api, finished_run):
    response = api.get(f"/api/v1/runs/{finished_run.pk}/work-items/")
    assert response.status_code == 200
    items = response.json()["results"]
    assert all(set(item) == WORK_ITEM_FIELDS for item in items)
    failed = [i for i in items if i["state"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["failure"] == {
        "type": "business",
        "code": "not_eligible",
        "message": "the subject is not eligible",
    }
    assert failed[0]["step"] == "step2" and failed[0]["subject"] == "no"
    assert next(i["failure"] for i in items if i["state"] == "done") is None
    assert len(items) == WorkItem.objects.filter(run=finished_run).count()


def test_work_items_are_paginated(api, automation):
    run = run_start(automation=automation("builtin.echo"), inputs=[{}] * 5)
    first = api.get(f"/api/v1/runs/{run.pk}/work-items/?page_size=3").json()
    second = api.get(first["next"]).json()
    ids = [i["id"] for i in first["results"] + second["results"]]
    assert ids == sorted(WorkItem.objects.filter(run=run).values_list("pk", flat=True))


def test_run_items(api, finished_run):
    response = api.get(f"/api/v1/runs/{finished_run.pk}/items/")
    assert response.status_code == 200
    items = response.json()["results"]
    assert len(items) == RunItem.objects.filter(run=finished_run).count() >= 3
    assert all(set(item) == RUN_ITEM_FIELDS for item in items)
    failed = [i for i in items if i["outcome"] == "failed"]
    assert failed[0]["action"] == "test.business_fail"
    assert "not eligible" in failed[0]["failure_cause"]


def test_reads_need_view_permission(nobody, finished_run):
    client = client_for(nobody)
    for path in (
        "",
        f"{finished_run.pk}/",
        f"{finished_run.pk}/work-items/",
        f"{finished_run.pk}/items/",
    ):
        response = client.get(f"/api/v1/runs/{path}")
        assert response.status_code == 403, path
        assert response.json()["code"] == "permission_denied"


def test_viewer_reads(viewer, finished_run):
    response = client_for(viewer).get("/api/v1/runs/")
    assert response.status_code == 200 and numbers(response) == [finished_run.number]


def test_reads_need_authentication(finished_run):
    response = client_for().get("/api/v1/runs/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_token_authentication_reads(viewer, finished_run):
    # a token reads what its API client is granted (tests/security: the rest)
    ApiClient.objects.create(user=viewer, name="reader").automations.add(
        finished_run.automation
    )
    response = client_for(viewer, token=True).get(f"/api/v1/runs/{finished_run.pk}/")
    assert response.status_code == 200


def test_bad_token_is_401(finished_run):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.get("/api/v1/runs/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_me_names_the_credentials(viewer):
    assert client_for(viewer, token=True).get("/api/v1/me/").json() == {
        "username": "victor",
        "auth": "token",
    }
    assert client_for(viewer).get("/api/v1/me/").json()["auth"] == "session"
    assert client_for().get("/api/v1/me/").status_code == 401
