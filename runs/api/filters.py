"""Filters of the runs list and the CSV export (one FilterSet for both)."""

import datetime

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter

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


class RunOrdering(OrderingFilter):
    """`?ordering=` on the runs list: `-completed_at` (the latest completions first;
    only runs that have completed, since the others have no completion time),
    `created_at`, `number`, each also reversed. Anything else is a 400; the
    default is `-number`. Ties are broken by number, so cursor pages are stable."""

    ordering_param = "ordering"
    ordering_fields = ("completed_at", "created_at", "number")
    default = ("-number",)

    def get_ordering(self, request, queryset, view):
        raw = request.query_params.get(self.ordering_param)
        if raw is None or raw == "":
            return self.default
        name = raw.removeprefix("-")
        if name not in self.ordering_fields:
            allowed = ", ".join(
                f"{p}{f}" for f in self.ordering_fields for p in ("", "-")
            )
            raise ValidationError(
                {self.ordering_param: f"must be one of {allowed}, got {raw[:50]!r}"},
                code="invalid_ordering",
            )
        if name == "number":
            return (raw,)
        return (raw, "-number" if raw.startswith("-") else "number")

    def filter_queryset(self, request, queryset, view):
        ordering = self.get_ordering(request, queryset, view)
        if ordering[0].lstrip("-") == "completed_at":
            queryset = queryset.filter(completed_at__isnull=False)
        return queryset.order_by(*ordering)

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": "Sort order: -completed_at, created_at, number "
                "(each also reversed); default -number.",
                "schema": {
                    "type": "string",
                    "enum": [
                        f"{p}{f}" for f in self.ordering_fields for p in ("", "-")
                    ],
                },
            }
        ]
