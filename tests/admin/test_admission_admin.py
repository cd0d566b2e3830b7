"""Run admission in admin and on the command line: run now with a priority, the
run page's queue position, `run_automation --priority`."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from runs.models import Run
from runs.services import run_start

pytestmark = pytest.mark.django_db


def _run_now(client, auto, **data):
    url = reverse("admin:automations_automation_run_now", args=[auto.pk])
    return client.post(url, {"version": auto.latest_version().pk, **data})


def test_run_now_sets_the_priority_and_says_the_run_waits(login, operator, automation):
    auto = automation("builtin.echo", max_concurrent_runs=1)
    client = login(operator)
    _run_now(client, auto)
    response = _run_now(client, auto, priority="12")
    waiting = Run.objects.get(automation=auto, state="pending")
    assert response.status_code == 302 and waiting.priority == 12
    page = client.get(response["Location"]).content.decode()
    assert "waits for a free slot" in page
    assert 'id="run-queue"' in page and "number 1 of 1 in the queue" in page
    assert "priority 12" in page


@pytest.mark.parametrize("bad", ["101", "-101", "high"])
def test_run_now_refuses_a_bad_priority(login, operator, automation, bad):
    auto = automation("builtin.echo", max_concurrent_runs=1)
    response = _run_now(login(operator), auto, priority=bad)
    assert response.status_code == 200 and "priority" in response.content.decode()
    assert not Run.objects.exists()


def test_run_page_shows_the_place_in_the_queue(admin_client, automation):
    auto = automation("builtin.echo", max_concurrent_runs=1)
    running = run_start(automation=auto)
    runs = [run_start(automation=auto) for _ in range(3)]
    page = admin_client.get(reverse("admin:runs_run_change", args=[runs[1].pk]))
    assert "number 2 of 3 in the queue" in page.content.decode()
    page = admin_client.get(reverse("admin:runs_run_change", args=[running.pk]))
    assert 'id="run-queue"' not in page.content.decode()


def test_run_automation_takes_a_priority(automation):
    auto = automation("builtin.echo", slug="cli-limited", max_concurrent_runs=1)
    run_start(automation=auto)
    out = io.StringIO()
    call_command("run_automation", "cli-limited", "--priority", "3", stdout=out)
    assert "waits for a free slot" in out.getvalue()
    assert Run.objects.get(state="pending").priority == 3
    with pytest.raises(CommandError, match="priority"):
        call_command("run_automation", "cli-limited", "--priority", "500")
