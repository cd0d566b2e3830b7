"""Finding 13: a robot upload whose Content-Length is not a size answers a clear
4xx, never a 500."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

pytestmark = pytest.mark.django_db


@pytest.fixture
def upload_url(held_step_run, client, settings):
    settings.RUNS_ROBOT_MAX_FILE_BYTES = 1000
    _run, _step_run, env = held_step_run([{"subject": "ann"}])
    files = (
        f"/robots/json-v1/workspaces/default/workitems/{env['RC_WORKITEM_ID']}/files"
    )
    response = client.post(
        files,
        {"fileName": "a.txt", "fileSize": 5},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {env['RC_API_WORKITEM_TOKEN']}",
    )
    assert response.status_code == 200
    return response.json()["url"]


@pytest.mark.parametrize(
    ("length", "status"),
    [
        ("abc", 400),
        ("-1", 400),
        ("1e3", 400),
        (" ", 400),
        ("99999999", 413),
        ("9" * 5000, 413),
    ],
)
def test_bad_content_length_is_a_4xx(upload_url, client, length, status):
    response = client.post(
        upload_url,
        {"file": SimpleUploadedFile("a.txt", b"hello")},
        CONTENT_LENGTH=length,
    )
    assert response.status_code == status
    assert response.json()["code"] in {"invalid", "too_large"}
    assert "Content-Length" in response.json()["detail"] or status == 413


def test_a_good_upload_still_works(upload_url, client):
    response = client.post(upload_url, {"file": SimpleUploadedFile("a.txt", b"hello")})
    assert response.status_code == 204
