from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

# no public site beside the admin: no "View site" link (it answered 404)
admin.site.site_url = None

# MEDIA_URL is not served, not even with DEBUG on: work item files go out only
# through permission-checked views and signed URLs (runs.files)
urlpatterns = [
    # browsers ask for /favicon.ico whatever the page says: the static icon
    path(
        "favicon.ico",
        RedirectView.as_view(url=static("runs/favicon.svg"), permanent=True),
        name="favicon",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("runs.api.urls")),
    path("robots/", include("runs.robots.urls")),
    path("", include("runs.ops.urls")),
]
