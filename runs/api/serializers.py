"""API objects (field names as in the Contract) and request bodies."""

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from automations.models import TriggerKind
from runs.conf import runs_settings

from ..engine.admission import queue_positions
from ..models import Run, RunItem, RunOutput, StepRun, WorkItem
from ..selectors import run_error
from ..states import (
    RUN_PRIORITY_MAX,
    RUN_PRIORITY_MIN,
    RunState,
    StepRunState,
    StopPendingItems,
    StopStepRuns,
    WorkItemState,
)


class RunListSerializer(serializers.ListSerializer):
    """A page of runs: the queue positions of its waiting runs are counted once
    for the page, before its rows are written."""

    def to_representation(self, data):
        runs = list(data.all() if hasattr(data, "all") else data)
        self.child.positions = queue_positions(runs)
        return super().to_representation(runs)


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
    queue_position = serializers.SerializerMethodField(
        help_text="A waiting run's place among its automation's waiting runs (1: "
        "next to start; max_concurrent_runs), else null."
    )
    # a job's child run: the job run
    parent = serializers.UUIDField(source="parent_id", read_only=True, allow_null=True)
    error = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    workspace = serializers.CharField(
        source="automation.workspace.slug", read_only=True
    )

    class Meta:
        model = Run
        list_serializer_class = RunListSerializer
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
            "priority",
            "queue_position",
            "parent",
            "error",
            "url",
            "workspace",
        ]
        read_only_fields = fields

    positions: dict | None = None

    @extend_schema_field(serializers.IntegerField(allow_null=True, min_value=1))
    def get_queue_position(self, run) -> int | None:
        positions = self.positions
        if positions is None:
            positions = queue_positions([run])
        return positions.get(run.pk)

    def get_error(self, run) -> str:
        """Why the run is failed or unresolved ("" for a run that is neither)."""
        return run_error(run)

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, run) -> str:
        return reverse(
            "runs-api:run-detail", args=[run.pk], request=self.context.get("request")
        )


class RunOutputSerializer(serializers.ModelSerializer):
    payload = serializers.JSONField(read_only=True)

    class Meta:
        model = RunOutput
        fields = ["id", "work_item", "subject", "payload", "created_at"]
        read_only_fields = fields


class StepRunSerializer(serializers.ModelSerializer):
    step = serializers.CharField(source="step.name", read_only=True)
    state = serializers.ChoiceField(choices=StepRunState.choices, read_only=True)
    duration_seconds = serializers.SerializerMethodField()
    log_url = serializers.SerializerMethodField()

    class Meta:
        model = StepRun
        fields = [
            "id",
            "step",
            "state",
            "worker",
            "items_processed",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "exit_code",
            "error",
            "log_url",
        ]
        read_only_fields = fields

    def get_duration_seconds(self, step_run) -> float | None:
        if not (step_run.started_at and step_run.finished_at):
            return None
        return round((step_run.finished_at - step_run.started_at).total_seconds(), 3)

    @extend_schema_field(OpenApiTypes.URI)
    def get_log_url(self, step_run) -> str:
        return reverse(
            "runs-api:run-step-run-log",
            args=[step_run.run_id, step_run.pk],
            request=self.context.get("request"),
        )


_DATETIME = serializers.DateTimeField()


def _when(value):
    return None if value is None else _DATETIME.to_representation(value)


def run_representation(run: Run, request) -> dict:
    """`RunSerializer(run).data`, built directly, for a run whose automation and
    version are loaded (the trigger's 202 answer, from the run just written).

    A ModelSerializer introspects the model and builds its twenty fields again for
    every instance; for one run that was a tenth of a trigger's time. The same
    fields, sources and formats (tests/api/test_trigger_response.py compares the two
    for every field of RunSerializer, so a field added there fails until it is
    added here)."""
    lead = run.lead_time_seconds
    return {
        "id": str(run.pk),
        "number": run.number,
        "automation": run.automation.slug,
        "version": run.version.number,
        "state": run.state,
        "trigger": run.trigger_kind,
        "run_by": run.run_by_label,
        "current_step": run.current_step,
        "total_items": run.total_items,
        "output_items": run.output_items,
        "failed_items": run.failed_items,
        "subjects_matched": run.subjects_matched,
        "actions_invoked": run.actions_invoked,
        "created_at": _when(run.created_at),
        "started_at": _when(run.started_at),
        "completed_at": _when(run.completed_at),
        "lead_time_seconds": None if lead is None else float(lead),
        "archived": run.archived,
        "rerun_of": None if run.rerun_of_id is None else str(run.rerun_of_id),
        "priority": run.priority,
        "queue_position": queue_positions([run]).get(run.pk),
        "parent": None if run.parent_id is None else str(run.parent_id),
        "error": run_error(run),
        "url": reverse("runs-api:run-detail", args=[run.pk], request=request),
        "workspace": run.automation.workspace.slug,
    }


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
    result_url = serializers.SerializerMethodField()

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
            "result_url",
            "failure_cause",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)  # '' when none: not always a URI
    def get_result_url(self, item) -> str:
        """The step's `result_url` with the result reference filled ('' if none)."""
        return item.result_link


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
    priority = serializers.IntegerField(
        required=False,
        default=0,
        min_value=RUN_PRIORITY_MIN,
        max_value=RUN_PRIORITY_MAX,
        help_text="Where the run waits when its automation is at max_concurrent_runs: "
        "higher starts first, then oldest.",
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
    reread_subjects = serializers.BooleanField(
        default=False,
        help_text="Read each item's subject again from the run's subject source "
        "and update its payload before the retry.",
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
    failed_only = serializers.BooleanField(
        default=False, help_text="Only the inputs whose items failed."
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
