import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from runs.api.models import ApiClient
from runs.api.tokens import api_token_create
from tests.factories import OPERATOR, make_user  # noqa: F401  (OPERATOR: importable here too)


@pytest.fixture(autouse=True)
def _api_settings(settings):
    settings.RUNS_API_TRIGGER_RATE = ""
    cache.clear()


def client_for(user=None, *, token=False):
    client = APIClient()
    if user is not None:
        if token:
            # a hashed token (runs.ApiToken), made once per user object
            if not hasattr(user, "_test_token_key"):
                user._test_token_key = api_token_create(user=user)[1]
            key = user._test_token_key
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
