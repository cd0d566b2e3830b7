"""Findings 2 (second half) and 14: work item files.

- A signed file URL carried only the sequential file id: with the built-in key
  anyone downloaded every file. It now binds the file, a random per-file token and
  an expiry: a forged or reused-for-another-file URL is refused.
- `/media/` was served with no authentication (DEBUG on, as `./dev up` runs), and an
  `.html` attachment came back `text/html` inline from the admin's origin. Files
  are served only through permission-checked views, as attachments, `nosniff`.
"""

import hashlib
import importlib
from email.message import EmailMessage

import pytest
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import clear_url_caches, reverse

from runs.models import WorkItemFile
from runs.robots import tokens
from tests.factories import make_user
from tests.mail.conftest import receive

pytestmark = pytest.mark.django_db

PAGE = b"<html><script>alert(document.cookie)</script></html>"


@pytest.fixture
def mailed_file(automation):
    """An e-mail whose attachment is an HTML page, as the review sent it."""
    automation(
        "builtin.echo",
        slug="invoice-intake",
        triggers=[{"kind": "email", "address": "invoices@runs.example"}],
    )
    message = EmailMessage()
    message["From"] = "supplier@example.com"
    message["To"] = "invoices@runs.example"
    message["Subject"] = "Invoice"
    message["Message-ID"] = "<files-1@example.com>"
    message.set_content("see attached")
    message.add_attachment(PAGE, maintype="text", subtype="html", filename="x.html")
    code, _out, error = receive(message.as_bytes())
    assert code == 0, error
    return WorkItemFile.objects.get()


def assert_served_as_attachment(response, content=PAGE):
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "html" not in response["Content-Type"]
    assert b"".join(response.streaming_content) == content


# -- /media/ --------------------------------------------------------------------


def test_media_is_not_served_even_with_debug_on(settings, client, mailed_file):
    import runs_project.urls

    settings.DEBUG = True  # ./dev up runs with DEBUG=1
    try:
        importlib.reload(runs_project.urls)
        clear_url_caches()
        response = client.get(
            "/" + settings.MEDIA_URL.lstrip("/") + mailed_file.file.name
        )
        assert response.status_code == 404
        assert PAGE not in response.content
    finally:
        settings.DEBUG = False
        importlib.reload(runs_project.urls)
        clear_url_caches()


# -- signed robot URLs ------------------------------------------------------------


def test_a_mailed_file_has_a_digest_and_a_token(mailed_file):
    assert mailed_file.sha256 == hashlib.sha256(PAGE).hexdigest()
    assert len(mailed_file.token) >= 32


def test_a_url_signed_without_the_files_token_is_refused(client, mailed_file):
    # what a holder of SECRET_KEY (the old built-in one) could make for any id
    forged = signing.dumps({"file": mailed_file.pk}, salt=tokens.DOWNLOAD_SALT)
    response = client.get(reverse("runs-robots:download", args=[forged]))
    assert response.status_code == 404
    guessed = signing.dumps(
        {"file": mailed_file.pk, "token": "x" * 43}, salt=tokens.DOWNLOAD_SALT
    )
    assert (
        client.get(reverse("runs-robots:download", args=[guessed])).status_code == 404
    )
    good = reverse("runs-robots:download", args=[tokens.file_url_value(mailed_file)])
    assert_served_as_attachment(client.get(good))


def test_a_url_of_one_file_does_not_open_another(client, mailed_file):
    other = WorkItemFile.objects.create(
        work_item=mailed_file.work_item, name="other.txt", file=mailed_file.file.name
    )
    value = signing.loads(tokens.file_url_value(mailed_file), salt=tokens.DOWNLOAD_SALT)
    swapped = signing.dumps(
        {**value, "file": other.pk}, salt=tokens.DOWNLOAD_SALT, compress=True
    )
    response = client.get(reverse("runs-robots:download", args=[swapped]))
    assert response.status_code == 404


def test_robot_uploads_get_a_digest_and_a_fresh_token(held_step_run, client):
    _run, _step_run, env = held_step_run([{"subject": "ann"}])
    files = (
        f"/robots/json-v1/workspaces/default/workitems/{env['RC_WORKITEM_ID']}/files"
    )
    auth = {"HTTP_AUTHORIZATION": f"Bearer {env['RC_API_WORKITEM_TOKEN']}"}

    def upload(content):
        url = client.post(
            files,
            {"fileName": "letter.html", "fileSize": len(content)},
            content_type="application/json",
            **auth,
        ).json()["url"]
        file = SimpleUploadedFile("letter.html", content, content_type="text/html")
        assert client.post(url, {"file": file}).status_code == 204
        return WorkItemFile.objects.get(name="letter.html")

    first = upload(PAGE)
    assert first.sha256 == hashlib.sha256(PAGE).hexdigest()
    assert first.step_run_id == _step_run.pk
    url = client.get(f"{files}/{first.pk}", **auth).json()["url"]
    assert_served_as_attachment(client.get(url))
    second = upload(b"v2")  # same name: replaced, with a token of its own
    assert second.token != first.token
    assert client.get(url).status_code == 404


# -- admin --------------------------------------------------------------------------


def test_the_admin_work_item_page_links_its_files(client, mailed_file):
    client.force_login(make_user("victor", role="Viewer"))
    page = client.get(
        reverse("admin:runs_workitem_change", args=[mailed_file.work_item_id])
    )
    download = reverse(
        "admin:runs_workitem_file_download",
        args=[mailed_file.work_item_id, mailed_file.pk],
    )
    assert page.status_code == 200 and download.encode() in page.content
    assert mailed_file.sha256.encode() in page.content
    assert_served_as_attachment(client.get(download))


def test_the_admin_download_is_refused_to_others(
    client, mailed_file, django_user_model
):
    download = reverse(
        "admin:runs_workitem_file_download",
        args=[mailed_file.work_item_id, mailed_file.pk],
    )
    anonymous = client.get(download)
    assert anonymous.status_code == 302 and PAGE not in anonymous.content
    staff = django_user_model.objects.create_user("sam", password="pw", is_staff=True)
    client.force_login(staff)  # staff, but may not view runs
    assert client.get(download).status_code == 404
    client.force_login(make_user("victor", role="Viewer"))
    wrong_item = reverse(
        "admin:runs_workitem_file_download",
        args=[mailed_file.work_item_id + 1000, mailed_file.pk],
    )
    assert client.get(wrong_item).status_code == 404


# -- API ----------------------------------------------------------------------------


def test_the_api_lists_a_runs_files_with_download_links(client, mailed_file):
    client.force_login(make_user("victor", role="Viewer"))
    run = mailed_file.work_item.run
    response = client.get(f"/api/v1/runs/{run.pk}/files/")
    assert response.status_code == 200
    (listed,) = response.json()["results"]
    assert listed["id"] == mailed_file.pk and listed["name"] == "x.html"
    assert listed["size"] == len(PAGE)
    assert listed["sha256"] == hashlib.sha256(PAGE).hexdigest()
    assert listed["work_item"] == mailed_file.work_item_id
    assert listed["step"] == "step1" and listed["step_run"] is None
    assert listed["download_url"].endswith(
        f"/api/v1/runs/{run.pk}/files/{mailed_file.pk}/download/"
    )
    assert_served_as_attachment(client.get(listed["download_url"]))
    accept = client.get(listed["download_url"], HTTP_ACCEPT="application/octet-stream")
    assert_served_as_attachment(accept)


def test_the_api_refuses_files_to_others(client, mailed_file, django_user_model):
    run = mailed_file.work_item.run
    listing = f"/api/v1/runs/{run.pk}/files/"
    download = f"{listing}{mailed_file.pk}/download/"
    assert client.get(listing).status_code in (401, 403)
    assert client.get(download).status_code in (401, 403)
    nobody = django_user_model.objects.create_user("nobody", password="pw")
    client.force_login(nobody)
    assert client.get(listing).status_code == 403
    assert client.get(download).status_code == 403
    client.force_login(make_user("victor", role="Viewer"))
    other_run = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/api/v1/runs/{other_run}/files/").status_code == 404
    response = client.get(f"/api/v1/runs/{other_run}/files/{mailed_file.pk}/download/")
    assert response.status_code == 404
    assert client.get(f"{listing}999999/download/").status_code == 404


# -- existing rows ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_existing_files_their_own_token_and_digest(settings):
    from django.core.files.base import ContentFile
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    # automations before its workspaces (0003), whose historical models would
    # otherwise lack the workspace the table has
    before = [("runs", "0013_run_sla_breach"), ("automations", "0002_sla_seconds")]
    after = [("runs", "0014_work_item_file_tokens")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        auto = old.get_model("automations", "Automation").objects.create(
            slug="old", name="Old"
        )
        version = old.get_model("automations", "AutomationVersion").objects.create(
            automation=auto, number=1
        )
        step = old.get_model("automations", "Step").objects.create(
            version=version, order=1, name="s", action="builtin.echo"
        )
        run = old.get_model("runs", "Run").objects.create(
            automation=auto, version=version, number=1, trigger_kind="manual"
        )
        item = old.get_model("runs", "WorkItem").objects.create(run=run, step=step)
        File = old.get_model("runs", "WorkItemFile")
        for name in ("a.txt", "b.txt"):
            row = File(work_item=item, name=name, size=1)
            row.file.save(f"old/{name}", ContentFile(name.encode()), save=False)
            row.save()
        File.objects.create(work_item=item, name="gone.txt", file="old/missing.txt")
        executor = MigrationExecutor(connection)
        executor.migrate(after)
    finally:
        MigrationExecutor(connection).migrate(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )
    rows = {f.name: f for f in WorkItemFile.objects.all()}
    assert rows["a.txt"].sha256 == hashlib.sha256(b"a.txt").hexdigest()
    assert rows["gone.txt"].sha256 == ""
    tokens_ = {f.token for f in rows.values()}
    assert len(tokens_) == 3 and all(len(t) >= 32 for t in tokens_)
