from django.contrib import admin

from .models import Automation, AutomationVersion, Step, Subject, Trigger


class StepInline(admin.TabularInline):
    model = Step
    extra = 0
    fields = ["order", "name", "action", "parameters", "batch_size", "concurrency",
              "max_attempts", "retry_backoff_seconds", "condition", "requires_approval"]

    def has_change_permission(self, request, obj=None):
        return obj is None or not obj.is_published

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


class TriggerInline(admin.TabularInline):
    model = Trigger
    extra = 0
    fields = ["kind", "cron", "address", "senders", "subject_pattern", "enabled",
              "schedule", "last_fired_at"]
    readonly_fields = ["schedule", "last_fired_at"]


class VersionInline(admin.TabularInline):
    model = AutomationVersion
    extra = 0
    fields = ["number", "published_at", "run_timeout_seconds", "created_at"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Automation)
class AutomationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "status", "updated_at"]
    list_filter = ["status"]
    search_fields = ["=slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["owners"]
    readonly_fields = ["status", "created_at", "updated_at"]
    inlines = [VersionInline, TriggerInline]


@admin.register(AutomationVersion)
class AutomationVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "automation", "number", "published_at", "created_at"]
    list_filter = ["automation"]
    list_select_related = ["automation"]
    readonly_fields = ["definition_hash", "published_at", "created_at"]
    inlines = [StepInline]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_published:
            return ["automation", "number", "run_timeout_seconds", *self.readonly_fields]
        return self.readonly_fields


@admin.register(Trigger)
class TriggerAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "enabled", "last_fired_at"]
    list_filter = ["kind", "enabled"]
    list_select_related = ["automation"]
    readonly_fields = ["schedule", "last_fired_at"]


@admin.register(Subject)
class SubjectAdmin(admin.ModelAdmin):
    list_display = ["reference", "kind", "name", "status", "due_on"]
    list_filter = ["kind", "status"]
    search_fields = ["=reference", "name"]
