"""Include at the site root: `path("", include("runs.ops.urls"))`."""

from django.urls import path

from . import views

urlpatterns = [
    path("healthz", views.healthz, name="runs-healthz"),
    path("readyz", views.readyz, name="runs-readyz"),
    path("metrics", views.metrics, name="runs-metrics"),
]
