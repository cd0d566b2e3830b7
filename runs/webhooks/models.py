"""Webhooks: per automation, signed JSON POSTs on run state changes."""

import secrets
import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..secrets.crypto import EncryptedTextField
from ..states import RunState

# run.<state> on every state change; run.sla_breached once per run (runs.ops.sla);
# work_item.awaiting_input when items begin to wait for a decision
# (runs.engine.approvals)
SLA_BREACHED_EVENT = "run.sla_breached"
AWAITING_INPUT_EVENT = "work_item.awaiting_input"
EVENTS = (
    *(f"run.{state}" for state in RunState.values),
    SLA_BREACHED_EVENT,
    AWAITING_INPUT_EVENT,
)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def validate_events(value):
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise ValidationError("events must be a list of event names")
    unknown = sorted(set(value) - set(EVENTS))
    if unknown:
        raise ValidationError(
            f"unknown events: {', '.join(unknown)}; known: {', '.join(EVENTS)}"
        )


class Webhook(models.Model):
    """Where to POST an automation's run state changes; empty `events`: all."""

    automation = models.ForeignKey(
        "automations.Automation", on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.URLField(max_length=500)
    # Fernet-encrypted at rest under RUNS_SECRET_KEYS; Python reads the plain key
    secret = EncryptedTextField(default=new_secret)
    events = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_events],
        help_text="Event names such as run.completed, run.failed; empty: every change.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["automation", "id"]
        indexes = [
            # the signal receiver: active webhooks of the run's automation
            models.Index(fields=["automation", "is_active"], name="webhook_automation"),
        ]

    def __str__(self):
        return f"{self.automation.slug} → {self.url}"

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed (gave up)")


class WebhookDelivery(models.Model):
    """One event for one webhook; retried with backoff until delivered or given up."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, related_name="deliveries"
    )
    run = models.ForeignKey(
        "runs.Run", on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    event = models.CharField(max_length=50)
    # The exact JSON body sent on every attempt (signed afresh with each timestamp).
    body = models.TextField()
    status = models.CharField(
        max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values),
                name="webhook_delivery_status_valid",
            ),
        ]
        indexes = [
            # housekeeping: pending deliveries that are due
            models.Index(
                fields=["status", "next_attempt_at"], name="webhook_delivery_due"
            ),
        ]

    def __str__(self):
        return f"{self.event} → {self.webhook.url} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery: what came back, or why nothing did."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "number"], name="webhook_attempt_number_unique"
            ),
        ]

    def __str__(self):
        return f"attempt {self.number}: {self.status_code or self.error[:40]}"
