from django.contrib import admin

from .models import ActionResult, AuditEvent, Run, RunItem, StepRun, WorkItem


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledger and engine rows: visible, never edited or deleted by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["number", "automation", "version", "state", "trigger_kind",
                    "run_by_label", "created_at", "total_items", "failed_items", "archived"]
    list_filter = ["state", "trigger_kind", "archived", "automation"]
    list_select_related = ["automation", "version", "version__automation"]
    search_fields = ["=number"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(StepRun)
class StepRunAdmin(ReadOnlyAdmin):
    list_display = ["pk", "run", "step", "state", "worker", "items_processed",
                    "started_at", "finished_at"]
    list_filter = ["state"]
    list_select_related = ["run", "step"]
    raw_id_fields = ["run"]
    show_full_result_count = False


@admin.register(WorkItem)
class WorkItemAdmin(ReadOnlyAdmin):
    list_display = ["pk", "run", "step", "state", "subject", "attempts", "failure_type",
                    "failure_code"]
    list_filter = ["state", "failure_type"]
    list_select_related = ["run", "step"]
    search_fields = ["=subject"]
    show_full_result_count = False


@admin.register(RunItem)
class RunItemAdmin(ReadOnlyAdmin):
    list_display = ["pk", "run", "seq", "step", "action", "subject", "attempt", "outcome",
                    "result_ref", "finished_at"]
    list_filter = ["outcome"]
    list_select_related = ["run", "step"]
    search_fields = ["=subject", "=idempotency_key"]
    show_full_result_count = False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "chain", "seq", "actor_label", "verb", "object_type",
                    "object_id", "reason"]
    list_filter = ["verb"]
    list_select_related = ["run"]
    show_full_result_count = False


@admin.register(ActionResult)
class ActionResultAdmin(ReadOnlyAdmin):
    list_display = ["idempotency_key", "result_ref", "created_at"]
    show_full_result_count = False
