"""django-import-export resources for runs and run items (CSV export).

Every cell goes through `runs.csv.csv_safe` (formula neutralisation).
"""

from django.db import models
from django.utils import timezone
from import_export import fields, resources, widgets

from .csv import csv_safe_row
from .models import Run, RunItem


class IsoDateTimeWidget(widgets.DateTimeWidget):
    """A time as ISO 8601 with its offset, in the active time zone (the audit
    CSV's form): django-import-export's own writes a zone-less local time."""

    def render(self, value, obj=None, **kwargs):
        if not value:
            return ""
        return timezone.localtime(value).isoformat()


class CsvSafeResource(resources.ModelResource):
    """A ModelResource whose exported headers and cells are neutralised, its
    times ISO 8601 with their offset."""

    @classmethod
    def widget_from_django_field(cls, f, default=widgets.Widget):
        if isinstance(f, models.DateTimeField):
            return IsoDateTimeWidget
        return super().widget_from_django_field(f, default)

    def export_resource(self, instance, selected_fields=None, **kwargs):
        return csv_safe_row(
            super().export_resource(instance, selected_fields, **kwargs)
        )

    def get_export_headers(self, selected_fields=None):
        return csv_safe_row(super().get_export_headers(selected_fields))


class RunResource(CsvSafeResource):
    automation = fields.Field(attribute="automation__slug", column_name="automation")
    version = fields.Field(attribute="version__number", column_name="version")
    rerun_of = fields.Field(attribute="rerun_of__number", column_name="rerun_of")
    lead_time_seconds = fields.Field(
        attribute="lead_time_seconds", column_name="lead_time_seconds", readonly=True
    )

    class Meta:
        model = Run
        fields = [
            "id",
            "number",
            "automation",
            "version",
            "state",
            "trigger_kind",
            "run_by_label",
            "created_at",
            "started_at",
            "completed_at",
            "lead_time_seconds",
            "total_items",
            "output_items",
            "failed_items",
            "subjects_matched",
            "actions_invoked",
            "current_step",
            "archived",
            "rerun_of",
            "is_test_case",
        ]
        export_order = fields

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("automation", "version", "rerun_of")


class RunItemResource(CsvSafeResource):
    run = fields.Field(attribute="run__number", column_name="run")
    run_id = fields.Field(attribute="run_id", column_name="run_id")
    work_item = fields.Field(attribute="work_item_id", column_name="work_item")
    step = fields.Field(attribute="step__name", column_name="step")

    class Meta:
        model = RunItem
        fields = [
            "id",
            "run",
            "run_id",
            "seq",
            "work_item",
            "step",
            "action",
            "subject",
            "attempt",
            "idempotency_key",
            "outcome",
            "result_ref",
            "failure_type",
            "failure_cause",
            "started_at",
            "finished_at",
            "hash",
        ]
        export_order = fields

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("run", "step")
