"""Deep links: a step's `result_url` template (http(s) only, checked at import)
makes each run item's result reference a link in admin, `result_url` in the API
and in the audit CSV."""

import csv
import io

import pytest
from django.urls import reverse

from automations.definitions import DefinitionError, automation_import
from runs.engine import run_until_idle
from runs.exports import AUDIT_COLUMNS, audit_csv
from runs.models import Run, RunItem
from runs.services import run_start
from tests.api.conftest import client_for
from tests.factories import make_user

TEMPLATE = "https://grc.example/records/{result_ref}"


@pytest.mark.parametrize(
    "template,message",
    [
        ("javascript:alert(1)//{result_ref}", "https:// or http://"),
        ("ftp://grc.example/{result_ref}", "https:// or http://"),
        ("https://grc.example/records", "only placeholder must be {result_ref}"),
        ("https://grc.example/{result_ref}/{other}", "only placeholder"),
        ("https://grc.example/{result_ref", "only placeholder"),
        ("https://" + "x" * 600 + "/{result_ref}", "at most 500"),
        (["https://x/{result_ref}"], "must be a URL"),
    ],
)
def test_a_bad_result_url_is_refused_at_import(db, template, message):
    definition = {
        "slug": "deep",
        "name": "Deep",
        "steps": [{"name": "s", "action": "builtin.echo", "result_url": template}],
    }
    with pytest.raises(DefinitionError, match="steps\\[0\\].result_url") as caught:
        automation_import(definition)
    assert message in str(caught.value)


@pytest.fixture
def linked_run(automation):
    auto = automation({"action": "test.count", "result_url": TEMPLATE})
    run = run_start(automation=auto, inputs=[{"subject": "a"}])
    run_until_idle(run)
    return run


def expected(run):
    item = RunItem.objects.get(run=run)
    return item, f"https://grc.example/records/{item.result_ref}"


def test_api_run_items_carry_result_url(linked_run):
    item, url = expected(linked_run)
    api = client_for(make_user("vic", ["view_run"]))
    [row] = api.get(f"/api/v1/runs/{linked_run.pk}/items/").json()["results"]
    assert (row["result_ref"], row["result_url"]) == (item.result_ref, url)


def test_a_step_without_template_has_an_empty_result_url(automation):
    run = run_start(automation=automation("test.count"), inputs=[{}])
    run_until_idle(run)
    api = client_for(make_user("vic", ["view_run"]))
    [row] = api.get(f"/api/v1/runs/{run.pk}/items/").json()["results"]
    assert row["result_ref"] and row["result_url"] == ""


def test_references_are_quoted_into_the_link(automation):
    from automations.models import result_url_fill

    assert result_url_fill(TEMPLATE, "a/b?c") == (
        "https://grc.example/records/a%2Fb%3Fc"
    )
    assert result_url_fill("javascript:{result_ref}", "x") == ""
    assert result_url_fill(TEMPLATE, "") == ""


def test_admin_shows_the_link(admin_client, linked_run):
    _, url = expected(linked_run)
    page = admin_client.get(reverse("admin:runs_run_change", args=[linked_run.pk]))
    assert f'href="{url}"' in page.content.decode()
    listing = admin_client.get(reverse("admin:runs_runitem_changelist"))
    assert f'href="{url}"' in listing.content.decode()


def test_audit_csv_has_result_url(linked_run):
    item, url = expected(linked_run)
    rows = list(
        csv.DictReader(
            io.StringIO("".join(audit_csv(Run.objects.filter(pk=linked_run.pk))))
        )
    )
    assert AUDIT_COLUMNS[-1] == "result_url"
    [row] = [r for r in rows if r["record"] == "run_item"]
    assert (row["result_ref"], row["result_url"]) == (item.result_ref, url)
    assert all(r["result_url"] == "" for r in rows if r["record"] != "run_item")
