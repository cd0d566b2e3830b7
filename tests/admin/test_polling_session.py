"""A live fragment polled after the session ended (issue 18's leftover): htmx
follows the 302 to the login page and would swap the whole login form into the
run page, the list's rows or the dashboard. An htmx poll is told to reload the
page through the login form instead (HX-Redirect, next= the page it polled
from); a request that is not htmx's still gets the admin's 302."""

import pytest
from django.urls import reverse

from runs.services import run_start

HTMX = {"HTTP_HX_REQUEST": "true"}


def _page_and_fragments(run):
    page = reverse("admin:runs_run_change", args=[run.pk])
    return page, [
        reverse("admin:runs_run_live", args=[run.pk]),
        reverse("admin:runs_run_list_live"),
        reverse("admin:runs_run_dashboard"),
    ]


@pytest.mark.django_db
def test_a_poll_after_logout_reloads_the_page_through_the_login_form(
    admin_client, automation
):
    run = run_start(automation=automation("builtin.echo"))
    page, fragments = _page_and_fragments(run)
    for url in fragments:  # logged in: the fragment itself
        assert admin_client.get(url, **HTMX).status_code == 200, url
    admin_client.logout()
    for url in fragments:
        response = admin_client.get(
            url, HTTP_HX_CURRENT_URL=f"http://testserver{page}", **HTMX
        )
        assert response.status_code == 200, url
        assert response["HX-Redirect"] == (
            f"/admin/login/?next={page.replace('/', '%2F')}"
        ), url
        assert b"login-form" not in response.content and not response.content
        assert "no-cache" in response["Cache-Control"]
        # not htmx: the admin's own redirect, as before
        plain = admin_client.get(url)
        assert plain.status_code == 302 and "/admin/login/" in plain["Location"]


@pytest.mark.django_db
def test_the_login_redirect_never_leaves_the_site(admin_client, automation):
    """HX-Current-URL is the browser's word: another origin's page is not a next=
    target (django-htmx gives no path for it), the admin's index is."""
    run = run_start(automation=automation("builtin.echo"))
    admin_client.logout()
    live = reverse("admin:runs_run_live", args=[run.pk])
    response = admin_client.get(
        live, HTTP_HX_CURRENT_URL="https://evil.example/admin/", **HTMX
    )
    assert response["HX-Redirect"] == "/admin/login/?next=%2Fadmin%2F"


@pytest.mark.django_db
def test_a_staff_session_without_rights_still_gets_the_views_own_answer(
    client, automation
):
    """The early answer is for an ended session only: a logged-in staff user the
    view refuses is refused by the view (403), not sent to the login form."""
    from tests.factories import make_user

    run = run_start(automation=automation("builtin.echo"))
    staff = make_user("sam", is_staff=True)
    client.force_login(staff)
    live = reverse("admin:runs_run_live", args=[run.pk])
    response = client.get(live, **HTMX)
    assert "HX-Redirect" not in response
    assert response.status_code in (403, 404)
