"""Admin for e-mail intake records, subscriptions and the notification outbox.

Registered from `RunsConfig.ready()` (not from runs/admin.py, which other work
turns into a package).
"""

from django.contrib import admin

from automations.admin.scoping import WorkspaceScopedAdmin

from .models import AutomationSubscription, InboundMessage, Notification


class _ReadOnly(WorkspaceScopedAdmin):
    """Intake and outbox rows are records: visible, never edited by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(InboundMessage)
class InboundMessageAdmin(_ReadOnly):
    list_display = [
        "received_at",
        "outcome",
        "reason",
        "automation",
        "sender",
        "subject",
        "message_id",
        "source",
        "run",
    ]
    list_filter = ["outcome", "reason", "source", "automation"]
    list_select_related = ["automation", "run"]
    search_fields = ["=message_id", "sender", "subject"]
    raw_id_fields = ["automation", "trigger", "run"]
    date_hierarchy = "received_at"
    show_full_result_count = False


@admin.register(AutomationSubscription)
class AutomationSubscriptionAdmin(WorkspaceScopedAdmin):
    list_display = ["automation", "user", "mode", "created_at"]
    list_filter = ["mode", "automation"]
    list_select_related = ["automation", "user"]
    raw_id_fields = ["user"]
    search_fields = ["user__username", "user__email", "automation__slug"]


@admin.register(Notification)
class NotificationAdmin(_ReadOnly):
    workspace_path = "run__automation__workspace"
    list_display = [
        "created_at",
        "email",
        "run",
        "state",
        "mode",
        "sent_at",
        "attempts",
        "error",
    ]
    list_filter = ["mode", "state", ("sent_at", admin.EmptyFieldListFilter)]
    list_select_related = ["run"]
    raw_id_fields = ["run", "user"]
    search_fields = ["email"]
    show_full_result_count = False
