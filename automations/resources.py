"""django-import-export resource for subjects (CSV import and export)."""

from import_export import fields, resources, widgets

from runs.csv import csv_safe_row

from .models import DEFAULT_WORKSPACE, Subject, Workspace
from .workspaces import UnknownWorkspace, may, workspace_get

IMPORT_PERMISSIONS = ("automations.add_subject", "automations.change_subject")


class SubjectResource(resources.ModelResource):
    """Subjects keyed by (workspace, kind, reference): a row updates the subject it
    names in its workspace (the slug; an empty cell or no column: `default`), and
    the person importing needs the add and change permissions there."""

    workspace = fields.Field(
        attribute="workspace",
        column_name="workspace",
        widget=widgets.ForeignKeyWidget(Workspace, field="slug"),
    )
    attributes = fields.Field(
        attribute="attributes", column_name="attributes", widget=widgets.JSONWidget()
    )

    class Meta:
        model = Subject
        import_id_fields = ["workspace", "kind", "reference"]
        fields = [
            "workspace",
            "kind",
            "reference",
            "name",
            "status",
            "due_on",
            "attributes",
        ]
        export_order = fields
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True  # full_clean(): bad rows are row errors

    def before_import(self, dataset, **kwargs):
        # a file without the column (the format before workspaces) imports into
        # `default`, as an empty cell does
        if "workspace" not in (dataset.headers or ()):
            dataset.insert_col(0, col=[""] * dataset.height, header="workspace")

    def before_import_row(self, row, **kwargs):
        for name in ("kind", "reference"):
            if not str(row.get(name) or "").strip():
                raise ValueError(f"{name} is required")
        slug = str(row.get("workspace") or "").strip() or DEFAULT_WORKSPACE
        row["workspace"] = slug
        try:
            workspace = workspace_get(slug)  # `default` is made on first use
        except UnknownWorkspace as missing:
            raise ValueError(str(missing)) from None
        user = kwargs.get("user")
        if not all(may(user, perm, workspace.pk) for perm in IMPORT_PERMISSIONS):
            raise ValueError(f"you may not import subjects into workspace {slug}")
        # empty cells take the model's defaults rather than NULL
        if not str(row.get("attributes") or "").strip():
            row["attributes"] = "{}"
        if not str(row.get("status") or "").strip():
            row["status"] = "active"

    def export_resource(self, instance, selected_fields=None, **kwargs):
        return csv_safe_row(
            super().export_resource(instance, selected_fields, **kwargs)
        )
