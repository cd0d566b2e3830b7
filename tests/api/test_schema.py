"""The OpenAPI schema, the docs page, and Schemathesis against the live server.

Schemathesis generates requests from the live schema for every operation (a bounded
number of examples each), half of them aimed at a real run and automation so the
control endpoints do real work; every response must be no 5xx and conform to the
schema (status code documented, content type, body shape, headers).
"""

import itertools

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import ignored_auth

from runs.api.tokens import api_token_create
from runs.engine import run_until_idle
from runs.services import run_start

from .conftest import make_user

MAX_EXAMPLES = 25


def test_schema_is_served_and_lists_every_endpoint(client, db):
    response = client.get("/api/v1/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    paths = schema["paths"]
    expected = {
        "/api/v1/me/": ["get"],
        "/api/v1/automations/{slug}/runs/": ["post"],
        "/api/v1/runs/": ["get"],
        "/api/v1/runs/export.csv": ["get"],
        "/api/v1/reports/period/": ["get"],
        "/api/v1/runs/{id}/": ["get"],
        "/api/v1/runs/{id}/work-items/": ["get"],
        "/api/v1/runs/{id}/items/": ["get"],
        "/api/v1/runs/{id}/evidence.zip": ["get"],
        "/api/v1/audit-events/": ["get"],
        "/api/v1/work-items/": ["get"],
        "/api/v1/runs/{id}/files/": ["get"],
        "/api/v1/runs/{id}/files/{file_id}/download/": ["get"],
        "/api/v1/runs/{id}/children/": ["get"],
        "/api/v1/runs/{id}/outputs/": ["get"],
        "/api/v1/runs/{id}/step-runs/": ["get"],
        "/api/v1/runs/{id}/step-runs/{step_run_id}/log/": ["get"],
        **{
            f"/api/v1/runs/{{id}}/{name}/": ["post"]
            for name in (
                "stop",
                "retry",
                "resolve",
                "archive",
                "unarchive",
                "rerun",
                "input",
            )
        },
    }
    assert {p: sorted(m for m in paths[p] if m != "parameters") for p in paths} == (
        expected
    )
    trigger = paths["/api/v1/automations/{slug}/runs/"]["post"]
    assert set(trigger["responses"]) == {
        "202",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "422",
        "429",
    }
    assert any(
        p["name"] == "Idempotency-Key" and p["in"] == "header"
        for p in trigger["parameters"]
    )
    for path, operations in expected.items():
        for method in operations:
            op = paths[path][method]
            for code, answer in op["responses"].items():
                if code.startswith(("4", "5")):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/Error"), (path, code)
            if method == "post" and path != "/api/v1/automations/{slug}/runs/":
                assert "requestBody" in op, path


def test_docs_page_uses_local_assets(client, db):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page and "/static/drf_spectacular_sidecar/" in page
    assert "cdn" not in page.lower()


@pytest.fixture
def api_world(db):
    """Data the fuzzer can hit: a superuser token, runs in several states."""
    from tests.factories import make_automation

    admin = make_user("fuzzer", is_superuser=True, is_staff=True)
    token = api_token_create(user=admin)[1]
    auto = make_automation("builtin.echo", "test.business_fail", slug="fuzz")
    unresolved = run_start(automation=auto, inputs=[{"bad": True}])
    run_until_idle(unresolved)
    pending = run_start(automation=auto, inputs=[{"subject": "=1+1"}])
    return {
        "token": token,
        "slug": auto.slug,
        "runs": [str(unresolved.pk), str(pending.pk)],
    }


@pytest.fixture
def live_schema(live_server, api_world, settings):
    settings.RUNS_API_TRIGGER_RATE = ""
    return schemathesis.from_uri(
        f"{live_server.url}/api/v1/schema/", base_url=live_server.url
    )


schema = schemathesis.from_pytest_fixture("live_schema")
_turn = itertools.count()


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_fuzzed_against_its_schema(case, api_world):
    turn = next(_turn)
    if case.path_parameters and turn % 2 == 0:
        if "id" in case.path_parameters:
            case.path_parameters["id"] = api_world["runs"][turn // 2 % 2]
        if "slug" in case.path_parameters:
            case.path_parameters["slug"] = api_world["slug"]
    case.headers = {
        **(case.headers or {}),
        "Authorization": f"Token {api_world['token']}",
    }
    response = case.call()
    assert response.status_code < 500, (response.status_code, response.text[:500])
    # `ignored_auth` re-sends with one of the two alternative schemes (token OR
    # session) made invalid while the other stays valid, and so reports a success
    # that is correct; 401s are tested explicitly in the other API tests.
    case.validate_response(response, excluded_checks=(ignored_auth,))


def test_schema_generates_without_a_warning_or_an_error(db, tmp_path):
    """What the docs page logs when it builds the schema: nothing (drf-spectacular's
    own check, `spectacular --validate --fail-on-warn`)."""
    from django.core.management import call_command

    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "/api/v1/reports/period/" in yaml.safe_load(out.read_text())["paths"]
