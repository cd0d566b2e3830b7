"""A run's files (e-mail attachments, robot uploads): listed with their digests and
download links, downloaded as attachments (runs.files), for whoever may view the
run; anyone else gets what they get for the run itself (403 without `view_run`,
404 for a run or file they cannot see)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.generics import get_object_or_404
from rest_framework.reverse import reverse

from ..files import file_response
from ..models import Run, WorkItemFile
from ..selectors import run_files
from .pagination import IdCursorPagination
from .permissions import runs_visible_to
from .views import ApiMixin, error_responses


class RunFileSerializer(serializers.ModelSerializer):
    step = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = WorkItemFile
        fields = [
            "id",
            "name",
            "size",
            "sha256",
            "content_type",
            "work_item",
            "step",
            "step_run",
            "created_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_step(self, found) -> str:
        owner = found.work_item or found.step_run
        return owner.step.name

    def get_download_url(self, found) -> str:
        owner = found.work_item or found.step_run
        return reverse(
            "runs-api:run-file-download",
            args=[owner.run_id, found.pk],
            request=self.context.get("request"),
        )


class _RunFiles(ApiMixin):
    def run(self) -> Run:
        # the grants, as for the other run children: a run the caller may not
        # see is a 404 here too
        runs = runs_visible_to(self.request, Run.objects.only("pk"))
        return get_object_or_404(runs, pk=self.kwargs["pk"])

    def get_queryset(self):
        return run_files(self.run().pk)


@extend_schema(
    tags=["runs"],
    responses={
        200: RunFileSerializer(many=True),
        **error_responses(400, 401, 403, 404),
    },
)
class RunFilesView(_RunFiles, generics.ListAPIView):
    """The run's files, oldest first, with download links: its work items' (e-mail
    attachments, robot uploads) and its step runs' (a robot's `output/` artifacts,
    `work_item` null)."""

    serializer_class = RunFileSerializer
    pagination_class = IdCursorPagination


@extend_schema(
    tags=["runs"],
    responses={
        (200, "application/octet-stream"): OpenApiTypes.BINARY,
        **error_responses(401, 403, 404),
    },
)
class RunFileDownloadView(_RunFiles, generics.GenericAPIView):
    """One file of the run, as an attachment (`application/octet-stream`)."""

    serializer_class = RunFileSerializer

    def perform_content_negotiation(self, request, force=False):
        # the answer is the file whatever the Accept header says (errors: JSON)
        return super().perform_content_negotiation(request, force=True)

    def get(self, request, pk, file_id):
        found = get_object_or_404(self.get_queryset(), pk=file_id)
        return file_response(found)
