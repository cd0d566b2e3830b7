"""POST /api/v1/automations/{slug}/runs/: start runs, idempotency keys, limits."""

import json

import pytest
from django.utils import timezone

from automations.services import automation_retire
from runs.api.models import IdempotencyKey
from runs.models import Run, WorkItem
from tests.factories import make_user

from .conftest import client_for, grant

RUN_FIELDS = {
    "id",
    "number",
    "automation",
    "version",
    "state",
    "trigger",
    "run_by",
    "current_step",
    "total_items",
    "output_items",
    "failed_items",
    "subjects_matched",
    "actions_invoked",
    "created_at",
    "started_at",
    "completed_at",
    "lead_time_seconds",
    "archived",
    "rerun_of",
    "priority",
    "queue_position",
    # the Contract: "a run also has parent, priority, error, workspace"
    "parent",
    "error",
    "url",
    "workspace",  # issue 15
}


def url(slug):
    return f"/api/v1/automations/{slug}/runs/"


def post(client, slug, body, key=None, **extra):
    if key is not None:
        extra["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(
        url(slug), json.dumps(body), content_type="application/json", **extra
    )


def test_trigger_starts_a_run_and_answers_202(api, automation, operator):
    auto = automation("builtin.echo")
    response = post(api, auto.slug, {"inputs": [{"subject": "a"}, {"subject": "b"}]})
    assert response.status_code == 202, response.content
    data = response.json()
    assert set(data) == RUN_FIELDS
    run = Run.objects.get()
    assert data["id"] == str(run.pk) and data["number"] == run.number
    assert (data["automation"], data["trigger"], data["run_by"]) == (
        auto.slug,
        "api",
        "olivia",
    )
    assert data["state"] == "pending" and data["total_items"] == 2
    assert response["Location"] == data["url"]
    assert data["url"].endswith(f"/api/v1/runs/{run.pk}/")
    assert "Idempotent-Replayed" not in response
    assert sorted(WorkItem.objects.values_list("subject", flat=True)) == ["a", "b"]
    assert run.run_by == operator


def test_trigger_without_inputs_makes_one_empty_item(api, automation):
    auto = automation("builtin.echo")
    response = api.post(url(auto.slug))
    assert response.status_code == 202
    assert WorkItem.objects.get().payload == {}


def test_trigger_needs_authentication(automation, db):
    auto = automation("builtin.echo")
    response = post(client_for(), auto.slug, {"inputs": []})
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert not Run.objects.exists()


def test_trigger_needs_trigger_permission(automation, viewer):
    auto = automation("builtin.echo")
    response = post(client_for(viewer), auto.slug, {"inputs": []})
    assert response.status_code == 403
    assert "runs.trigger_run" in response.json()["detail"]
    assert not Run.objects.exists()


def test_token_needs_a_grant_for_the_automation(automation, integration):
    granted, other = automation("builtin.echo"), automation("builtin.echo")
    grant(integration, granted)
    client = client_for(integration, token=True)
    refused = post(client, other.slug, {"inputs": []})
    assert refused.status_code == 403
    assert refused.json() == {
        "detail": f"this API client may not trigger {other.slug}",
        "code": "not_granted",
    }
    assert post(client, granted.slug, {"inputs": []}).status_code == 202
    assert list(Run.objects.values_list("automation__slug", flat=True)) == [
        granted.slug
    ]


def test_token_without_api_client_may_trigger_nothing(automation, db):
    user = make_user("script", ["trigger_run"])
    response = post(client_for(user, token=True), automation().slug, {})
    assert response.status_code == 403


def test_superuser_token_needs_no_grant(automation, db):
    admin = make_user("root", is_superuser=True)
    response = post(client_for(admin, token=True), automation().slug, {})
    assert response.status_code == 202


def test_unknown_automation_is_404(api, db):
    response = post(api, "no-such-thing", {"inputs": []})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "body,expected",
    [
        ({"inputs": {"a": 1}}, "inputs: Expected a list"),
        ({"inputs": [1, 2]}, "inputs"),
        ({"inputs": ["text"]}, "inputs"),
        ([{"a": 1}], "Invalid data"),
        ({"inputs": [{"a": "nul\u0000"}]}, "NUL"),
    ],
)
def test_bad_inputs_are_400_and_write_nothing(api, automation, body, expected):
    response = post(api, automation().slug, body)
    assert response.status_code == 400, response.content
    data = response.json()
    assert expected in data["detail"] and data["code"]
    assert not Run.objects.exists()


@pytest.mark.parametrize("raw", [b"{not json", b'{"inputs": [NaN]}', b"[" * 100000])
def test_malformed_json_is_400(api, automation, raw):
    response = api.post(url(automation().slug), raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert "JSON parse error" in response.json()["detail"]
    assert not Run.objects.exists()


def test_other_media_type_is_415(api, automation):
    response = api.post(
        url(automation().slug),
        "inputs=1",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 415


def test_body_over_the_limit_is_413_before_parsing(api, automation, settings):
    settings.RUNS_MAX_REQUEST_BYTES = 1000
    body = json.dumps({"inputs": [{"x": "y" * 2000}]})
    response = api.post(url(automation().slug), body, content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {
        "detail": "request body is larger than the limit of 1000 bytes "
        "(RUNS_MAX_REQUEST_BYTES)",
        "code": "too_large",
    }
    assert not Run.objects.exists()


def test_declared_length_over_the_limit_is_413_without_reading(
    api, automation, settings
):
    settings.RUNS_MAX_REQUEST_BYTES = 1000

    class Unreadable:
        def read(self, *args):
            raise AssertionError("the body must not be read")

    from runs.api.parsers import LimitedJSONParser

    class Request:
        META = {"CONTENT_LENGTH": "5000000"}

    with pytest.raises(Exception) as caught:
        LimitedJSONParser().parse(Unreadable(), parser_context={"request": Request()})
    assert caught.value.status_code == 413 and "1000 bytes" in str(caught.value)


def test_one_input_over_the_item_limit_is_413(api, automation, settings):
    settings.RUNS_MAX_INPUT_BYTES = 100
    body = {"inputs": [{"ok": 1}, {"big": "z" * 200}]}
    response = post(api, automation().slug, body)
    assert response.status_code == 413
    assert "inputs[1]" in response.json()["detail"]
    assert "limit of 100 bytes per input" in response.json()["detail"]
    assert not Run.objects.exists()


def test_draft_only_automation_is_409_not_runnable(api, automation):
    auto = automation("builtin.echo", publish=False)
    response = post(api, auto.slug, {})
    assert response.status_code == 409
    assert response.json()["code"] == "not_runnable"
    assert "no published version" in response.json()["detail"]


def test_retired_automation_is_409(api, automation):
    auto = automation("builtin.echo")
    automation_retire(auto)
    response = post(api, auto.slug, {})
    assert response.status_code == 409 and "retired" in response.json()["detail"]


# Idempotency keys ----------------------------------------------------------------


def test_same_key_and_body_replays_the_same_run(api, automation):
    auto = automation("builtin.echo")
    first = post(api, auto.slug, {"inputs": [{"a": 1}]}, key="k-1")
    again = post(api, auto.slug, {"inputs": [{"a": 1}]}, key="k-1")
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Run.objects.count() == 1


def test_same_key_same_body_in_another_key_order_replays(api, automation):
    auto = automation("builtin.echo")
    first = api.post(
        url(auto.slug),
        '{"inputs": [{"a": 1, "b": 2}]}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    again = api.post(
        url(auto.slug),
        '{"inputs":[{"b":2,"a":1}]}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert again.json()["id"] == first.json()["id"]


def test_same_key_other_body_is_422(api, automation):
    auto = automation("builtin.echo")
    post(api, auto.slug, {"inputs": [{"a": 1}]}, key="k-1")
    response = post(api, auto.slug, {"inputs": [{"a": 2}]}, key="k-1")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Run.objects.count() == 1


def test_key_still_in_flight_is_409(api, automation, operator):
    from runs.api.idempotency import body_hash

    auto = automation("builtin.echo")
    IdempotencyKey.objects.create(
        user=operator,
        automation=auto,
        key="busy",
        request_hash=body_hash({"inputs": []}),
        expires_at=timezone.now() + timezone.timedelta(hours=1),
    )
    response = post(api, auto.slug, {"inputs": []}, key="busy")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_flight"
    assert not Run.objects.exists()


def test_a_claim_abandoned_by_a_crash_is_taken_over(api, automation, operator):
    from runs.api.idempotency import STALE_CLAIM_SECONDS, body_hash

    auto = automation("builtin.echo")
    long_ago = timezone.now() - timezone.timedelta(seconds=STALE_CLAIM_SECONDS + 1)
    IdempotencyKey.objects.create(
        user=operator,
        automation=auto,
        key="crashed",
        created_at=long_ago,
        request_hash=body_hash({"inputs": []}),
        expires_at=timezone.now() + timezone.timedelta(hours=1),
    )
    assert post(api, auto.slug, {"inputs": []}, key="crashed").status_code == 202
    assert IdempotencyKey.objects.get().run_id is not None


def test_keys_are_scoped_per_user(api, automation, db):
    auto = automation("builtin.echo")
    other = client_for(make_user("oscar", ["trigger_run"]))
    a = post(api, auto.slug, {}, key="shared")
    b = post(other, auto.slug, {}, key="shared")
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"] and "Idempotent-Replayed" not in b


def test_keys_are_scoped_per_automation(api, automation):
    a = post(api, automation().slug, {}, key="same")
    b = post(api, automation().slug, {}, key="same")
    assert a.json()["id"] != b.json()["id"]


def test_an_expired_key_starts_a_new_run(api, automation, settings):
    auto = automation("builtin.echo")
    first = post(api, auto.slug, {}, key="old")
    IdempotencyKey.objects.update(expires_at=timezone.now())
    second = post(api, auto.slug, {}, key="old")
    assert second.status_code == 202 and second.json()["id"] != first.json()["id"]
    assert (
        IdempotencyKey.objects.get().run_id
        == Run.objects.get(pk=second.json()["id"]).pk
    )


def test_key_kept_for_the_configured_time(api, automation, settings):
    settings.RUNS_IDEMPOTENCY_KEY_TTL_SECONDS = 60
    post(api, automation().slug, {}, key="ttl")
    key = IdempotencyKey.objects.get()
    assert 59 <= (key.expires_at - key.created_at).total_seconds() <= 61


def test_a_failed_request_releases_its_key(api, automation, settings):
    auto = automation("builtin.echo", publish=False)
    assert post(api, auto.slug, {}, key="retry-me").status_code == 409
    assert not IdempotencyKey.objects.exists()
    from automations.services import version_publish

    version_publish(auto.latest_version())
    assert post(api, auto.slug, {}, key="retry-me").status_code == 202


def test_invalid_body_with_a_key_claims_nothing(api, automation):
    auto = automation("builtin.echo")
    assert post(api, auto.slug, {"inputs": [1]}, key="k").status_code == 400
    assert not IdempotencyKey.objects.exists()


@pytest.mark.parametrize("key", ["", "   ", "x" * 256, "caf\u00e9"])
def test_bad_keys_are_400(api, automation, key):
    response = api.post(
        url(automation().slug),
        "{}",
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert not Run.objects.exists()


def test_expired_keys_are_pruned(api, automation):
    from runs.api.housekeeping import api_housekeeping

    auto = automation("builtin.echo")
    post(api, auto.slug, {}, key="a")
    post(api, auto.slug, {}, key="b")
    IdempotencyKey.objects.filter(key="a").update(expires_at=timezone.now())
    assert api_housekeeping()["idempotency_keys_pruned"] == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["b"]


# Throttling -----------------------------------------------------------------------


def test_triggers_are_throttled_per_user(api, automation, settings, db):
    settings.RUNS_API_TRIGGER_RATE = "2/min"
    auto = automation("builtin.echo")
    codes = [post(api, auto.slug, {}).status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    refused = post(api, auto.slug, {})
    assert refused.json()["code"] == "throttled" and int(refused["Retry-After"]) > 0
    assert Run.objects.count() == 2
    other = client_for(make_user("oscar", ["trigger_run"]))
    assert post(other, auto.slug, {}).status_code == 202
