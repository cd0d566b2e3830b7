"""Filters of the runs list and the CSV export (one FilterSet for both)."""

import datetime

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from automations.models import TriggerKind

from ..models import Run
from ..states import RunState


class UtcIsoDateTimeField(IsoDateTimeField):
    """ISO 8601, normalised to UTC: PostgreSQL refuses offsets past ±15:59 that
    Python accepts, and a date at the edge of the calendar may not convert."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(datetime.UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError("date and time out of range") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class RunFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(
        choices=RunState.choices, help_text="Run state; repeat for several."
    )
    automation = django_filters.CharFilter(
        field_name="automation__slug", help_text="Automation slug."
    )
    workspace = django_filters.CharFilter(
        field_name="automation__workspace__slug",
        max_length=100,
        help_text="Workspace slug (another workspace's: no runs, as an unknown one).",
    )
    trigger = django_filters.ChoiceFilter(
        field_name="trigger_kind", choices=TriggerKind.choices
    )
    created_after = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601, inclusive."
    )
    created_before = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="ISO 8601, exclusive."
    )
    # true or false, anything else is a 400 (a BooleanFilter would ignore it)
    archived = django_filters.TypedChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        coerce=lambda value: value == "true",
    )

    class Meta:
        model = Run
        fields = [
            "state",
            "automation",
            "workspace",
            "trigger",
            "created_after",
            "created_before",
            "archived",
        ]
