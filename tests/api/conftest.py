import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from runs.api.models import ApiClient
from tests.factories import OPERATOR, make_user  # noqa: F401  (OPERATOR: importable here too)


@pytest.fixture(autouse=True)
def _api_settings(settings):
    settings.RUNS_API_TRIGGER_RATE = ""
    cache.clear()


def client_for(user=None, *, token=False):
    client = APIClient()
    if user is not None:
        if token:
            key = Token.objects.get_or_create(user=user)[0].key
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        else:
            client.force_login(user)
    return client


@pytest.fixture
def api(operator):
    """A session-authenticated operator."""
    return client_for(operator)


@pytest.fixture
def integration(db):
    """A token user with trigger_run and an ApiClient granting nothing yet."""
    user = make_user("erp", ["trigger_run", "view_run"])
    ApiClient.objects.create(user=user, name="ERP")
    return user


def grant(user, automation):
    user.api_client.automations.add(automation)
