"""API v1 urls: include with `path("api/v1/", include("runs.api.urls"))`."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from . import audit, export, files, reports, run_views, views, work_items

app_name = "runs-api"

router = SimpleRouter()
router.register("runs", views.RunViewSet, basename="run")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="runs-api:schema"),
        name="docs",
    ),
    path(
        "automations/<str:slug>/runs/",
        views.TriggerView.as_view(),
        name="automation-runs",
    ),
    path("me/", views.MeView.as_view(), name="me"),
    path("reports/period/", reports.PeriodReportView.as_view(), name="report-period"),
    path("runs/export.csv", export.RunExportView.as_view(), name="run-export"),
    path(
        "runs/<str:pk>/work-items/",
        views.RunWorkItemsView.as_view(),
        name="run-work-items",
    ),
    path("runs/<str:pk>/items/", views.RunItemsView.as_view(), name="run-items"),
    path(
        "runs/<str:pk>/children/",
        run_views.RunChildrenView.as_view(),
        name="run-children",
    ),
    path(
        "runs/<str:pk>/outputs/", run_views.RunOutputsView.as_view(), name="run-outputs"
    ),
    path(
        "runs/<str:pk>/step-runs/",
        run_views.RunStepRunsView.as_view(),
        name="run-step-runs",
    ),
    path(
        "runs/<str:pk>/step-runs/<int:step_run_id>/log/",
        run_views.RunStepRunLogView.as_view(),
        name="run-step-run-log",
    ),
    path("work-items/", work_items.WorkItemListView.as_view(), name="work-items"),
    path("", include(audit.urls)),  # audit events, evidence packs (issue 14)
    path("runs/<str:pk>/files/", files.RunFilesView.as_view(), name="run-files"),
    path(
        "runs/<str:pk>/files/<int:file_id>/download/",
        files.RunFileDownloadView.as_view(),
        name="run-file-download",
    ),
    path("", include(router.urls)),
    re_path(r"^.*$", views.api_not_found),
]
