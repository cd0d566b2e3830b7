"""Issue 20, findings 3, 4 and 16: an API client acts with its user's roles, narrowed
to the automations its API client lists, on every endpoint (DESIGN "Trust").

A token granted automation A must not see, change, re-run, export or count a run of
automation B: a foreign run is a 404 on details and controls and is absent from lists,
exports and reports. The walker at the end takes every URL pattern of the API from the
URL resolver, so an endpoint added later is covered without editing this file.
"""

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from automations.models import Trigger, TriggerKind
from runs.api.models import ApiClient
from runs.engine import run_until_idle
from runs.models import AuditEvent, Run, RunItem, WorkItem
from runs.services import run_start
from tests.api.conftest import client_for
from tests.factories import OPERATOR, make_user

EVERYTHING = OPERATOR + ["view_run"]


def post(client, url, body=None):
    return client.post(
        url,
        json.dumps(body if body is not None else {}),
        content_type="application/json",
    )


def unresolved_run(auto, actor=None) -> Run:
    run = run_start(
        automation=auto,
        inputs=[{"subject": "ok"}, {"subject": "no", "bad": True}],
        actor=actor,
    )
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == "unresolved"
    return run


@pytest.fixture
def own_auto(automation):
    return automation("builtin.echo", "test.business_fail", slug="kyc-review")


@pytest.fixture
def foreign_auto(automation):
    return automation("builtin.echo", "test.business_fail", slug="payroll-secret")


@pytest.fixture
def narrowed(db, own_auto):
    """A token user with every run permission whose API client lists kyc-review."""
    user = make_user("erp", EVERYTHING)
    ApiClient.objects.create(user=user, name="ERP").automations.add(own_auto)
    return user


@pytest.fixture
def token(narrowed):
    return client_for(narrowed, token=True)


@pytest.fixture
def own_run(own_auto):
    return unresolved_run(own_auto)


@pytest.fixture
def foreign_run(foreign_auto):
    return unresolved_run(foreign_auto)


def snapshot(run):
    run = Run.objects.get(pk=run.pk)
    return {
        "state": run.state,
        "archived": run.archived,
        "items": sorted(
            WorkItem.objects.filter(run=run).values_list("pk", "state", "attempts")
        ),
        "events": AuditEvent.objects.filter(run=run).count(),
        "run_items": RunItem.objects.filter(run=run).count(),
        "reruns": Run.objects.filter(rerun_of=run).count(),
        "runs": Run.objects.filter(automation_id=run.automation_id).count(),
    }


# --- finding 3: rerun -------------------------------------------------------------


def test_rerun_of_a_foreign_run_is_404_and_starts_nothing(token, foreign_run):
    before = snapshot(foreign_run)
    response = post(token, f"/api/v1/runs/{foreign_run.pk}/rerun/")
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    assert snapshot(foreign_run) == before


def test_rerun_is_recorded_as_api_with_its_actor(token, narrowed, own_run):
    response = post(token, f"/api/v1/runs/{own_run.pk}/rerun/", {"version": "latest"})
    assert response.status_code == 202, response.content
    new = Run.objects.get(pk=response.json()["id"])
    assert (new.trigger_kind, new.run_by, new.rerun_of_id) == (
        TriggerKind.API,
        narrowed,
        own_run.pk,
    )
    assert response.json()["trigger"] == "api"
    created = AuditEvent.objects.get(run=new, verb="run.created")
    assert created.actor == narrowed and created.after["trigger"] == "api"


def test_api_rerun_of_a_draft_version_is_refused(automation, narrowed):
    draft = automation("builtin.echo", slug="kyc-draft", publish=False)
    narrowed.api_client.automations.add(draft)
    run = run_start(automation=draft, inputs=[{"x": 1}])  # a person ran the draft
    run_until_idle(run)
    for version in ("original", "latest"):
        response = post(
            client_for(narrowed, token=True),
            f"/api/v1/runs/{run.pk}/rerun/",
            {"version": version},
        )
        assert response.status_code == 409, response.content
        assert response.json()["code"] == "not_runnable"
    assert not Run.objects.filter(rerun_of=run).exists()


def test_api_rerun_needs_an_enabled_api_trigger(automation, narrowed):
    manual_only = automation("builtin.echo", slug="manual-only", triggers=[])
    narrowed.api_client.automations.add(manual_only)
    run = run_start(automation=manual_only)
    response = post(client_for(narrowed, token=True), f"/api/v1/runs/{run.pk}/rerun/")
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "no_api_trigger"
    assert not Run.objects.filter(rerun_of=run).exists()


def test_rerun_by_a_person_in_admin_still_runs_a_draft_by_hand(automation, user):
    from runs.services import run_rerun

    draft = automation("builtin.echo", publish=False)
    run = run_start(automation=draft)
    again = run_rerun(run, actor=user, version="original")
    assert (again.trigger_kind, again.version_id) == (
        TriggerKind.MANUAL,
        run.version_id,
    )


# --- finding 4: the api trigger setting ---------------------------------------------


@pytest.mark.parametrize("triggers", [[], [{"kind": "manual"}]])
def test_trigger_without_an_api_trigger_is_403(automation, narrowed, triggers):
    auto = automation("builtin.echo", triggers=triggers)
    narrowed.api_client.automations.add(auto)
    response = post(
        client_for(narrowed, token=True), f"/api/v1/automations/{auto.slug}/runs/"
    )
    assert response.status_code == 403, response.content
    assert response.json() == {
        "detail": f"automation {auto.slug} has no enabled api trigger",
        "code": "no_api_trigger",
    }
    assert not Run.objects.filter(automation=auto).exists()


def test_trigger_with_a_disabled_api_trigger_is_403(automation, narrowed, api_session):
    auto = automation("builtin.echo")
    narrowed.api_client.automations.add(auto)
    Trigger.objects.filter(automation=auto, kind=TriggerKind.API).update(enabled=False)
    for client in (client_for(narrowed, token=True), api_session):
        response = post(client, f"/api/v1/automations/{auto.slug}/runs/")
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "no_api_trigger"
    assert not Run.objects.filter(automation=auto).exists()


def test_trigger_with_an_enabled_api_trigger_records_it(automation, narrowed):
    auto = automation("builtin.echo")
    narrowed.api_client.automations.add(auto)
    response = post(
        client_for(narrowed, token=True), f"/api/v1/automations/{auto.slug}/runs/"
    )
    assert response.status_code == 202, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert run.trigger == Trigger.objects.get(automation=auto, kind=TriggerKind.API)


@pytest.fixture
def api_session(db):
    return client_for(make_user("person", EVERYTHING))


# --- finding 16: every endpoint obeys the grants ------------------------------------


def test_foreign_run_is_404_on_detail_and_children(token, foreign_run, own_run):
    for suffix in ("", "work-items/", "items/"):
        assert token.get(f"/api/v1/runs/{own_run.pk}/{suffix}").status_code == 200
        response = token.get(f"/api/v1/runs/{foreign_run.pk}/{suffix}")
        assert response.status_code == 404, (suffix, response.content)


@pytest.mark.parametrize(
    "name,body",
    [
        ("stop", {}),
        ("retry", {}),
        ("resolve", {"note": "done by phone"}),
        ("archive", {}),
        ("unarchive", {}),
        ("rerun", {}),
        ("input", {"work_item": 1, "decision": "approve"}),
    ],
)
def test_foreign_run_controls_are_404_and_change_nothing(
    token, foreign_run, name, body
):
    before = snapshot(foreign_run)
    response = post(token, f"/api/v1/runs/{foreign_run.pk}/{name}/", body)
    assert response.status_code == 404, (name, response.content)
    assert snapshot(foreign_run) == before


def test_foreign_runs_are_absent_from_the_list_and_the_export(
    token, own_run, foreign_run
):
    listed = token.get("/api/v1/runs/").json()["results"]
    assert [r["id"] for r in listed] == [str(own_run.pk)]
    filtered = token.get("/api/v1/runs/", {"automation": "payroll-secret"})
    assert filtered.json()["results"] == []
    export = b"".join(token.get("/api/v1/runs/export.csv").streaming_content).decode()
    assert str(own_run.pk) in export and str(foreign_run.pk) not in export
    assert "payroll-secret" not in export


def test_report_counts_only_granted_automations(token, own_run, foreign_run):
    report = token.get("/api/v1/reports/period/").json()
    assert [row["automation"] for row in report["rows"]] == ["kyc-review"]
    assert report["totals"]["runs"] == 1
    csv = b"".join(
        token.get("/api/v1/reports/period/", {"format": "csv"}).streaming_content
    ).decode()
    assert "kyc-review" in csv and "payroll-secret" not in csv


def test_token_without_api_client_sees_no_run(db, own_run):
    loner = make_user("script", EVERYTHING)
    client = client_for(loner, token=True)
    assert client.get("/api/v1/runs/").json()["results"] == []
    assert client.get(f"/api/v1/runs/{own_run.pk}/").status_code == 404


def test_session_user_and_superuser_token_are_not_narrowed(db, own_run, foreign_run):
    person = client_for(make_user("person", EVERYTHING))
    root = client_for(make_user("root", is_superuser=True), token=True)
    for client in (person, root):
        ids = {r["id"] for r in client.get("/api/v1/runs/").json()["results"]}
        assert ids == {str(own_run.pk), str(foreign_run.pk)}


def test_grants_never_widen_the_users_roles(db, own_auto, own_run):
    viewer = make_user("reader", ["view_run"])
    ApiClient.objects.create(user=viewer, name="reader").automations.add(own_auto)
    client = client_for(viewer, token=True)
    assert client.get(f"/api/v1/runs/{own_run.pk}/").status_code == 200
    response = post(client, f"/api/v1/runs/{own_run.pk}/archive/")
    assert response.status_code == 403
    assert client.get("/api/v1/runs/export.csv").status_code == 403


# --- the walker ----------------------------------------------------------------------

METHODS = ("get", "post", "put", "patch", "delete")
# paths that show no run: the schema, its docs page and who-am-i
NO_RUN_DATA = {"runs-api:schema", "runs-api:docs", "runs-api:me"}


def api_patterns():
    """(name, URL kwargs) of every named pattern in the API's URL namespace."""
    resolver = get_resolver()
    [api] = [
        p
        for p in resolver.url_patterns
        if isinstance(p, URLResolver) and p.namespace == "runs-api"
    ]

    def walk(patterns):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns)
            elif isinstance(p, URLPattern) and p.name:
                yield f"runs-api:{p.name}", sorted(p.pattern.regex.groupindex)

    return sorted({(name, tuple(kw)) for name, kw in walk(api.url_patterns)})


def url_for(name, kwargs, run):
    values = {}
    for kw in kwargs:
        if kw in ("pk", "id", "run", "run_id"):
            values[kw] = str(run.pk)
        elif kw in ("slug", "automation"):
            values[kw] = run.automation.slug
        elif kw == "format":
            values[kw] = "json"
        else:  # an id of something in the run: the first of its work items
            values[kw] = str(
                WorkItem.objects.filter(run=run).values_list("pk", flat=True)[0]
            )
    return reverse(name, kwargs=values)


def test_walker_sees_every_endpoint_of_the_schema():
    names = {name for name, _ in api_patterns()}
    assert {
        "runs-api:automation-runs",
        "runs-api:run-list",
        "runs-api:run-detail",
        "runs-api:run-stop",
        "runs-api:run-rerun",
        "runs-api:run-input",
        "runs-api:run-work-items",
        "runs-api:run-items",
        "runs-api:run-export",
        "runs-api:report-period",
    } <= names


def test_every_api_url_hides_a_foreign_run_from_a_narrowed_token(
    token, own_run, foreign_run
):
    before = snapshot(foreign_run)
    secrets = (str(foreign_run.pk), "payroll-secret")
    seen_own = set()
    for name, kwargs in api_patterns():
        if name in NO_RUN_DATA:
            continue
        for method in METHODS:
            # the same URL for our own run answers: the walker builds real URLs
            if method == "get" and kwargs:
                own = token.get(url_for(name, kwargs, own_run))
                if own.status_code == 200:
                    seen_own.add(name)
            url = url_for(name, kwargs, foreign_run)
            if method == "get":
                response = token.get(url)
            else:
                response = getattr(token, method)(
                    url, json.dumps({}), content_type="application/json"
                )
            where = f"{method.upper()} {url} ({name})"
            assert response.status_code < 500, where
            if kwargs:  # addresses the foreign run or automation
                assert response.status_code in (403, 404, 405), (
                    where,
                    response.status_code,
                )
                if response.status_code == 403:  # allowed only for the trigger grant
                    assert response.json()["code"] == "not_granted", where
                continue  # (its error may echo the id or slug the caller sent)
            body = (
                b"".join(response.streaming_content)
                if response.streaming
                else response.content
            ).decode()
            for secret in secrets:  # lists, exports, reports
                assert secret not in body, (where, secret)
    assert snapshot(foreign_run) == before
    assert {"runs-api:run-detail", "runs-api:run-work-items"} <= seen_own
