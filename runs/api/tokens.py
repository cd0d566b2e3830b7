"""API tokens: create (the key is returned once, only its digest is kept) and
revoke, each recorded in the global ledger chain (never the key)."""

from django.db import transaction
from django.utils import timezone

from .. import ledger
from .models import ApiToken

DEFAULT_EXPIRES_DAYS = 90
MAX_EXPIRES_DAYS = 3650


def _describe(token: ApiToken) -> dict:
    return {
        "user": token.user.get_username(),
        "name": token.name,
        "expiry": token.expiry.isoformat() if token.expiry else None,
    }


def api_token_create(
    *, user, name: str = "", expires_days: int = DEFAULT_EXPIRES_DAYS, actor=None
) -> tuple[ApiToken, str]:
    """A new token for `user` expiring in `expires_days`; returns (token, key). The
    key exists only in this return value: show it once."""
    if not 1 <= expires_days <= MAX_EXPIRES_DAYS:
        raise ValueError(f"expires-days must be between 1 and {MAX_EXPIRES_DAYS}")
    with transaction.atomic():
        token, key = ApiToken.objects.create(
            user=user,
            expiry=timezone.timedelta(days=expires_days),
            name=name[:200],
        )
        ledger.append(
            events=[
                ledger.audit_event(
                    verb="api_token.created",
                    obj=user,
                    actor=actor,
                    actor_label="" if actor else "command",
                    after=_describe(token),
                )
            ]
        )
    return token, key


def api_token_revoke(*, token: ApiToken, actor=None, reason: str = "") -> None:
    """Delete the token: the next request with its key is 401."""
    with transaction.atomic():
        before = _describe(token)
        user = token.user
        ApiToken.objects.filter(pk=token.pk).delete()
        ledger.append(
            events=[
                ledger.audit_event(
                    verb="api_token.revoked",
                    obj=user,
                    actor=actor,
                    before=before,
                    reason=reason,
                )
            ]
        )
