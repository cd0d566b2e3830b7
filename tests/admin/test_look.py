"""The shared look: the control room's name in the admin header and window title."""

from django.urls import reverse


def test_the_admin_is_branded_the_runs_control_room(client, operator):
    client.force_login(operator)
    page = client.get(reverse("admin:index")).content.decode()
    assert '<div id="site-name"><a href="/admin/">Runs control room</a></div>' in page
    assert "<title>Site administration | Runs control room</title>" in page
    assert "Django administration" not in page
