"""The ledger over the API: audit events (configuration changes included) and a
run's evidence pack (runs.evidence.packs).

Included from `runs.api.urls` with one line (`path("", include(audit.urls))`).
"""

import django_filters
from django.urls import path
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.renderers import JSONRenderer

from ..evidence.packs import pack_response, run_pack
from ..models import AuditEvent, Run
from ..selectors import sees_every_workspace
from .export import FileRenderer
from .filters import UtcIsoDateTimeFilter
from .pagination import RunCursorPagination
from .permissions import automations_granted, runs_visible_to
from .views import ApiMixin, error_responses


class AuditEventSerializer(serializers.ModelSerializer):
    run = serializers.UUIDField(source="run_id", read_only=True, allow_null=True)
    actor = serializers.CharField(source="actor_label", read_only=True)
    before = serializers.JSONField(read_only=True)
    after = serializers.JSONField(read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "chain",
            "seq",
            "run",
            "actor",
            "verb",
            "object_type",
            "object_id",
            "before",
            "after",
            "reason",
            "created_at",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields


class AuditEventFilter(django_filters.FilterSet):
    run = django_filters.UUIDFilter(field_name="run_id", help_text="Run id.")
    verb = django_filters.CharFilter(
        max_length=100, help_text="Exact verb, e.g. trigger.changed or run.stopped."
    )
    object_type = django_filters.CharFilter(
        max_length=100, help_text="Exact type, e.g. automations.trigger."
    )
    created_after = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601, inclusive."
    )
    created_before = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="ISO 8601, exclusive."
    )

    class Meta:
        model = AuditEvent
        fields = ["run", "verb", "object_type", "created_after", "created_before"]


class AuditEventPagination(RunCursorPagination):
    ordering = "-id"  # newest first, on the primary key


@extend_schema(
    tags=["audit"],
    responses={200: AuditEventSerializer(many=True), **error_responses(400, 401, 403)},
)
class AuditEventListView(ApiMixin, generics.ListAPIView):
    """Audit events, newest first: run transitions and operator actions (chain =
    the run's id) and configuration changes (chain `global`: automations,
    versions, steps, triggers, owners, webhooks, API clients, groups), with
    before/after; secrets show as `[redacted]`."""

    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    pagination_class = AuditEventPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = AuditEventFilter

    def get_queryset(self):
        # a token narrowed to some automations, and a person with roles in some
        # workspaces only, see the events of their runs only (no configuration
        # events: those are of every automation of every workspace)
        if automations_granted(self.request) is None and sees_every_workspace(
            self.request.user
        ):
            return AuditEvent.objects.all()
        return AuditEvent.objects.filter(
            run__in=runs_visible_to(self.request).values("pk")
        )


class ZipRenderer(FileRenderer):
    media_type = "application/zip"
    format = "zip"


class RunEvidenceView(ApiMixin, generics.GenericAPIView):
    """A run's evidence pack (zip), verifiable offline with `verify_evidence`."""

    queryset = Run.objects.all()  # for the schema; get_queryset narrows it
    lookup_value_regex = "[^/]+"
    renderer_classes = [JSONRenderer, ZipRenderer]
    serializer_class = None
    pagination_class = None

    def get_queryset(self):
        return runs_visible_to(self.request)

    # on the method: a class-level operation_id would name every method
    @extend_schema(
        tags=["runs"],
        operation_id="runs_evidence_zip",
        responses={
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The run's evidence pack: its whole chain as a CSV with "
                "previous hashes and content, heads, signed checkpoints, a signed "
                "manifest and the public key (docs/evidence.md).",
            ),
            **error_responses(401, 403, 404),
        },
    )
    def get(self, request, pk):
        run = self.get_object()
        return pack_response(
            lambda out: run_pack(out, run), f"evidence-run-{run.number}.zip"
        )


urls = [
    path("audit-events/", AuditEventListView.as_view(), name="audit-events"),
    path("runs/<str:pk>/evidence.zip", RunEvidenceView.as_view(), name="run-evidence"),
]
