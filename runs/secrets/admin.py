"""Admin for secrets: values are written, never shown back (not even on a form
that failed validation); whoever may not change secrets sees names and key names
only. Scoped like every admin of a workspace's rows (`WorkspaceScopedAdmin`): a
person sees and changes the secrets of the workspaces where they hold the
secret permissions, and another workspace's secret is a 404. A secret's
workspace is chosen when it is made and stays (its references are checked
there). Registered from `RunsConfig.ready()`."""

from django import forms
from django.contrib import admin

from automations.admin.scoping import WorkspaceScopedAdmin

from .models import Secret
from .services import SecretInputError, values_parse


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value (neither stored nor submitted)."""

    def format_value(self, value):
        return None


class SecretForm(forms.ModelForm):
    values = forms.CharField(
        widget=WriteOnlyTextarea(attrs={"rows": 6, "autocomplete": "off"}),
        required=False,
        strip=False,
        help_text='A JSON object of key → string value, e.g. {"username": "svc", '
        '"password": "…"}. It replaces every value of the secret and is never shown '
        "again; leave it empty to keep the values.",
    )

    class Meta:
        model = Secret
        fields = ["workspace", "name", "description"]

    def clean_values(self):
        raw = self.cleaned_data.get("values") or ""
        if not raw.strip():
            if self.instance.pk is None:
                raise forms.ValidationError("required for a new secret")
            return None
        try:
            return values_parse(raw)
        except SecretInputError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        cleaned = super().clean()
        # the workspace is read-only on a change page, so Django's check of
        # unique (workspace, name) leaves it out: checked here, not by the database
        name = cleaned.get("name")
        workspace_id = self.instance.workspace_id if self.instance.pk else None
        if name and workspace_id is not None:
            taken = (
                Secret.objects.filter(workspace_id=workspace_id, name=name)
                .exclude(pk=self.instance.pk)
                .exists()
            )
            if taken:
                self.add_error("name", "this workspace has a secret of this name")
        return cleaned

    def save(self, commit=True):
        values = self.cleaned_data.get("values")
        if values:
            self.instance.set_values(values)
        return super().save(commit=commit)


@admin.register(Secret)
class SecretAdmin(WorkspaceScopedAdmin):
    form = SecretForm
    workspace_path = "workspace"
    list_display = ["name", "key_names", "description", "updated_at"]
    search_fields = ["name"]
    readonly_fields = ["key_names", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return readonly if obj is None else ["workspace", *readonly]

    @admin.display(description="keys")
    def key_names(self, obj):
        return ", ".join(obj.keys or [])

    def get_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            return [
                "workspace",
                "name",
                "description",
                "key_names",
                "created_at",
                "updated_at",
            ]
        fields = ["workspace", "name", "description", "values"]
        return fields if obj is None else [*fields, *self.readonly_fields]
