"""Issue 20, finding 17: an unknown path under /api/v1/ answers the API's JSON 404
for every method, not Django's HTML CSRF 403 (the catch-all view must be exempt from
CSRF: it changes nothing, and the API's own views do CSRF through DRF's session
authentication)."""

import pytest
from django.test import Client


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
@pytest.mark.parametrize(
    "path", ["/api/v1/nope/", "/api/v1/runs/123/nope/", "/api/v1/automations/"]
)
def test_unknown_api_path_is_a_json_404(db, method, path):
    client = Client(enforce_csrf_checks=True)  # as a browser or a script meets it
    if method == "get":
        response = client.get(path)
    else:
        response = getattr(client, method)(path, "{}", content_type="application/json")
    assert response.status_code == 404, response.content[:200]
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": f"no API endpoint at {path}",
        "code": "not_found",
    }
