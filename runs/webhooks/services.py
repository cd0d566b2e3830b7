"""Webhook deliveries: created on run state changes, sent by the worker, retried.

Flow: a run's move calls `deliveries_create` inside its own transaction
(`runs.outbox`), which writes one WebhookDelivery per matching active webhook and
queues `delivery_send` on django-q2 after commit. Each attempt is claimed by a
conditional UPDATE (so the queued task and housekeeping never send one attempt
twice), POSTs the JSON body
with httpx, and is recorded as a WebhookAttempt. 2xx: delivered. Otherwise the next
attempt is due after an exponential backoff, until RUNS_WEBHOOK_MAX_ATTEMPTS.
`deliveries_retry_due` (called by housekeeping) queues the ones that are due.

Signature: header `X-Runs-Signature: sha256=<hex>` where hex is
HMAC-SHA256(secret, f"{timestamp}.{body}") and timestamp is the header
`X-Runs-Timestamp` (Unix seconds); receivers recompute it and refuse old timestamps.
"""

import hashlib
import hmac
import json
import logging
import time

import httpx
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from runs.conf import runs_settings

from .models import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery

log = logging.getLogger("runs.webhooks")

SEND_TASK = "runs.webhooks.tasks.delivery_send"
SIGNATURE_HEADER = "X-Runs-Signature"
TIMESTAMP_HEADER = "X-Runs-Timestamp"
EVENT_HEADER = "X-Runs-Event"
DELIVERY_HEADER = "X-Runs-Delivery"
# While an attempt is in flight its delivery is not due: nobody else sends it.
ATTEMPT_LEASE_SECONDS = 120
MAX_BACKOFF_SECONDS = 3600


def signature(secret: str, timestamp: str, body: str) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signature_verify(
    secret: str, timestamp: str, body: str, header: str, *, tolerance: int = 300
) -> bool:
    """What a receiver does: constant-time compare, and refuse stale timestamps."""
    try:
        if abs(time.time() - int(timestamp)) > tolerance:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def backoff_seconds(attempts: int) -> int:
    """Delay after the `attempts`-th failed attempt: base, 2×base, 4×base… capped."""
    base = runs_settings.WEBHOOK_BACKOFF_SECONDS
    return min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)


def _payload(run, event: str, before: str, after: str, delivery_id, extra) -> str:
    from ..api.serializers import RunSerializer

    data = RunSerializer(run).data
    # without a request the serializer gives a path; make it absolute for receivers
    data["url"] = runs_settings.ADMIN_BASE_URL.rstrip("/") + data["url"]
    return json.dumps(
        {
            "id": str(delivery_id),
            "event": event,
            "created_at": timezone.now().isoformat(),
            "before": before,
            "after": after,
            "run": data,
            **(extra or {}),
        },
        separators=(",", ":"),
        default=str,
    )


def deliveries_create(
    *,
    run_id,
    before: str,
    after: str,
    event: str | None = None,
    extra=None,
    **kwargs,
) -> list:
    """Deliveries for every active webhook of the run's automation that wants
        `event` (default `run.<after>`), written in the caller's transaction (the
        move's: an outbox); each is queued for sending after commit. `extra` keys go
        into the body beside `run` (the items of `work_item.awaiting_input`); a callable
    `extra` is called only when some webhook wants the event."""
    from ..models import Run

    event = event or f"run.{after}"
    run = Run.objects.select_related("automation", "version").filter(pk=run_id).first()
    if run is None:
        return []
    hooks = [
        hook
        for hook in Webhook.objects.filter(
            automation_id=run.automation_id, is_active=True
        )
        if hook.wants(event)
    ]
    if not hooks:
        return []
    if callable(extra):
        extra = extra()
    deliveries = []
    for hook in hooks:
        delivery = WebhookDelivery(webhook=hook, run=run, event=event)
        delivery.body = _payload(run, event, before, after, delivery.id, extra)
        deliveries.append(delivery)
    with transaction.atomic():
        WebhookDelivery.objects.bulk_create(deliveries)
        for delivery in deliveries:
            _enqueue(delivery.pk)
    return deliveries


def _enqueue(delivery_id) -> None:
    def send():
        from django_q.tasks import async_task

        async_task(SEND_TASK, str(delivery_id), task_name=f"webhook-{delivery_id}")

    # robust: a broker that is down must not fail the commit that wrote the
    # delivery; the row stays pending and housekeeping queues it again
    transaction.on_commit(send, robust=True)


def _claim(delivery_id, now) -> WebhookDelivery | None:
    """Take the next attempt of a due pending delivery, or None if it is not due
    (delivered, given up, or another worker is sending it)."""
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(
        attempts=F("attempts") + 1,
        next_attempt_at=now + timezone.timedelta(seconds=ATTEMPT_LEASE_SECONDS),
    )
    if not claimed:
        return None
    return WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)


def delivery_send(delivery_id, *, client: httpx.Client | None = None) -> str:
    """Make one attempt of a delivery if it is due; record it; schedule the next."""
    now = timezone.now()
    delivery = _claim(delivery_id, now)
    if delivery is None:
        return "not due"
    hook = delivery.webhook
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Runs-Webhooks/1",
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: str(delivery.pk),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(hook.secret, timestamp, delivery.body),
    }
    status_code, error, excerpt = None, "", ""
    started = time.monotonic()
    try:
        sender = client or httpx
        response = sender.post(
            hook.url,
            content=delivery.body.encode(),
            headers=headers,
            timeout=runs_settings.WEBHOOK_TIMEOUT_SECONDS,
            follow_redirects=False,
        )
        status_code, excerpt = response.status_code, response.text[:500]
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000] or type(exc).__name__
    duration_ms = int((time.monotonic() - started) * 1000)
    done = not error
    gave_up = not done and delivery.attempts >= runs_settings.WEBHOOK_MAX_ATTEMPTS
    finished = timezone.now()
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            started_at=now,
            duration_ms=duration_ms,
            status_code=status_code,
            error=error,
            response_excerpt=excerpt,
        )
        updates = {"last_status_code": status_code}
        if done:
            updates.update(status=DeliveryStatus.DELIVERED, delivered_at=finished)
        elif gave_up:
            updates["status"] = DeliveryStatus.FAILED
        else:
            updates["next_attempt_at"] = finished + timezone.timedelta(
                seconds=backoff_seconds(delivery.attempts)
            )
        WebhookDelivery.objects.filter(
            pk=delivery.pk, status=DeliveryStatus.PENDING
        ).update(**updates)
    if done:
        return "delivered"
    return "gave up" if gave_up else f"retry later ({error})"


def deliveries_retry_due(now=None, *, limit: int = 500) -> int:
    """Queue every pending delivery whose next attempt is due (housekeeping)."""
    now = now or timezone.now()
    due = list(
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=now
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    with transaction.atomic():
        for delivery_id in due:
            _enqueue(delivery_id)
    return len(due)
