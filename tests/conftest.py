import pytest
from django.contrib.auth import get_user_model

import tests.actions  # noqa: F401  (registers the test actions)
from tests.factories import make_automation


@pytest.fixture(autouse=True)
def _engine_settings(settings, tmp_path):
    settings.RUNS_LEASE_SECONDS = 30
    settings.RUNS_STEP_RUN_BUDGET_SECONDS = 30
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MEDIA_ROOT = tmp_path / "media"
    tests.actions.reset()


@pytest.fixture
def automation(db):
    return make_automation


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("alice", password="pw", is_staff=True)


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("bob", password="pw", is_staff=True)


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
