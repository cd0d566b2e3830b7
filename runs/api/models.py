"""API clients (which automations a token may reach), API tokens and idempotency
keys."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from knox.models import AbstractAuthToken


class ApiClient(models.Model):
    """An integration that calls the API with its user's tokens.

    A request authenticated by token reaches only the automations its user's client
    lists, on every endpoint (runs.api.permissions; superusers: any), and only with
    its user's permissions. Session users (people) are governed by permissions alone.
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
        help_text="Automations whose runs this client may start, read and control "
        "over the API (with its user's permissions).",
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


class ApiToken(AbstractAuthToken):
    """An API token (django-rest-knox): only a SHA-512 digest of the key is kept,
    with an expiry and the time of its last use. `manage.py api_token_create` shows
    the key once; admin lists tokens (never a key) and revokes them. Requests send
    `Authorization: Token <key>` (runs.api.authentication). Set
    `KNOX_TOKEN_MODEL = "runs.ApiToken"` (a system check says so)."""

    name = models.CharField(max_length=200, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created"]

    def __str__(self):
        return f"{self.name or 'token'} ({self.user})"

    @property
    def is_expired(self) -> bool:
        return self.expiry is not None and self.expiry <= timezone.now()
