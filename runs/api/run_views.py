"""A run's job children, kept outputs and step runs (with their logs): read-only
lists under `/runs/{id}/`, for whoever may view the run (a run the caller may not
see is a 404, as everywhere: `runs_visible_to`)."""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.generics import get_object_or_404

from ..models import Run, RunOutput, StepRun
from ..robots.console import robot_log_clean
from . import serializers as s
from .pagination import IdCursorPagination, NumberCursorPagination
from .permissions import runs_visible_to
from .views import LIST_ERRORS, READ_ERRORS, ApiMixin, error_responses


class _OfRun(ApiMixin):
    def run(self) -> Run:
        runs = runs_visible_to(self.request, Run.objects.only("pk"))
        return get_object_or_404(runs, pk=self.kwargs["pk"])


@extend_schema(
    tags=["runs"],
    responses={200: s.RunSerializer(many=True), **error_responses(*LIST_ERRORS)},
)
class RunChildrenView(_OfRun, generics.ListAPIView):
    """A job's child runs (one per work item of its `builtin.run_automation`
    steps), in the order they started. A child the caller may not see is left
    out, as in the runs list."""

    serializer_class = s.RunSerializer
    pagination_class = NumberCursorPagination

    def get_queryset(self):
        children = Run.objects.filter(parent=self.run()).select_related(
            "automation", "version"
        )
        return runs_visible_to(self.request, children)


@extend_schema(
    tags=["runs"],
    responses={200: s.RunOutputSerializer(many=True), **error_responses(*LIST_ERRORS)},
)
class RunOutputsView(_OfRun, generics.ListAPIView):
    """The run's outputs: what its last step returned, kept in order (as many as
    the run's `output_items`)."""

    serializer_class = s.RunOutputSerializer
    pagination_class = IdCursorPagination

    def get_queryset(self):
        return RunOutput.objects.filter(run=self.run())


@extend_schema(
    tags=["runs"],
    responses={200: s.StepRunSerializer(many=True), **error_responses(*LIST_ERRORS)},
)
class RunStepRunsView(_OfRun, generics.ListAPIView):
    """The run's step runs (one worker task over a batch of a step's items each):
    state, timings, exit code (robots), and a link to the log."""

    serializer_class = s.StepRunSerializer
    pagination_class = IdCursorPagination

    def get_queryset(self):
        return (
            StepRun.objects.filter(run=self.run()).select_related("step").defer("log")
        )


@extend_schema(
    tags=["runs"],
    responses={
        (200, "text/plain"): OpenApiTypes.STR,
        **error_responses(*READ_ERRORS),
    },
)
class RunStepRunLogView(_OfRun, generics.GenericAPIView):
    """One step run's log (a robot's output), as plain text."""

    serializer_class = s.StepRunSerializer

    def perform_content_negotiation(self, request, force=False):
        # the answer is the text whatever the Accept header says (errors: JSON)
        return super().perform_content_negotiation(request, force=True)

    def get(self, request, pk, step_run_id):
        found = get_object_or_404(
            StepRun.objects.filter(run=self.run()).only("pk", "log"), pk=step_run_id
        )
        # cleaned again: rows stored before robot_log_clean kept escape codes
        response = HttpResponse(
            robot_log_clean(found.log), content_type="text/plain; charset=utf-8"
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response
