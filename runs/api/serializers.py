"""API objects (field names as in the Contract) and request bodies."""

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from automations.models import TriggerKind
from runs.conf import runs_settings

from ..models import Run, RunItem, WorkItem
from ..states import RunState, StopPendingItems, StopStepRuns, WorkItemState


class RunSerializer(serializers.ModelSerializer):
    automation = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    state = serializers.ChoiceField(choices=RunState.choices, read_only=True)
    trigger = serializers.ChoiceField(
        source="trigger_kind", choices=TriggerKind.choices, read_only=True
    )
    run_by = serializers.CharField(source="run_by_label", read_only=True)
    lead_time_seconds = serializers.FloatField(read_only=True, allow_null=True)
    rerun_of = serializers.UUIDField(
        source="rerun_of_id", read_only=True, allow_null=True
    )
    url = serializers.SerializerMethodField()
    workspace = serializers.CharField(
        source="automation.workspace.slug", read_only=True
    )

    class Meta:
        model = Run
        fields = [
            "id",
            "number",
            "automation",
            "version",
            "state",
            "trigger",
            "run_by",
            "current_step",
            "total_items",
            "output_items",
            "failed_items",
            "subjects_matched",
            "actions_invoked",
            "created_at",
            "started_at",
            "completed_at",
            "lead_time_seconds",
            "archived",
            "rerun_of",
            "url",
            "workspace",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, run) -> str:
        return reverse(
            "runs-api:run-detail", args=[run.pk], request=self.context.get("request")
        )


class FailureSerializer(serializers.Serializer):
    type = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class WorkItemSerializer(serializers.ModelSerializer):
    step = serializers.CharField(source="step.name", read_only=True)
    state = serializers.ChoiceField(choices=WorkItemState.choices, read_only=True)
    payload = serializers.JSONField(read_only=True)
    failure = serializers.SerializerMethodField()

    class Meta:
        model = WorkItem
        fields = ["id", "step", "state", "subject", "payload", "attempts", "failure"]
        read_only_fields = fields

    @extend_schema_field(FailureSerializer(allow_null=True))
    def get_failure(self, item):
        if not (item.failure_type or item.failure_code or item.failure_message):
            return None
        return {
            "type": item.failure_type,
            "code": item.failure_code,
            "message": item.failure_message,
        }


class RunItemSerializer(serializers.ModelSerializer):
    step = serializers.CharField(source="step.name", read_only=True)

    class Meta:
        model = RunItem
        fields = [
            "id",
            "work_item",
            "step",
            "action",
            "subject",
            "attempt",
            "idempotency_key",
            "outcome",
            "result_ref",
            "failure_cause",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ErrorSerializer(serializers.Serializer):
    """Every error response: a message for people and a stable code for programs."""

    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(
        required=False, help_text="Per-field messages of a 400, when there are any."
    )


# Request bodies ------------------------------------------------------------------


def refuse_nul(value, path: str) -> None:
    """JSON text may hold U+0000, which PostgreSQL's jsonb cannot store: refuse it
    as a 400 here rather than fail on save."""
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError(f"{path}: contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(key, path)
            refuse_nul(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            refuse_nul(item, f"{path}[{index}]")


class TriggerSerializer(serializers.Serializer):
    inputs = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        default=list,
        help_text="Payloads of the first step's work items (none: one empty item).",
    )

    def validate_inputs(self, inputs):
        limit = runs_settings.MAX_INPUT_BYTES
        for index, item in enumerate(inputs):
            refuse_nul(item, f"inputs[{index}]")
            size = len(json.dumps(item, separators=(",", ":")).encode())
            if size > limit:
                from .errors import RequestTooLarge

                raise RequestTooLarge(
                    f"inputs[{index}] is {size} bytes, larger than the limit of "
                    f"{limit} bytes per input (RUNS_MAX_INPUT_BYTES)"
                )
        return inputs


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=2000
    )


class StopSerializer(ReasonSerializer):
    step_runs = serializers.ChoiceField(
        choices=StopStepRuns.choices, default=StopStepRuns.COMPLETE
    )
    pending_items = serializers.ChoiceField(
        choices=StopPendingItems.choices, default=StopPendingItems.FAILED
    )


class WorkItemIdsField(serializers.ListField):
    child = serializers.IntegerField(min_value=1)


class RetrySerializer(ReasonSerializer):
    work_items = WorkItemIdsField(
        required=False,
        allow_null=True,
        default=None,
        allow_empty=False,
        help_text="Failed work items to retry; none named: all failed items.",
    )


class ResolveSerializer(serializers.Serializer):
    work_items = WorkItemIdsField(
        required=False,
        allow_null=True,
        default=None,
        allow_empty=False,
        help_text="Failed work items to resolve; none named: all failed items.",
    )
    note = serializers.CharField(max_length=2000, help_text="Why; required.")


class RerunSerializer(serializers.Serializer):
    version = serializers.ChoiceField(
        choices=[("original", "original"), ("latest", "latest")], default="original"
    )


class InputSerializer(ReasonSerializer):
    work_item = serializers.IntegerField(min_value=1)
    decision = serializers.ChoiceField(
        choices=[("approve", "approve"), ("reject", "reject")]
    )
    data = serializers.DictField(required=False, default=dict)

    def validate_data(self, data):
        refuse_nul(data, "data")
        return data
