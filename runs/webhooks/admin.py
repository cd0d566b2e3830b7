"""Admin for webhooks, their deliveries and every attempt; and API clients and keys.

Registered from `RunsConfig.ready()`, apart from `runs/admin`, which is its own
module.
"""

from django.contrib import admin

from automations.admin.scoping import WorkspaceScopedAdmin

from ..api.models import ApiClient, ApiToken, IdempotencyKey
from ..api.tokens import api_token_revoke
from .models import Webhook, WebhookAttempt, WebhookDelivery


@admin.register(Webhook)
class WebhookAdmin(WorkspaceScopedAdmin):
    list_display = ["automation", "url", "events", "is_active", "created_at"]
    list_filter = ["is_active", "automation"]
    list_select_related = ["automation"]
    raw_id_fields = ["automation"]


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = [
        "number",
        "started_at",
        "duration_ms",
        "status_code",
        "error",
        "response_excerpt",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(WorkspaceScopedAdmin):
    workspace_path = "webhook__automation__workspace"

    list_display = [
        "created_at",
        "event",
        "webhook",
        "run",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event"]
    list_select_related = ["webhook", "webhook__automation", "run"]
    readonly_fields = [
        "id",
        "webhook",
        "run",
        "event",
        "body",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "created_at",
        "delivered_at",
    ]
    inlines = [WebhookAttemptInline]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "created_at"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    filter_horizontal = ["automations"]
    search_fields = ["name", "user__username"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Lists tokens (never a key: only its digest is stored) and revokes them
    (delete, with Django's confirmation page; each revocation is a ledger event).
    Tokens are made by `manage.py api_token_create`, which shows the key once."""

    list_display = ["name", "user", "created", "expiry", "is_expired", "last_used_at"]
    list_display_links = None
    list_select_related = ["user"]
    list_filter = ["expiry"]
    search_fields = ["name", "user__username"]
    fields = ["name", "user", "created", "expiry", "last_used_at"]
    readonly_fields = fields
    show_full_result_count = False

    @admin.display(boolean=True, description="expired")
    def is_expired(self, obj):
        return obj.is_expired

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        api_token_revoke(token=obj, actor=request.user, reason="revoked in admin")

    def delete_queryset(self, request, queryset):
        for token in queryset.select_related("user"):
            api_token_revoke(token=token, actor=request.user, reason="revoked in admin")


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(WorkspaceScopedAdmin):
    list_display = ["key", "user", "automation", "run", "created_at", "expires_at"]
    list_select_related = ["user", "automation", "run"]
    readonly_fields = [
        "key",
        "user",
        "automation",
        "request_hash",
        "run",
        "created_at",
        "expires_at",
    ]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
