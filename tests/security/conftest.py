import pytest
from django.core.cache import cache

# the admin's login fixture
from tests.admin.conftest import login  # noqa: F401

# the robot fixtures: a step run held as the runner holds it, the live server
from tests.robots.conftest import (  # noqa: F401
    held_step_run,
    register_robot,
    robot_server,
)


@pytest.fixture(autouse=True)
def _api_settings(settings):
    settings.RUNS_API_TRIGGER_RATE = ""  # throttling is tested in tests/api
    cache.clear()
