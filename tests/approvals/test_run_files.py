"""A run's files on the run page and the work item page, downloads checked
against the viewer's rights (admin), as attachments."""

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from runs.engine import run_until_idle
from runs.models import StepRun, WorkItem, WorkItemFile
from runs.services import run_start
from tests.factories import make_user


@pytest.fixture
def run_with_files(automation):
    run = run_start(automation=automation("builtin.echo"), inputs=[{"subject": "a"}])
    run_until_idle(run)
    item = WorkItem.objects.filter(run=run).first()
    step_run = StepRun.objects.filter(run=run).first()
    attached = WorkItemFile(work_item=item, name="mail.pdf", size=3, sha256="ab" * 32)
    attached.file.save("mail.pdf", ContentFile(b"pdf"), save=False)
    attached.save()
    artifact = WorkItemFile(step_run=step_run, name="out/log.txt", size=2)
    artifact.file.save("log.txt", ContentFile(b"ok"), save=False)
    artifact.save()
    return run, attached, artifact


def test_run_page_lists_files_with_digests_and_links(admin_client, run_with_files):
    run, attached, artifact = run_with_files
    html = admin_client.get(
        reverse("admin:runs_run_change", args=[run.pk])
    ).content.decode()
    for f in (attached, artifact):
        assert reverse("admin:runs_run_file_download", args=[run.pk, f.pk]) in html
    assert "ab" * 32 in html and "out/log.txt" in html


def test_run_file_download_is_an_attachment(admin_client, run_with_files):
    run, _, artifact = run_with_files
    response = admin_client.get(
        reverse("admin:runs_run_file_download", args=[run.pk, artifact.pk])
    )
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Content-Type"] == "application/octet-stream"
    assert b"".join(response.streaming_content) == b"ok"


def test_run_file_download_refused_without_rights_and_across_runs(
    client, run_with_files, automation
):
    run, attached, _ = run_with_files
    url = reverse("admin:runs_run_file_download", args=[run.pk, attached.pk])
    client.force_login(make_user("staff", is_staff=True))  # no view_run
    assert client.get(url).status_code == 404
    other = run_start(automation=automation("builtin.echo"), inputs=[{}])
    client.force_login(make_user("root", is_superuser=True, is_staff=True))
    foreign = reverse("admin:runs_run_file_download", args=[other.pk, attached.pk])
    assert client.get(foreign).status_code == 404


def test_work_item_page_lists_its_files(admin_client, run_with_files):
    _, attached, _ = run_with_files
    html = admin_client.get(
        reverse("admin:runs_workitem_change", args=[attached.work_item_id])
    ).content.decode()
    assert "mail.pdf" in html and "ab" * 32 in html
