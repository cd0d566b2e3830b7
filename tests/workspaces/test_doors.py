"""Issue 15, done when: every admin and API URL pattern, taken from the URL
resolver (so a new one is covered without editing this file), walked by a person of
another workspace, answers 404 for every object of the first, and its lists show
none of its rows; nothing of it changes."""

import json

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from automations.admin.scoping import WorkspaceScopedAdmin
from runs.models import WorkItem, WorkItemFile
from tests.api.conftest import client_for
from tests.security.test_api_grants import METHODS, NO_RUN_DATA, api_patterns

from .conftest import FOREIGN_SLUG, snapshot


def admin_patterns():
    """(name, URL kwargs) of every named pattern of the admin site."""
    [site] = [
        p
        for p in get_resolver().url_patterns
        if isinstance(p, URLResolver) and p.namespace == "admin"
    ]

    def walk(patterns):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns)
            elif isinstance(p, URLPattern) and p.name:
                yield f"admin:{p.name}", tuple(sorted(p.pattern.regex.groupindex))

    return sorted(set(walk(site.url_patterns)))


def model_admin_for(name):
    """The ModelAdmin whose URL `admin:<app>_<model>_<view>` is, or None."""
    for model, model_admin in admin.site._registry.items():
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}_"
        if name.startswith(prefix):
            return model, model_admin
    return None, None


def foreign_object(model, model_admin, workspace):
    return (
        model._default_manager.filter(**{model_admin.workspace_path: workspace})
        .order_by("pk")
        .first()
    )


def admin_url(name, kwargs, obj, run, automation):
    values = {}
    for kw in kwargs:
        if kw == "object_id" and obj is not None:
            values[kw] = obj.pk
        elif kw == "pk":  # the run page's evidence pack
            values[kw] = run.pk
        elif kw == "automation_id":
            values[kw] = automation.pk
        elif kw == "action_name":
            values[kw] = "stop"
        elif kw in ("item_id", "file_id"):
            stored = WorkItemFile.objects.filter(work_item__run=run).first()
            values[kw] = stored.work_item_id if kw == "item_id" else stored.pk
        elif kw == "app_label":
            values[kw] = "runs"
        elif kw == "content_type_id":
            from django.contrib.contenttypes.models import ContentType

            values[kw] = ContentType.objects.get_for_model(type(obj or run)).pk
        else:
            values[kw] = obj.pk if obj is not None else run.pk
    return reverse(name, kwargs=values)


def body(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def test_every_admin_url_hides_the_other_workspace(client, lena, aml, own, foreign):
    auto, run = foreign
    before = snapshot(run)
    client.force_login(lena)
    secrets = (FOREIGN_SLUG, "Aml Secret", str(run.pk))
    walked, scoped_models = 0, set()
    for name, kwargs in admin_patterns():
        if name in ("admin:logout",):
            continue
        model, model_admin = model_admin_for(name)
        scoped = isinstance(model_admin, WorkspaceScopedAdmin)
        obj = foreign_object(model, model_admin, aml) if scoped else None
        if scoped:
            assert obj is not None, f"no foreign {model.__name__} to walk with"
            scoped_models.add(model)
        if kwargs and not scoped:
            # a tenant-level object (users, groups, workspaces, API clients and
            # tokens, the queue): no object of a workspace to address
            continue
        url = admin_url(name, kwargs, obj, run, auto) if kwargs else reverse(name)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            walked += 1
            where = f"{method.upper()} {url} ({name})"
            assert response.status_code < 500, where
            if kwargs:
                if response.status_code == 403 and "object_id" in kwargs:
                    # Django refuses a POST to a read-only model before it looks
                    # the object up: the same answer as for an id that exists
                    # nowhere, so it confirms nothing
                    unknown = url.replace(f"/{obj.pk}/", "/0/", 1)
                    assert getattr(client, method)(unknown).status_code == 403
                    continue
                assert response.status_code == 404, (where, response.status_code)
                continue
            if response.status_code == 200:
                text = body(response)
                for secret in secrets:
                    assert secret not in text, (where, secret)
    # bulk actions of every changelist on the foreign rows change nothing
    for model, model_admin in admin.site._registry.items():
        if not isinstance(model_admin, WorkspaceScopedAdmin):
            continue
        obj = foreign_object(model, model_admin, aml)
        changelist = reverse(
            f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
        )
        for action in model_admin.get_actions(_request(lena)):
            response = client.post(
                changelist,
                {"action": action, "_selected_action": [obj.pk], "confirm": "1"},
            )
            assert response.status_code < 500, (changelist, action)
            if response.status_code == 200:
                for secret in secrets:
                    assert secret not in body(response), (changelist, action)
    assert snapshot(run) == before
    assert walked > 100
    assert len(scoped_models) >= 15


def _request(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = user
    return request


def test_the_admin_lists_show_our_rows_and_a_workspace_column(
    client, lena, own, foreign
):
    client.force_login(lena)
    _auto, run = own
    page = client.get(reverse("admin:runs_run_changelist"))
    assert page.status_code == 200
    text = page.content.decode()
    assert f"#{run.number}" in text and "lending" in text
    assert FOREIGN_SLUG not in text
    detail = client.get(reverse("admin:runs_run_change", args=[run.pk]))
    assert detail.status_code == 200
    assert client.get(reverse("admin:index")).status_code == 200


@pytest.mark.parametrize("token", [False, True])
def test_every_api_url_hides_the_other_workspace(lena, own, foreign, token):
    auto, run = foreign
    # a grant list naming the foreign automation never widens Lena's roles
    from runs.api.models import ApiClient

    client_row = ApiClient.objects.create(user=lena, name="lena")
    client_row.automations.add(own[0], auto)
    client = client_for(lena, token=token)
    before = snapshot(run)
    secrets = (str(run.pk), FOREIGN_SLUG)
    seen_own = set()
    for name, kwargs in api_patterns():
        if name in NO_RUN_DATA:
            continue
        for method in METHODS:
            values = {}
            for kw in kwargs:
                if kw in ("pk", "id", "run", "run_id"):
                    values[kw] = str(run.pk)
                elif kw in ("slug", "automation"):
                    values[kw] = auto.slug
                elif kw == "file_id":
                    values[kw] = WorkItemFile.objects.filter(work_item__run=run)[0].pk
                else:
                    values[kw] = WorkItem.objects.filter(run=run)[0].pk
            url = reverse(name, kwargs=values)
            if method == "get" and kwargs:
                own_values = {
                    k: (own[1].pk if k == "pk" else own[0].slug)
                    for k in kwargs
                    if k in ("pk", "slug")
                }
                if len(own_values) == len(kwargs):
                    answer = client.get(reverse(name, kwargs=own_values))
                    if answer.status_code == 200:
                        seen_own.add(name)
            if method == "get":
                response = client.get(url)
            else:
                response = getattr(client, method)(
                    url, json.dumps({}), content_type="application/json"
                )
            where = f"{method.upper()} {url} ({name})"
            assert response.status_code < 500, where
            if kwargs:
                assert response.status_code in (404, 405), (
                    where,
                    response.status_code,
                )
                continue
            text = body(response)
            for secret in secrets:
                assert secret not in text, (where, secret)
    assert snapshot(run) == before
    assert {"runs-api:run-detail", "runs-api:run-items"} <= seen_own


def test_a_person_of_the_other_workspace_sees_theirs(arno, own, foreign):
    client = client_for(arno)
    listed = {r["id"] for r in client.get("/api/v1/runs/").json()["results"]}
    assert str(foreign[1].pk) in listed and str(own[1].pk) not in listed
    answer = client.get(f"/api/v1/runs/{foreign[1].pk}/").json()
    assert answer["workspace"] == "aml"


def test_the_view_on_site_redirect_confirms_no_run(client, lena, foreign):
    """Django admin's `/admin/r/<type>/<id>/` looks any object up without a
    permission check and redirects to its `get_absolute_url`: runs have none, so an
    existing run of another workspace answers as an unknown id does."""
    from django.contrib.contenttypes.models import ContentType

    from runs.models import Run

    _auto, run = foreign
    client.force_login(lena)
    run_type = ContentType.objects.get_for_model(Run).pk
    existing = reverse("admin:view_on_site", args=[run_type, run.pk])
    unknown = reverse(
        "admin:view_on_site", args=[run_type, "00000000-0000-0000-0000-000000000000"]
    )
    assert client.get(existing).status_code == 404
    assert client.get(unknown).status_code == 404
