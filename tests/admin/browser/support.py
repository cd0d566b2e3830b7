"""What the browser tests share besides their fixtures (conftest.py): logging in and
the accessibility check.

``axe_violations(page, impacts)`` runs axe-core (from the npm registry, installed by
``./dev test`` into this folder's node_modules) on the page as it stands.
"""

import json
from pathlib import Path

import pytest
from django.urls import reverse

HERE = Path(__file__).resolve().parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"


def login(page, username, password="pw"):
    page.goto(page.base + reverse("admin:login"))
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def axe_violations(page, impacts=("critical", "serious")):
    """The axe-core violations of the given impacts on the page as it is now,
    as (rule id, impact, help, first offending targets) tuples."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: ./dev test installs it (npm ci in {HERE})")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => JSON.stringify(await axe.run(document, "
        "{resultTypes: ['violations']}))"
    )
    return [
        (v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"][:3]])
        for v in json.loads(result)["violations"]
        if v["impact"] in impacts
    ]
