"""Automation admin: run now, publish, diff, definitions import, subjects CSV."""

import io
import json

import pytest
from django.urls import reverse

from automations.models import Automation, AutomationVersion, Subject
from runs.models import Run


def _version(automation, number):
    return AutomationVersion.objects.get(automation=automation, number=number)


# -- run now -------------------------------------------------------------------


@pytest.mark.django_db
def test_run_now_starts_a_run_with_the_inputs(login, operator, automation):
    auto = automation("builtin.echo")
    url = reverse("admin:automations_automation_run_now", args=[auto.pk])
    response = login(operator).post(
        url,
        {
            "version": auto.latest_version().pk,
            "inputs": '[{"subject": "acct:1"}, {"subject": "acct:2"}]',
        },
    )
    run = Run.objects.get(automation=auto)
    assert response.status_code == 302 and response["Location"].endswith(
        reverse("admin:runs_run_change", args=[run.pk])
    )
    assert run.inputs == [{"subject": "acct:1"}, {"subject": "acct:2"}]
    assert run.run_by == operator and run.trigger_kind == "manual"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "inputs,message",
    [
        ("{not json", "Not valid JSON"),
        ("[1, 2]", "inputs[0] must be a JSON object"),
        ('"text"', "inputs must be a list of JSON objects"),
    ],
)
def test_run_now_refuses_bad_inputs(login, operator, automation, inputs, message):
    auto = automation("builtin.echo")
    url = reverse("admin:automations_automation_run_now", args=[auto.pk])
    response = login(operator).post(
        url, {"version": auto.latest_version().pk, "inputs": inputs}
    )
    assert response.status_code == 200 and message in response.content.decode()
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_run_now_without_permission_is_403(login, viewer, automation):
    auto = automation("builtin.echo")
    url = reverse("admin:automations_automation_run_now", args=[auto.pk])
    client = login(viewer)
    assert client.get(url).status_code == 403
    assert client.post(url, {"version": auto.latest_version().pk}).status_code == 403
    assert not Run.objects.exists()


# -- publish and diff -------------------------------------------------------------


@pytest.mark.django_db
def test_publish_a_draft_version(login, author, automation):
    auto = automation("builtin.echo", publish=False)
    version = auto.latest_version()
    url = reverse("admin:automations_automationversion_publish", args=[version.pk])
    client = login(author)
    assert b"Publishing freezes" in client.get(url).content
    client.post(url)
    version.refresh_from_db()
    assert version.is_published


@pytest.mark.django_db
def test_publish_refuses_a_published_version(login, author, automation):
    auto = automation("builtin.echo")
    version = auto.latest_version()
    published_at = version.published_at
    url = reverse("admin:automations_automationversion_publish", args=[version.pk])
    response = login(author).post(url, follow=True)
    assert b"already published" in response.content
    version.refresh_from_db()
    assert version.published_at == published_at


@pytest.mark.django_db
def test_publish_without_permission_is_403(login, operator, automation):
    auto = automation("builtin.echo", publish=False)
    version = auto.latest_version()
    client = login(operator)
    url = reverse("admin:automations_automationversion_publish", args=[version.pk])
    assert client.post(url).status_code == 403
    response = client.post(
        reverse("admin:automations_automationversion_changelist"),
        {"action": "publish_versions", "_selected_action": [version.pk]},
    )
    version.refresh_from_db()
    assert not version.is_published
    assert response.status_code in (200, 302)  # action not offered: nothing done


@pytest.mark.django_db
def test_diff_between_versions(login, viewer, automation):
    from automations.definitions import automation_import

    auto = automation("builtin.echo", slug="diffy")
    automation_import(
        {
            "slug": "diffy",
            "name": "Diffy",
            "steps": [
                {"name": "step1", "action": "builtin.echo"},
                {
                    "name": "check",
                    "action": "builtin.require",
                    "parameters": {"fields": ["a"]},
                },
            ],
        }
    )
    url = reverse(
        "admin:automations_automationversion_diff", args=[_version(auto, 2).pk]
    )
    page = login(viewer).get(url).content.decode()
    assert '<span class="add">+' in page and "builtin.require" in page


# -- definitions import ------------------------------------------------------------

GOOD = {
    "slug": "imported",
    "name": "Imported",
    "publish": True,
    "steps": [{"name": "a", "action": "builtin.echo"}],
}


def _upload(client, data, name="defs.json"):
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    upload = io.BytesIO(body)
    upload.name = name
    return client.post(
        reverse("admin:automations_automation_import_definitions"), {"file": upload}
    )


@pytest.mark.django_db
def test_definitions_import_previews_then_imports(login, author):
    client = login(author)
    preview = _upload(client, [GOOD])
    assert b"Preview" in preview.content and b"imported: v1" in preview.content
    assert not Automation.objects.filter(slug="imported").exists()  # preview only
    payload = preview.context["payload"]
    response = client.post(
        reverse("admin:automations_automation_import_definitions"), {"payload": payload}
    )
    assert response.status_code == 302
    assert Automation.objects.get(slug="imported").latest_version().is_published


@pytest.mark.django_db
def test_definitions_import_with_one_bad_definition_imports_nothing(login, author):
    bad = {
        "slug": "broken",
        "name": "B",
        "steps": [{"name": "a", "action": "no.such.action"}],
    }
    response = _upload(login(author), [GOOD, bad])
    page = response.content.decode()
    assert "nothing will be imported" in page and "steps[0].action" in page
    assert 'name="payload"' not in page  # cannot confirm
    assert not Automation.objects.filter(slug__in=["imported", "broken"]).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("body", [b"\xff\xfe", b"{unclosed", b"a,b\n1,2\n"])
def test_definitions_import_refuses_an_unreadable_file(login, author, body):
    response = _upload(login(author), body)
    assert response.status_code == 200 and b"errorlist" in response.content
    assert not Automation.objects.exists()


@pytest.mark.django_db
def test_definitions_import_without_permission_is_403(login, operator):
    assert _upload(login(operator), [GOOD]).status_code == 403


# -- subjects CSV import ----------------------------------------------------------


def _subjects_import(client, csv_text):
    from import_export.formats.base_formats import CSV

    upload = io.BytesIO(csv_text.encode())
    upload.name = "subjects.csv"
    formats = [f.__name__ for f in [CSV]]
    return client.post(
        reverse("admin:automations_subject_import"),
        {"import_file": upload, "format": "0", "resource": "0"},
    ), formats


@pytest.mark.django_db
def test_subjects_import_preview_then_confirm(login, author):
    client = login(author)
    response, _ = _subjects_import(
        client,
        "kind,reference,name,status,due_on,attributes\n"
        'account,ACC-9,Nine,active,2030-01-02,"{""a"": 1}"\n',
    )
    assert response.status_code == 200 and b"ACC-9" in response.content
    assert not Subject.objects.exists()  # preview
    form = response.context["confirm_form"]
    data = {name: form[name].value() for name in form.fields}
    client.post(reverse("admin:automations_subject_process_import"), data)
    subject = Subject.objects.get(reference="ACC-9")
    assert subject.attributes == {"a": 1} and str(subject.due_on) == "2030-01-02"


@pytest.mark.django_db
def test_subjects_import_with_a_bad_row_changes_nothing(login, author):
    Subject.objects.create(kind="account", reference="ACC-1", name="Before")
    response, _ = _subjects_import(
        login(author),
        "kind,reference,name,status,due_on,attributes\n"
        "account,ACC-1,After,active,,\n"
        "account,ACC-2,Two,active,not-a-date,\n",
    )
    page = response.content.decode()
    assert (
        "confirm_form" not in response.context
        or response.context["confirm_form"] is None
    )
    assert "Some rows failed to validate" in page
    assert "Value could not be parsed using defined formats" in page
    assert Subject.objects.get(reference="ACC-1").name == "Before"
    assert not Subject.objects.filter(reference="ACC-2").exists()


@pytest.mark.django_db
def test_subjects_import_without_permission_is_403(login, operator):
    response, _ = _subjects_import(login(operator), "kind,reference\naccount,X\n")
    assert response.status_code == 403
    assert not Subject.objects.exists()


@pytest.mark.django_db
def test_subjects_export_neutralises_formulas(login, viewer):
    Subject.objects.create(kind="account", reference="=cmd|' /C calc'!A0", name="@x")
    response = login(viewer).post(
        reverse("admin:automations_subject_export"),
        {
            "format": "0",
            "resource": "0",
            "subjectresource_kind": "on",
            "subjectresource_reference": "on",
            "subjectresource_name": "on",
        },
    )
    body = response.content.decode()
    assert "'=cmd" in body and "'@x" in body


# -- dashboard ------------------------------------------------------------------


@pytest.mark.django_db
def test_dashboard_on_the_admin_index(login, viewer, unresolved_run, completed_run):
    waiting, done = unresolved_run(), completed_run()
    page = login(viewer).get(reverse("admin:index")).content.decode()
    assert 'id="runs-dashboard"' in page and "<svg" in page
    assert f"Run #{waiting.number}" in page  # waiting for someone
    assert f"Run #{done.number}</a>" not in page
    assert waiting.automation.name in page and done.automation.name in page
