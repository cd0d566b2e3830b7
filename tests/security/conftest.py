import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _api_settings(settings):
    settings.RUNS_API_TRIGGER_RATE = ""  # throttling is tested in tests/api
    cache.clear()
