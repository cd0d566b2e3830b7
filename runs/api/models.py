"""API clients (which automations a token may trigger) and idempotency keys."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiClient(models.Model):
    """An integration that calls the API with its user's token.

    A request authenticated by token may trigger only the automations its user's
    client lists (superusers: any); the user also needs the `runs.trigger_run`
    permission. Session users (people) are governed by permissions alone.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_client"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    automations = models.ManyToManyField(
        "automations.Automation",
        blank=True,
        related_name="api_clients",
        help_text="Automations this client may trigger over the API.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "API client"
        ordering = ["name"]

    def __str__(self):
        return self.name


class IdempotencyKey(models.Model):
    """A trigger's `Idempotency-Key`, claimed by INSERT before the run is created.

    The unique (user, automation, key) lets exactly one of many concurrent requests
    claim the key; the others find it in flight (run still empty: 409) or done
    (the same run again). A key is kept until `expires_at`, then a new request with
    it starts a new run.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    automation = models.ForeignKey(
        "automations.Automation", on_delete=models.CASCADE, related_name="+"
    )
    key = models.CharField(max_length=255)
    # sha256 of the canonical JSON body: the same key with another body is refused
    request_hash = models.CharField(max_length=64)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "automation", "key"], name="idempotency_key_unique"
            ),
        ]
        indexes = [
            # pruning of expired keys
            models.Index(fields=["expires_at"], name="idempotency_key_expires"),
        ]

    def __str__(self):
        return self.key
