"""GET /api/v1/runs/export.csv: the audit CSV of the runs a request may see,
streamed (runs.exports)."""

from django.http import StreamingHttpResponse
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.renderers import BaseRenderer, JSONRenderer

from ..exports import audit_csv
from ..selectors import runs_for
from . import serializers as s
from .filters import RunFilter
from .permissions import runs_visible_to
from .views import ApiMixin, error_responses

EXPORT = "runs.export_run"


class FileRenderer(BaseRenderer):
    """Lets a file's media type through content negotiation; the view streams the
    file itself, and an error (a dict) renders as one line of text."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict):
            return f"{data.get('code', 'error')}: {data.get('detail', '')}\n".encode()
        if isinstance(data, str):
            return data.encode()
        return data if isinstance(data, bytes) else b""


class CSVRenderer(FileRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"


@extend_schema_view(
    get=extend_schema(
        tags=["runs"],
        operation_id="runs_export_csv",
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="The audit CSV of the matching runs, streamed: one "
                "row per run item and per audit event, in ledger order (columns in "
                "docs/reports.md).",
            ),
            **error_responses(400, 401, 403, 404),
        },
    )
)
class RunExportView(ApiMixin, generics.ListAPIView):
    """The audit CSV of the runs matching the filters (runs.exports): every run
    item and audit event, streamed in constant memory. Cells a spreadsheet would
    run as formulas are prefixed with `'`."""

    required_permission = EXPORT
    filter_backends = [DjangoFilterBackend]
    filterset_class = RunFilter
    pagination_class = None
    serializer_class = s.RunSerializer  # for the filter parameters in the schema
    renderer_classes = [JSONRenderer, CSVRenderer]

    def get_queryset(self):
        # the runs of the workspaces where the caller may export, not only view
        return runs_for(self.request.user, runs_visible_to(self.request), EXPORT)

    def list(self, request, *args, **kwargs):
        runs = self.filter_queryset(self.get_queryset())
        response = StreamingHttpResponse(
            audit_csv(runs), content_type="text/csv; charset=utf-8"
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = (
            f'attachment; filename="run-items-{stamp}.csv"'
        )
        return response
