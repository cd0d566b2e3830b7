"""Refused requests of the work-items API: 401/403 credentials, 404 foreign items,
400 bad bodies, 409 items the robot does not hold, 413 oversize files."""

import time
import types

import pytest
from django.core import signing
from django.utils import timezone

from runs.machines import step_run_move
from runs.robots import tokens
from runs.states import StepRunState

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(held_step_run, client):
    run, step_run, env = held_step_run([{"subject": "ann"}, {"subject": "bob"}])
    base = "/robots"
    process = f"{base}/process-v1/workspaces/default/processes/{run.automation.slug}"
    robot_run = f"{process}/runs/{run.pk}/robotRuns/{step_run.pk}"
    items = f"{base}/json-v1/workspaces/default/workitems"

    def call(method, url, body=None, *, scope="process", token=None):
        token = token if token is not None else env[f"RC_API_{scope.upper()}_TOKEN"]
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        kwargs = {"content_type": "application/json"} if body is not None else {}
        if body is not None:
            kwargs["data"] = body
        return getattr(client, method)(url, **kwargs, **headers)

    first = env["RC_WORKITEM_ID"]
    return locals()


def test_missing_and_bad_tokens_are_401(api):
    reserve = api["robot_run"] + "/reserve-next-work-item"
    assert api["call"]("post", reserve, token="").status_code == 401
    response = api["call"]("post", reserve, token="rc1.1.forged")
    assert (
        response.status_code == 401
        and response.json()["code"] == "authentication_failed"
    )
    # a work-item token is not a process token
    response = api["call"]("post", reserve, token=api["env"]["RC_API_WORKITEM_TOKEN"])
    assert response.status_code == 401


def test_token_of_an_ended_step_run_is_403(api):
    step_run = api["step_run"]
    step_run_move(
        step_run,
        StepRunState.FINISHED,
        lease_token=step_run.lease_token,
        updates={"finished_at": timezone.now()},
    )
    response = api["call"](
        "get", f"{api['items']}/{api['first']}/data", scope="workitem"
    )
    assert response.status_code == 403 and response.json()["code"] == "token_expired"


def test_foreign_items_and_paths_are_404(api, held_step_run):
    other_run, _, other_env = held_step_run([{"subject": "zed"}])
    foreign = other_env["RC_WORKITEM_ID"]
    call = api["call"]
    assert (
        call("get", f"{api['items']}/{foreign}/data", scope="workitem").status_code
        == 404
    )
    assert call("get", f"{api['items']}/nope/data", scope="workitem").status_code == 404
    response = call(
        "post",
        api["robot_run"] + "/release-work-item",
        {"workItemId": foreign, "state": "COMPLETED"},
    )
    assert response.status_code == 404
    assert (
        call(
            "post", f"{api['process']}/work-items/{foreign}/output", {"payload": {}}
        ).status_code
        == 404
    )
    other_robot_run = api["robot_run"].replace(str(api["run"].pk), str(other_run.pk))
    assert call("post", other_robot_run + "/reserve-next-work-item").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"state": "COMPLETED"},
        {"workItemId": "FIRST", "state": "DONE"},
        {"workItemId": "FIRST", "state": "FAILED", "exception": {"type": "OOPS"}},
        {"workItemId": "FIRST", "state": "FAILED", "exception": "boom"},
    ],
)
def test_bad_release_bodies_are_400(api, body):
    if isinstance(body, dict) and body.get("workItemId") == "FIRST":
        body = {**body, "workItemId": api["first"]}
    response = api["call"]("post", api["robot_run"] + "/release-work-item", body)
    assert response.status_code == 400, response.content
    assert set(response.json()) >= {"detail", "code"}


def test_bad_output_and_file_bodies_are_400(api):
    call, first = api["call"], api["first"]
    output = f"{api['process']}/work-items/{first}/output"
    assert call("post", output, {"payload": [1, 2]}).status_code == 400
    response = call("post", output, "{not json", scope="process")
    assert response.status_code == 400
    files = f"{api['items']}/{first}/files"
    assert (
        call(
            "post", files, {"fileName": "a/b", "fileSize": 1}, scope="workitem"
        ).status_code
        == 400
    )
    assert (
        call(
            "post", files, {"fileName": "a", "fileSize": -1}, scope="workitem"
        ).status_code
        == 400
    )


def test_items_the_robot_does_not_hold_are_409(api):
    call = api["call"]
    second = str(int(api["first"]) + 1)  # pending: never reserved
    response = call(
        "post",
        api["robot_run"] + "/release-work-item",
        {"workItemId": second, "state": "COMPLETED"},
    )
    assert response.status_code == 409 and response.json()["code"] == "not_reserved"
    response = call(
        "post", f"{api['process']}/work-items/{second}/output", {"payload": {}}
    )
    assert response.status_code == 409
    # released COMPLETED, a FAILED release of it is not a replay
    release = api["robot_run"] + "/release-work-item"
    assert (
        call(
            "post", release, {"workItemId": api["first"], "state": "COMPLETED"}
        ).status_code
        == 200
    )
    assert (
        call(
            "post", release, {"workItemId": api["first"], "state": "COMPLETED"}
        ).status_code
        == 200
    )
    response = call("post", release, {"workItemId": api["first"], "state": "FAILED"})
    assert response.status_code == 409


def test_oversize_files_are_413(api, settings, client):
    settings.RUNS_ROBOT_MAX_FILE_BYTES = 10
    files = f"{api['items']}/{api['first']}/files"
    response = api["call"](
        "post", files, {"fileName": "big.bin", "fileSize": 11}, scope="workitem"
    )
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    # a declared size within the limit does not let a bigger upload through
    response = api["call"](
        "post", files, {"fileName": "a.txt", "fileSize": 5}, scope="workitem"
    )
    assert response.status_code == 200
    upload = response.json()
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(
        upload["url"],
        {**upload["fields"], "file": SimpleUploadedFile("a.txt", b"x" * 8)},
    )
    assert response.status_code == 413
    response = client.post(
        upload["url"],
        {**upload["fields"], "file": SimpleUploadedFile("a.txt", b"x" * 5)},
    )
    assert response.status_code == 204


def test_file_urls_are_signed_and_expire(api, settings, client, monkeypatch):
    files = f"{api['items']}/{api['first']}/files"
    upload = api["call"](
        "post", files, {"fileName": "a.txt", "fileSize": 2}, scope="workitem"
    ).json()
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.post(upload["url"], {"file": SimpleUploadedFile("a.txt", b"hi")})
    (listed,) = api["call"]("get", files, scope="workitem").json()
    url = api["call"]("get", f"{files}/{listed['fileId']}", scope="workitem").json()[
        "url"
    ]
    assert b"".join(client.get(url).streaming_content) == b"hi"
    assert client.get(url[:-3] + "xyz").status_code == 403  # tampered
    assert client.post(upload["url"][:-3] + "xyz").status_code == 403
    # a URL signed longer ago than RUNS_ROBOT_URL_SECONDS (the signer's clock is
    # set back while it signs: no waiting)
    settings.RUNS_ROBOT_URL_SECONDS = 30
    earlier = time.time() - 31
    with monkeypatch.context() as clock:
        clock.setattr(signing, "time", types.SimpleNamespace(time=lambda: earlier))
        old = api["call"]("get", f"{files}/{listed['fileId']}", scope="workitem").json()
    assert client.get(url).status_code == 200  # signed just now: still valid
    response = client.get(old["url"])
    assert response.status_code == 403 and response.json()["code"] == "url_expired"


def test_tokens_are_refused_once_the_lease_changes(api):
    step_run = api["step_run"]
    token = tokens.token_for(step_run, "process")
    step_run.lease_token = None
    type(step_run).objects.filter(pk=step_run.pk).update(lease_token=None)
    with pytest.raises(tokens.BadToken):
        tokens.step_run_for(token, "process")
