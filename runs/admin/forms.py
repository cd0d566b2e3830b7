"""Forms of the confirmation pages of run actions."""

from django import forms
from django.core.exceptions import ValidationError

from ..states import StopPendingItems, StopStepRuns, WorkItemState


class WorkItemsField(forms.TypedMultipleChoiceField):
    """Optional choice among a run's items (detail page only); none = all."""

    def __init__(self, **kwargs):
        super().__init__(
            coerce=int, required=False, widget=forms.CheckboxSelectMultiple, **kwargs
        )


class ActionForm(forms.Form):
    """Base: `item_state` names the items the action may pick (on the detail page)."""

    item_state = None
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Recorded in the audit trail.",
    )

    def __init__(self, *args, items=None, **kwargs):
        super().__init__(*args, **kwargs)
        if items is not None and self.item_state:
            self.fields["work_items"] = WorkItemsField(
                label="Work items",
                choices=[(item.pk, _item_label(item)) for item in items],
                help_text="Leave all unticked to act on every one of them.",
            )

    def selected_items(self):
        ids = self.cleaned_data.get("work_items")
        return list(ids) if ids else None


def _item_label(item) -> str:
    failure = (
        f" - {item.failure_code}: {item.failure_message[:80]}"
        if item.failure_code
        else ""
    )
    return f"#{item.pk} {item.step.name} {item.subject or ''}{failure}"


class StopForm(ActionForm):
    step_runs = forms.ChoiceField(
        choices=StopStepRuns.choices,
        widget=forms.RadioSelect,
        initial=StopStepRuns.COMPLETE,
        label="In-flight step runs",
    )
    pending_items = forms.ChoiceField(
        choices=StopPendingItems.choices,
        widget=forms.RadioSelect,
        initial=StopPendingItems.FAILED,
        label="Pending items",
    )


class RetryForm(ActionForm):
    item_state = WorkItemState.FAILED
    reread_subjects = forms.BooleanField(
        required=False,
        label="Re-read each item's subject first",
        help_text="Asks the run's subject source again and updates each failed "
        "item's payload with its subject's current data (recorded, before and "
        "after) before the retry.",
    )


class PayloadEditForm(forms.Form):
    payload = forms.JSONField(widget=forms.Textarea(attrs={"rows": 12, "cols": 80}))
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required: why the data is corrected (recorded with the payload "
        "before and after).",
    )

    def clean_payload(self):
        payload = self.cleaned_data["payload"]
        if not isinstance(payload, dict):
            raise ValidationError("The payload must be a JSON object.")
        return payload


class ResolveForm(ActionForm):
    item_state = WorkItemState.FAILED
    reason = None
    note = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Required: why these failed items are settled by hand.",
    )

    def clean_note(self):
        note = self.cleaned_data["note"].strip()
        if not note:
            raise ValidationError("A note is required to resolve work items.")
        return note


class RerunForm(ActionForm):
    version = forms.ChoiceField(
        choices=[
            ("original", "The version the run used"),
            ("latest", "The latest published version"),
        ],
        widget=forms.RadioSelect,
        initial="original",
    )
    failed_only = forms.BooleanField(
        required=False,
        label="Only the inputs whose items failed",
        help_text="The new run starts with the inputs that led to a failed item.",
    )
    reason = None


def input_data_field(**options) -> forms.JSONField:
    """The free-form input of a decision (no `input_schema`): a JSON object."""
    return forms.JSONField(
        required=False,
        label="Input data (JSON object)",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Given to the next step with the item, e.g. {"limit": 500}.',
        **options,
    )


def json_object(data) -> dict:
    """An `input_data_field`'s value: {} when empty; anything but an object is
    refused."""
    if data in (None, ""):
        return {}
    if not isinstance(data, dict):
        raise ValidationError("Input data must be a JSON object.")
    return data


class DecideForm(ActionForm):
    item_state = WorkItemState.AWAITING_INPUT
    decision = forms.ChoiceField(
        choices=[("approve", "Approve"), ("reject", "Reject")], widget=forms.RadioSelect
    )
    data = input_data_field(initial=dict)

    def clean_data(self):
        return json_object(self.cleaned_data.get("data"))


class ExportForm(forms.Form):
    what = forms.ChoiceField(
        choices=[
            ("runs", "The runs (one row per run)"),
            ("run_items", "Their run items (one row per action on a subject)"),
            (
                "audit",
                "Audit trail, streamed: run items and audit events in ledger order",
            ),
        ],
        widget=forms.RadioSelect,
        initial="runs",
    )
