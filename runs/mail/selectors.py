"""Reads about e-mail intake (counts for dashboards and reports)."""

from django.db.models import Count

from .models import InboundMessage


def inbound_counts(*, since=None) -> dict[str, dict[str, int]]:
    """Messages met by the e-mail trigger, by outcome and reason (one query):
    `{"accepted": {"": 3}, "rejected": {"unparseable": 1, ...}, ...}`."""
    rows = InboundMessage.objects.all()
    if since is not None:
        rows = rows.filter(received_at__gte=since)
    counts: dict[str, dict[str, int]] = {}
    for outcome, reason, n in (
        rows.order_by()
        .values_list("outcome", "reason")
        .annotate(n=Count("id"))
        .values_list("outcome", "reason", "n")
    ):
        counts.setdefault(outcome, {})[reason] = n
    return counts
