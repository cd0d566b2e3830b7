"""E-mail intake records, notification subscriptions and the notification outbox.

These models belong to the `runs` app (imported by `runs.models`), so they migrate
with it.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class InboundOutcome(models.TextChoices):
    ACCEPTED = "accepted", _("Accepted")
    DUPLICATE = "duplicate", _("Duplicate")
    REJECTED = "rejected", _("Rejected")


class InboundReason(models.TextChoices):
    NONE = "", _("—")
    UNPARSEABLE = "unparseable", _("Not a parseable message")
    TOO_LARGE = "too_large", _("Message too large")
    ATTACHMENT_TOO_LARGE = "attachment_too_large", _("Attachment too large")
    NO_AUTOMATION = "no_automation", _("No automation for the recipient")
    SENDER_NOT_ALLOWED = "sender_not_allowed", _("Sender not allowed")
    SUBJECT_MISMATCH = "subject_mismatch", _("Subject does not match")
    NOT_RUNNABLE = "not_runnable", _("Automation cannot run")


class InboundSource(models.TextChoices):
    STDIN = "stdin", _("MTA pipe")
    IMAP = "imap", _("IMAP")


class InboundMessage(models.Model):
    """One message met by the e-mail trigger, for one automation (or none).

    An accepted row is the claim that stops a second run for the same Message-ID
    and automation; rejected and duplicate rows are the log and the counts of bad
    or repeated mail.
    """

    automation = models.ForeignKey(
        "automations.Automation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inbound_messages",
    )
    trigger = models.ForeignKey(
        "automations.Trigger",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inbound_messages",
    )
    message_id = models.CharField(max_length=500, blank=True)
    sender = models.CharField(max_length=254, blank=True)
    recipients = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=500, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    source = models.CharField(max_length=10, choices=InboundSource.choices)
    outcome = models.CharField(max_length=20, choices=InboundOutcome.choices)
    reason = models.CharField(
        max_length=30, choices=InboundReason.choices, blank=True, default=""
    )
    detail = models.TextField(blank=True)
    run = models.ForeignKey(
        "runs.Run",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inbound_messages",
    )
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "runs"
        ordering = ["-received_at", "-id"]
        constraints = [
            # one run per Message-ID and automation, however often it is delivered
            models.UniqueConstraint(
                fields=["automation", "message_id"],
                condition=Q(outcome="accepted"),
                name="inbound_message_once_per_automation",
            ),
            models.CheckConstraint(
                condition=Q(outcome__in=InboundOutcome.values),
                name="inbound_outcome_valid",
            ),
            models.CheckConstraint(
                condition=Q(reason__in=InboundReason.values),
                name="inbound_reason_valid",
            ),
            # a rejection always says why; an accepted or duplicate message never
            # carries a reason
            models.CheckConstraint(
                condition=(Q(outcome="rejected") & ~Q(reason=""))
                | (~Q(outcome="rejected") & Q(reason="")),
                name="inbound_reason_iff_rejected",
            ),
        ]
        indexes = [
            # admin changelist and counts: rejected mail by reason, newest first
            models.Index(
                fields=["outcome", "reason", "-received_at"], name="inbound_outcome"
            ),
        ]

    def __str__(self):
        return f"{self.message_id or '(no id)'}: {self.outcome}"


class NotificationMode(models.TextChoices):
    IMMEDIATE = "immediate", _("One e-mail per run")
    DIGEST = "digest", _("Digest")
    OFF = "off", _("Off")


class AutomationSubscription(models.Model):
    """Someone who hears about an automation's runs, or an owner's preference.

    Owners are notified without a row (in RUNS_NOTIFY_DEFAULT_MODE); a row for an
    owner changes their mode, a row for anyone else subscribes them.
    """

    automation = models.ForeignKey(
        "automations.Automation", on_delete=models.CASCADE, related_name="subscriptions"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="automation_subscriptions",
    )
    mode = models.CharField(
        max_length=20,
        choices=NotificationMode.choices,
        default=NotificationMode.IMMEDIATE,
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "runs"
        ordering = ["automation", "user"]
        constraints = [
            models.UniqueConstraint(
                fields=["automation", "user"], name="subscription_once_per_user"
            ),
            models.CheckConstraint(
                condition=Q(mode__in=NotificationMode.values),
                name="subscription_mode_valid",
            ),
        ]

    def __str__(self):
        return f"{self.user} on {self.automation} ({self.mode})"


class Notification(models.Model):
    """Outbox: one person to tell that a run became unresolved, failed or timed out.

    Sent at once (immediate) or collected into that person's next digest; a failed
    send stays unsent with its error and is retried by `notifications_send_due`.
    """

    run = models.ForeignKey(
        "runs.Run", on_delete=models.CASCADE, related_name="notifications"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    email = models.EmailField()
    state = models.CharField(max_length=30)
    mode = models.CharField(max_length=20, choices=NotificationMode.choices)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        app_label = "runs"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    mode__in=[NotificationMode.IMMEDIATE, NotificationMode.DIGEST]
                ),
                name="notification_mode_valid",
            ),
        ]
        indexes = [
            # the sender's scan: unsent notifications by mode and recipient
            models.Index(
                fields=["mode", "email"],
                condition=Q(sent_at__isnull=True),
                name="notification_unsent",
            ),
            # digest period: a recipient's last sent digest
            models.Index(fields=["email", "sent_at"], name="notification_email_sent"),
        ]

    def __str__(self):
        return f"{self.email}: run {self.run_id} {self.state}"
