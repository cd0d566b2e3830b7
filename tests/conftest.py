import pytest

import tests.actions
from automations.services import workspace_add
from tests.factories import make_automation, make_user


@pytest.fixture(autouse=True)
def _engine_settings(settings, tmp_path):
    settings.RUNS_LEASE_SECONDS = 30
    settings.RUNS_STEP_RUN_BUDGET_SECONDS = 30
    # the tests run step runs in process, one at a time: the others wait queued
    # however long the first works (tests/runs/test_slice.py turns it on)
    settings.RUNS_STEP_RUN_SLICE_SECONDS = 0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MEDIA_ROOT = tmp_path / "media"
    tests.actions.reset()


@pytest.fixture
def automation(db):
    return make_automation


@pytest.fixture
def user(db):
    return make_user("alice", is_staff=True)


@pytest.fixture
def other_user(db):
    # an approver: may decide on items of runs others started
    return make_user("bob", ["approve_run"], is_staff=True)


# The product's roles (groups of migration runs.0002), the same for admin and API
# tests; a test that needs one permission more or less builds its user with
# make_user(name, [codenames]).
@pytest.fixture
def viewer(db):
    return make_user("victor", role="Viewer")


@pytest.fixture
def operator(db):
    return make_user("olivia", role="Operator")


@pytest.fixture
def author(db):
    return make_user("ada", role="Author")


@pytest.fixture
def nobody(db):
    return make_user("nina")


@pytest.fixture
def is_postgres(db):
    from django.db import connection

    return connection.vendor == "postgresql"


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (browser tests screenshot on
    failure)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


# two workspaces of the credit union (tests/workspaces, tests/secrets)


@pytest.fixture
def lending(db):
    return workspace_add(slug="lending", name="Lending desk")[0]


@pytest.fixture
def aml(db):
    return workspace_add(slug="aml", name="AML team")[0]
