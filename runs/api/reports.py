"""GET /api/v1/reports/period/: the period report (runs.reports) as JSON or CSV."""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from ..csv import stream_rows
from ..reports import PeriodReport, report_csv_rows, report_from_query
from .export import CSVRenderer
from .permissions import runs_visible_to
from .views import ApiMixin, error_responses


def report_json(report: PeriodReport, request) -> dict:
    def absolute(url):
        return request.build_absolute_uri(url)

    return {
        "start": report.start,
        "end": report.end,
        "include_test_cases": report.include_test_cases,
        "totals": {
            "runs": report.runs,
            "run_items": report.run_items,
            "actions_invoked": report.actions_invoked,
            "subjects_matched": report.subjects_matched,
            "failed_items": report.failed_items,
            "states": report.state_totals,
            "outcomes": report.outcome_totals,
            "top_failure_causes": [
                {"cause": cause, "count": n} for cause, n in report.causes
            ],
        },
        "rows": [
            {
                "automation": row.automation_slug,
                "automation_name": row.automation_name,
                "version": row.version_number,
                "runs": row.runs,
                "states": row.states,
                "run_items": row.run_items,
                "outcomes": row.outcomes,
                "actions_invoked": row.actions_invoked,
                "subjects_matched": row.subjects_matched,
                "failed_items": row.failed_items,
                "top_failure_causes": [
                    {"cause": cause, "count": n} for cause, n in row.causes
                ],
                "runs_url": absolute(row.runs_url),
            }
            for row in report.rows
        ],
    }


def report_csv_response(report: PeriodReport) -> StreamingHttpResponse:
    header, rows = report_csv_rows(report)
    response = StreamingHttpResponse(
        stream_rows(header, rows), content_type="text/csv; charset=utf-8"
    )
    name = f"runs-report-{report.start:%Y%m%d}-{report.end:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class PeriodReportView(ApiMixin, generics.GenericAPIView):
    """What automation did in a period (runs.reports.period_report)."""

    renderer_classes = [JSONRenderer, CSVRenderer]
    pagination_class = None

    # on the method: a class-level operation_id would name every method
    @extend_schema(
        tags=["reports"],
        operation_id="reports_period",
        parameters=[
            OpenApiParameter(
                "start",
                OpenApiTypes.DATETIME,
                description=(
                    "ISO 8601 date or date-time, inclusive (default: end - 90 days)."
                ),
            ),
            OpenApiParameter(
                "end",
                OpenApiTypes.DATETIME,
                description=("ISO 8601 date or date-time, exclusive (default: now)."),
            ),
            OpenApiParameter(
                "include_test_cases",
                OpenApiTypes.BOOL,
                description=(
                    "Count the runs the test suite started too (default false)."
                ),
            ),
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"]),
        ],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description=(
                    "Runs created in the period per automation and version: runs "
                    "per state, run items per outcome, actions invoked, subjects "
                    "matched, top failure causes (counted by work item), and a "
                    "link to the runs. `format=csv`: the same as CSV."
                ),
            ),
            **error_responses(400, 401, 403),
        },
    )
    def get(self, request):
        form, report = report_from_query(
            request.query_params, within=runs_visible_to(request)
        )
        if report is None:
            raise exceptions.ValidationError(
                {
                    field: [str(e) for e in errors]
                    for field, errors in form.errors.items()
                }
            )
        if request.accepted_renderer.format == "csv":
            return report_csv_response(report)
        return Response(report_json(report, request))
