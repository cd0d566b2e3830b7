"""The API's part of periodic housekeeping (called from runs.tasks.housekeeping)."""

from django.utils import timezone

from ..webhooks.services import deliveries_retry_due
from .idempotency import idempotency_keys_prune


def api_housekeeping(now=None) -> dict:
    """Queue webhook deliveries whose retry is due; forget expired idempotency keys."""
    now = now or timezone.now()
    return {
        "webhooks_queued": deliveries_retry_due(now),
        "idempotency_keys_pruned": idempotency_keys_prune(now),
    }
