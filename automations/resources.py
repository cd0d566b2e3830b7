"""django-import-export resource for subjects (CSV import and export)."""

from import_export import fields, resources, widgets

from runs.csv import csv_safe_row

from .models import Subject


class SubjectResource(resources.ModelResource):
    """Subjects keyed by (kind, reference): a row updates the subject it names."""

    attributes = fields.Field(
        attribute="attributes", column_name="attributes", widget=widgets.JSONWidget()
    )

    class Meta:
        model = Subject
        import_id_fields = ["kind", "reference"]
        fields = ["kind", "reference", "name", "status", "due_on", "attributes"]
        export_order = fields
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True  # full_clean(): bad rows are row errors

    def before_import_row(self, row, **kwargs):
        for name in ("kind", "reference"):
            if not str(row.get(name) or "").strip():
                raise ValueError(f"{name} is required")
        # empty cells take the model's defaults rather than NULL
        if not str(row.get("attributes") or "").strip():
            row["attributes"] = "{}"
        if not str(row.get("status") or "").strip():
            row["status"] = "active"

    def export_resource(self, instance, selected_fields=None, **kwargs):
        return csv_safe_row(
            super().export_resource(instance, selected_fields, **kwargs)
        )
