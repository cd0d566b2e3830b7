"""`Authorization: Token <key>`: django-rest-knox's hashed tokens first, then the
legacy plain-text DRF tokens (`drf_create_token`), so existing integrations keep
working while every document names `api_token_create`."""

from django.apps import apps
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication as DRFTokenAuthentication

# a token's last use is written at most this often (a write per request would
# serialise every API call on SQLite's one writer)
LAST_USE_RESOLUTION = timezone.timedelta(seconds=60)


class ApiTokenAuthentication(KnoxTokenAuthentication):
    """Knox tokens (runs.ApiToken): digest lookup, expiry, last use; then legacy
    DRF tokens when `rest_framework.authtoken` is installed."""

    legacy = DRFTokenAuthentication()

    def authenticate_credentials(self, token: bytes):
        try:
            token.decode("utf-8")
        except UnicodeDecodeError:  # knox would 500 on it
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        try:
            user, auth_token = super().authenticate_credentials(token)
        except exceptions.AuthenticationFailed:
            if not apps.is_installed("rest_framework.authtoken"):
                raise
            return self.legacy.authenticate_credentials(token.decode())
        self._record_use(auth_token)
        return user, auth_token

    def _cleanup_token(self, auth_token) -> bool:
        # An expired token is refused (401) but kept, so admin still lists it until
        # someone revokes it; knox would delete it and the user's other expired ones.
        return auth_token.expiry is not None and auth_token.expiry <= timezone.now()

    def _record_use(self, auth_token) -> None:
        now = timezone.now()
        last = auth_token.last_used_at
        if last is None or now - last >= LAST_USE_RESOLUTION:
            type(auth_token).objects.filter(pk=auth_token.pk).update(last_used_at=now)
            auth_token.last_used_at = now


TOKEN_AUTHENTICATORS = (ApiTokenAuthentication, DRFTokenAuthentication)


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme: the same `tokenAuth` the schema always named."""

    target_class = "runs.api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix="Token"
        )
