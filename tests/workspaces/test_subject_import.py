"""Subjects CSV import and export by workspace: a row names its workspace (its
slug; none: `default`), the person importing needs the add and change subject
permissions there, and a row finds the subject to update within that workspace
only (the same kind and reference may exist in two)."""

import io

import pytest
from django.urls import reverse

from automations.models import Subject
from automations.services import workspace_grant
from tests.factories import groups_ensure, make_user

pytestmark = pytest.mark.django_db


def _import(client, csv_text):
    upload = io.BytesIO(csv_text.encode())
    upload.name = "subjects.csv"
    return client.post(
        reverse("admin:automations_subject_import"),
        {"import_file": upload, "format": "0", "resource": "0"},
    )


def _import_confirmed(client, csv_text):
    response = _import(client, csv_text)
    form = response.context.get("confirm_form")
    assert form is not None, response.content.decode()[-3000:]
    data = {name: form[name].value() for name in form.fields}
    return client.post(reverse("admin:automations_subject_process_import"), data)


@pytest.fixture
def lending_author(lending):
    groups_ensure()
    person = make_user("lena")
    workspace_grant(user=person, workspace=lending, role="author")
    return person


def test_a_workspace_author_imports_into_their_workspace(
    client, lending, aml, lending_author
):
    client.force_login(lending_author)
    _import_confirmed(
        client, "workspace,kind,reference,name\nlending,account,A-1,One\n"
    )
    assert Subject.objects.get(reference="A-1").workspace == lending


def test_a_row_of_a_workspace_without_the_right_fails_and_nothing_is_written(
    client, lending, aml, lending_author
):
    client.force_login(lending_author)
    response = _import(
        client,
        "workspace,kind,reference,name\nlending,account,A-1,One\naml,account,A-2,Two\n",
    )
    assert response.context.get("confirm_form") is None
    assert "may not import subjects into workspace aml" in response.content.decode()
    assert not Subject.objects.exists()


def test_an_unknown_workspace_is_a_row_error(client, author, lending):
    client.force_login(author)
    response = _import(client, "workspace,kind,reference\nnowhere,account,A-1\n")
    assert response.context.get("confirm_form") is None
    assert "no workspace &#x27;nowhere&#x27;" in response.content.decode()
    assert not Subject.objects.exists()


def test_a_row_updates_the_subject_of_its_own_workspace_only(
    client, author, lending, aml
):
    Subject.objects.create(workspace=lending, kind="account", reference="A-1", name="L")
    Subject.objects.create(workspace=aml, kind="account", reference="A-1", name="M")
    client.force_login(author)
    _import_confirmed(client, "workspace,kind,reference,name\naml,account,A-1,New\n")
    names = dict(Subject.objects.values_list("workspace__slug", "name"))
    assert names == {"lending": "L", "aml": "New"}


def test_a_file_without_the_column_imports_into_default(client, author):
    client.force_login(author)
    _import_confirmed(client, "kind,reference,name\naccount,A-1,One\n")
    assert Subject.objects.get(reference="A-1").workspace.slug == "default"


def test_the_export_names_the_workspace_and_only_the_callers(
    client, lending, aml, lending_author
):
    Subject.objects.create(workspace=lending, kind="account", reference="A-1")
    Subject.objects.create(workspace=aml, kind="account", reference="A-2")
    client.force_login(lending_author)
    response = client.post(
        reverse("admin:automations_subject_export"),
        {
            "format": "0",
            "resource": "0",
            "subjectresource_workspace": "on",
            "subjectresource_kind": "on",
            "subjectresource_reference": "on",
        },
    )
    assert response.status_code == 200
    lines = response.content.decode().splitlines()
    assert lines == ["workspace,kind,reference", "lending,account,A-1"]
