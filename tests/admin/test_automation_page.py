"""The automation page and its doors without a browser (issue 18): four-eyes
publishing in the service, the list's fixed query count and workspace scoping,
the error pages."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from automations.definitions import DefinitionError, automation_import
from automations.models import Automation, AutomationVersion
from automations.services import AutomationStateError, version_publish
from runs.engine import run_until_idle
from runs.models import AuditEvent
from runs.services import run_start
from tests.factories import make_user


def _definition(slug, steps=("builtin.echo",), publish=False, **extra):
    return {
        "slug": slug,
        "name": slug.title(),
        "publish": publish,
        "steps": [{"name": f"s{i}", "action": a} for i, a in enumerate(steps)],
        "triggers": [{"kind": "manual"}],
        **extra,
    }


# -- four eyes -----------------------------------------------------------------


@pytest.fixture
def four_eyes(author):
    """kyc with publishing by a second person; v1 made by ada (a draft)."""
    automation_import(_definition("kyc"), actor=author)
    kyc = Automation.objects.get(slug="kyc")
    kyc.publish_needs_second_person = True
    kyc.save()
    return AutomationVersion.objects.get(automation=kyc, number=1)


@pytest.mark.django_db
def test_setting_four_eyes_is_an_audit_event(four_eyes):
    event = AuditEvent.objects.filter(verb="automation.changed").latest("id")
    assert event.after == {"publish_needs_second_person": True}
    assert event.before == {"publish_needs_second_person": False}


@pytest.mark.django_db
def test_the_maker_may_not_publish_another_person_may(four_eyes, author):
    with pytest.raises(AutomationStateError, match="needs a second person"):
        version_publish(four_eyes, actor=author)
    four_eyes.refresh_from_db()
    assert not four_eyes.is_published
    assert not AuditEvent.objects.filter(verb="version.published").exists()
    with pytest.raises(AutomationStateError, match="not the system"):
        version_publish(four_eyes, actor=None)

    bea = make_user("bea", role="Author")
    version_publish(four_eyes, actor=bea)
    four_eyes.refresh_from_db()
    assert four_eyes.is_published
    event = AuditEvent.objects.get(verb="version.published")
    assert event.actor == bea
    assert event.after["made_by"] == "ada" and event.after["second_person"] is True


@pytest.mark.django_db
def test_an_import_that_publishes_its_own_version_is_refused_whole(four_eyes, author):
    with pytest.raises(DefinitionError, match="publish: .*needs a second person"):
        automation_import(
            _definition("kyc", steps=("builtin.echo", "builtin.echo"), publish=True),
            actor=author,
        )
    assert AutomationVersion.objects.filter(automation__slug="kyc").count() == 1


@pytest.mark.django_db
def test_without_four_eyes_the_maker_publishes(author):
    automation_import(_definition("solo", publish=True), actor=author)
    version = AutomationVersion.objects.get(automation__slug="solo")
    assert version.is_published and version.created_by == author
    event = AuditEvent.objects.get(verb="version.published")
    assert event.after["second_person"] is False


@pytest.mark.django_db
def test_the_publish_post_of_the_maker_is_refused(four_eyes, author, client):
    client.force_login(author)
    url = reverse("admin:automations_automationversion_publish", args=[four_eyes.pk])
    response = client.post(url, follow=True)
    assert "needs a second person" in response.content.decode()
    four_eyes.refresh_from_db()
    assert not four_eyes.is_published


# -- the list ------------------------------------------------------------------


def _list_queries(client, user):
    client.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:automations_automation_changelist"))
    assert response.status_code == 200
    return len(queries), response.content.decode()


@pytest.mark.django_db
def test_the_list_has_a_fixed_query_count(author, client):
    def add(slug):
        automation_import(
            _definition(
                slug,
                publish=True,
                triggers=[{"kind": "schedule", "cron": "0 6 * * 1"}],
            ),
            actor=author,
        )
        run_until_idle(
            run_start(automation=Automation.objects.get(slug=slug), inputs=[{}])
        )

    add("one")
    few, _ = _list_queries(client, author)
    for slug in ("two", "three", "four", "five"):
        add(slug)
    many, body = _list_queries(client, author)
    assert many == few, (few, many)
    assert body.count('class="field-next_run"') == 5


@pytest.mark.django_db
def test_the_last_run_is_one_the_person_may_see(lending, aml, client):
    """A person who may see lending's automations but not its runs gets no link."""
    automation_import(_definition("loans", publish=True, workspace="lending"))
    run_until_idle(
        run_start(automation=Automation.objects.get(slug="loans"), inputs=[{}])
    )
    designer = make_user("dee", ["automations.view_automation"], is_staff=True)
    _, body = _list_queries(client, designer)
    assert "loans" in body and "runs/run/" not in body


# -- error pages ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_server_error_page_in_the_admin_look(client, monkeypatch):
    def broken():
        raise RuntimeError("secret detail of the failure")

    monkeypatch.setattr("runs.ops.health.readiness", broken)
    client.raise_request_exception = False
    response = client.get("/readyz")
    body = response.content.decode()
    assert response.status_code == 500
    assert 'data-status="500"' in body and reverse("admin:index") in body
    assert "secret detail" not in body


@pytest.mark.django_db
def test_a_refused_page_says_nothing_of_the_exception(client, viewer, automation):
    auto = automation("builtin.echo")
    client.force_login(viewer)
    response = client.get(
        reverse("admin:automations_automation_run_now", args=[auto.pk])
    )
    body = response.content.decode()
    assert response.status_code == 403
    assert 'data-status="403"' in body and "Signed in as victor" in body


# -- recent runs ---------------------------------------------------------------


@pytest.mark.django_db
def test_recent_runs_show_only_to_who_may_view_runs(client, automation):
    """The automation page's "Recent runs" names runs: someone who may see the
    automation but not its runs is shown none."""
    auto = automation()
    run = run_start(automation=auto, inputs=[{"n": 1}])
    page = reverse("admin:automations_automation_change", args=[auto.pk])
    configurer = make_user(
        "cora",
        ["automations.view_automation", "automations.change_automation"],
        is_staff=True,
    )
    client.force_login(configurer)
    response = client.get(page)
    assert response.status_code == 200
    assert (
        reverse("admin:runs_run_change", args=[run.pk]) not in response.content.decode()
    )
    client.force_login(make_user("vera", role="Viewer"))
    assert (
        reverse("admin:runs_run_change", args=[run.pk])
        in client.get(page).content.decode()
    )
