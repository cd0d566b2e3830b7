"""Engine and ledger tables: visible, exportable, never edited or deleted by hand."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV

from ..models import ActionResult, AuditEvent, RunItem, StepRun, WorkItem
from ..resources import RunItemResource
from .changelist import WindowPaginator
from .display import state_badge
from .run_actions import EXPORT_PERMISSION


class BigTableAdmin(admin.ModelAdmin):
    """Read-only, and fast on millions of rows: no counts, no facets."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50

    class Media:
        css = {"all": ["runs/admin.css"]}

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_paginator(
        self, request, queryset, per_page, orphans=0, allow_empty_first_page=True
    ):
        return WindowPaginator(
            queryset, per_page, orphans, allow_empty_first_page, request=request
        )

    @admin.display(description="Run", ordering="run__number")
    def run_link(self, obj):
        if obj.run_id is None:
            return "-"
        url = reverse("admin:runs_run_change", args=[obj.run_id])
        return format_html('<a href="{}">#{}</a>', url, obj.run.number)


@admin.register(StepRun)
class StepRunAdmin(BigTableAdmin):
    list_display = [
        "pk",
        "run_link",
        "step",
        "state",
        "worker",
        "items_processed",
        "exit_code",
        "started_at",
        "finished_at",
    ]
    list_filter = ["state"]
    list_select_related = ["run", "step"]


@admin.register(WorkItem)
class WorkItemAdmin(BigTableAdmin):
    list_display = [
        "pk",
        "run_link",
        "step",
        "item_state",
        "subject",
        "attempts",
        "failure_type",
        "failure_code",
        "failure_message",
    ]
    list_filter = ["state", "failure_type"]
    list_select_related = ["run", "step"]
    search_fields = ["=subject"]
    readonly_fields = ["run_link"]

    def get_ordering(self, request):
        # one run's items in order (index work_item_run_order); all runs' items
        # newest first (the primary key, read backwards)
        if "run__id__exact" in request.GET:
            return ["id"]
        return ["-id"]

    @admin.display(description="State", ordering="state")
    def item_state(self, item):
        return state_badge(item.state)


@admin.register(RunItem)
class RunItemAdmin(ExportMixin, BigTableAdmin):
    list_display = [
        "pk",
        "run_link",
        "seq",
        "step",
        "action",
        "subject",
        "attempt",
        "outcome",
        "result_ref",
        "failure_cause",
        "finished_at",
    ]
    list_filter = ["outcome"]
    list_select_related = ["run", "step"]
    search_fields = ["=subject", "=idempotency_key"]
    resource_classes = [RunItemResource]
    formats = [CSV]

    def has_export_permission(self, request):
        return request.user.has_perm(EXPORT_PERMISSION)


@admin.register(AuditEvent)
class AuditEventAdmin(BigTableAdmin):
    list_display = [
        "created_at",
        "run_link",
        "seq",
        "actor_label",
        "verb",
        "object_type",
        "object_id",
        "reason",
    ]
    list_filter = ["verb"]
    list_select_related = ["run"]


@admin.register(ActionResult)
class ActionResultAdmin(BigTableAdmin):
    list_display = ["idempotency_key", "result_ref", "created_at"]
