"""The work-items API robots call: include with `path("robots/", include(...))` and
set RUNS_ROBOT_API_URL to the URL of that prefix's parent plus "robots"."""

from django.urls import path

from ..secrets.vault import SecretView
from . import views

app_name = "runs-robots"

WORKITEMS = "json-v1/workspaces/<str:workspace>/workitems/<str:item>/"
PROCESS = "process-v1/workspaces/<str:workspace>/processes/<str:process>/"
ROBOT_RUN = PROCESS + "runs/<str:process_run>/robotRuns/<str:robot_run>/"

urlpatterns = [
    path(WORKITEMS + "data", views.PayloadView.as_view(), name="payload"),
    path(WORKITEMS + "files", views.FilesView.as_view(), name="files"),
    path(WORKITEMS + "files/<str:file>", views.FileView.as_view(), name="file"),
    path(
        ROBOT_RUN + "reserve-next-work-item",
        views.ReserveView.as_view(),
        name="reserve",
    ),
    path(ROBOT_RUN + "release-work-item", views.ReleaseView.as_view(), name="release"),
    path(
        PROCESS + "work-items/<str:parent>/output",
        views.OutputView.as_view(),
        name="output",
    ),
    # the Vault API as robocorp-vault calls it (runs.secrets.vault)
    path(
        "secrets-v1/workspaces/<str:workspace>/secrets/<str:name>",
        SecretView.as_view(),
        name="secret",
    ),
    path("files/<str:signed>", views.file_download, name="download"),
    path("uploads/<str:signed>", views.file_upload, name="upload"),
]
