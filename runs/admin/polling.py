"""Admin views that htmx polls (the run page's live parts, the runs list's rows,
the dashboard): when the session has ended, the admin answers a poll with a 302
to its login page, htmx follows it and would swap the whole login form into the
page. `polled` answers such a poll with HX-Redirect instead: the browser goes to
the login form, and back to the page it polled from (`next=`, a path of this site
only) once logged in."""

from functools import wraps
from urllib.parse import urlencode

from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django_htmx.http import HttpResponseClientRedirect


def polled(admin_site, view):
    """`view` behind `admin_site.admin_view`, for htmx's polls."""
    guarded = admin_site.admin_view(view)

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if getattr(request, "htmx", False) and not admin_site.has_permission(request):
            index = reverse("admin:index", current_app=admin_site.name)
            # the page's path when it is this site's (django-htmx: None otherwise)
            page = request.htmx.current_url_abs_path or index
            login = reverse("admin:login", current_app=admin_site.name)
            response = HttpResponseClientRedirect(
                f"{login}?{urlencode({'next': page})}"
            )
            add_never_cache_headers(response)
            return response
        return guarded(request, *args, **kwargs)

    return wrapped
