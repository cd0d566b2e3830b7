from django.contrib import admin
from import_export.admin import ImportExportMixin
from import_export.formats.base_formats import CSV

from ..models import Subject
from ..resources import IMPORT_PERMISSIONS, SubjectResource
from ..workspaces import may_somewhere, workspaces_where
from .scoping import WorkspaceScopedAdmin


@admin.register(Subject)
class SubjectAdmin(ImportExportMixin, WorkspaceScopedAdmin):
    workspace_path = "workspace"
    """Subjects; CSV import previews every row and imports nothing if one fails."""

    list_display = ["reference", "kind", "name", "status", "due_on"]
    list_filter = ["kind", "status"]
    search_fields = ["=reference", "name"]
    resource_classes = [SubjectResource]
    formats = [CSV]
    show_full_result_count = False

    def has_import_permission(self, request):
        # both permissions in one workspace at least (None: in every one); each
        # row is checked in its own workspace (SubjectResource)
        held = [workspaces_where(request.user, perm) for perm in IMPORT_PERMISSIONS]
        held = [where for where in held if where is not None]
        return not held or bool(frozenset.intersection(*held))

    def has_export_permission(self, request):
        return may_somewhere(request.user, "automations.view_subject")
