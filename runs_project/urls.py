from django.contrib import admin
from django.urls import include, path

# MEDIA_URL is not served, not even with DEBUG on: work item files go out only
# through permission-checked views and signed URLs (runs.files)
urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("runs.api.urls")),
    path("robots/", include("runs.robots.urls")),
    path("", include("runs.ops.urls")),
]
