"""Admin for secrets: values are written, never shown back (not even on a form
that failed validation); whoever may not change secrets sees names and key names
only. Registered from `RunsConfig.ready()`."""

from django import forms
from django.contrib import admin

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
        fields = ["name", "description"]

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

    def save(self, commit=True):
        values = self.cleaned_data.get("values")
        if values:
            self.instance.set_values(values)
        return super().save(commit=commit)


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    form = SecretForm
    list_display = ["name", "key_names", "description", "updated_at"]
    search_fields = ["name"]
    readonly_fields = ["key_names", "created_at", "updated_at"]

    @admin.display(description="keys")
    def key_names(self, obj):
        return ", ".join(obj.keys or [])

    def get_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            return ["name", "description", "key_names", "created_at", "updated_at"]
        fields = ["name", "description", "values"]
        return fields if obj is None else [*fields, *self.readonly_fields]
