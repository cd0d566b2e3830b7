from django import forms
from django.core.exceptions import ValidationError

from runs.states import RUN_PRIORITY_MAX, RUN_PRIORITY_MIN


class RunNowForm(forms.Form):
    version = forms.ModelChoiceField(queryset=None, empty_label=None)
    priority = forms.IntegerField(
        required=False,
        initial=0,
        min_value=RUN_PRIORITY_MIN,
        max_value=RUN_PRIORITY_MAX,
        help_text="When the automation is at its max concurrent runs, the run waits: "
        "higher priority starts first, then oldest.",
    )
    inputs = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
        label="Inputs (JSON)",
        help_text="A JSON object or a list of objects, one work item each, e.g. "
        '[{"subject": "account:ACC-1001"}]. Empty: one empty item.',
    )

    def __init__(self, *args, automation, **kwargs):
        super().__init__(*args, **kwargs)

        versions = automation.versions.order_by("-number")
        self.fields["version"].queryset = versions
        self.fields["version"].label_from_instance = lambda v: (
            f"v{v.number} ({'published' if v.is_published else 'draft'})"
        )
        latest = automation.latest_published_version() or automation.latest_version()
        if latest:
            self.fields["version"].initial = latest.pk

    def clean_priority(self):
        priority = self.cleaned_data["priority"]
        return 0 if priority is None else priority

    def clean_inputs(self):
        text = self.cleaned_data["inputs"].strip()
        if not text:
            return []
        from runs.api.parsers import json_parse
        from runs.services import InvalidInputs, inputs_clean

        try:
            value = json_parse(text)
        except ValueError as exc:
            raise ValidationError(f"Not valid JSON: {exc}") from None

        try:
            return inputs_clean(value)
        except InvalidInputs as exc:
            raise ValidationError(str(exc)) from None


class DefinitionsUploadForm(forms.Form):
    file = forms.FileField(
        help_text="JSON or YAML: one automation definition or a list of them."
    )


class DefinitionsConfirmForm(forms.Form):
    payload = forms.CharField(widget=forms.HiddenInput)
