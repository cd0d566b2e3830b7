"""django-q2 entry points for webhooks (dotted paths: keep the names stable)."""

from .services import deliveries_retry_due, delivery_send

__all__ = ["deliveries_retry_due", "delivery_send"]
