from django.contrib import admin
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV

from ..models import Subject
from ..resources import SubjectResource


@admin.register(Subject)
class SubjectAdmin(ImportExportModelAdmin):
    """Subjects; CSV import previews every row and imports nothing if one fails."""

    list_display = ["reference", "kind", "name", "status", "due_on"]
    list_filter = ["kind", "status"]
    search_fields = ["=reference", "name"]
    resource_classes = [SubjectResource]
    formats = [CSV]
    show_full_result_count = False

    def has_import_permission(self, request):
        return request.user.has_perm(
            "automations.add_subject"
        ) and request.user.has_perm("automations.change_subject")

    def has_export_permission(self, request):
        return request.user.has_perm("automations.view_subject")
