"""The dashboard's reads and pictures: fixed queries, workspaces, ticks, the live
fragment (the browser checks are in browser/test_approvals_dashboard.py)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from runs.admin.charts import nice_ticks
from runs.engine import run_until_idle
from runs.selectors import dashboard, percentile
from runs.services import run_retry


def _queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    ("peak", "ticks"),
    [
        (0, [0, 1, 2, 3, 4]),
        (3, [0, 1, 2, 3, 4]),
        (7, [0, 2, 4, 6, 8]),
        (13, [0, 5, 10, 15]),
        (47, [0, 10, 20, 30, 40, 50]),
        (999, [0, 200, 400, 600, 800, 1000]),
    ],
)
def test_nice_ticks(peak, ticks):
    assert nice_ticks(peak) == ticks


def test_ticks_are_four_to_six_and_reach_the_peak():
    for peak in range(1, 2000):
        ticks = nice_ticks(peak)
        assert 4 <= len(ticks) <= 6 and ticks[-1] >= peak, peak
        assert peak <= 4 or ticks[-2] < peak, peak  # no empty step on top
    fractions = nice_ticks(0.3, integer=False)
    assert 4 <= len(fractions) <= 6 and fractions[-1] >= 0.3


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95
    assert percentile([7], 95) == 7


@pytest.mark.django_db
def test_the_index_runs_a_fixed_number_of_queries(
    login, viewer, unresolved_run, completed_run
):
    client = login(viewer)
    completed_run()
    _queries(client, reverse("admin:index"))  # warm caches (content types)
    small = _queries(client, reverse("admin:index"))
    for _ in range(3):
        unresolved_run()
        completed_run()
    assert _queries(client, reverse("admin:index")) == small


@pytest.mark.django_db
def test_failures_are_counted_by_item_and_lead_times_by_day(unresolved_run):
    run = unresolved_run()
    run_retry(run, reason="again")
    run_until_idle(run)
    board = dashboard()
    assert [n for *_, n in board.failure_causes] == [2]  # 2 items, 4 attempts
    ((name, points),) = board.lead_times
    assert name == run.automation.name
    ((day, (p50, p95, n)),) = points.items()
    run.refresh_from_db()
    assert day == timezone.localdate(run.completed_at)
    assert n == 1 and p50 == p95 == (run.completed_at - run.created_at).total_seconds()


@pytest.mark.django_db
def test_the_fragment_is_for_who_sees_runs_and_stops_when_nothing_moves(
    login, viewer, nobody, running_run, completed_run
):
    url = reverse("admin:runs_run_dashboard")
    nobody.is_staff = True
    nobody.save()
    assert login(nobody).get(url).status_code == 403
    client = login(viewer)
    completed_run()
    html = client.get(url).content.decode()
    assert 'data-live="off"' in html and "hx-trigger" not in html
    running_run()
    html = client.get(url).content.decode()
    assert 'data-live="on"' in html and 'hx-trigger="every 5s"' in html
    assert "<html" not in html  # the fragment alone


@pytest.mark.django_db
def test_a_workspace_viewer_sees_only_their_runs(lending, aml, automation):
    from automations.services import workspace_grant
    from runs.selectors import runs_for
    from runs.services import run_start
    from tests.factories import make_user

    lena = make_user("lena")
    workspace_grant(user=lena, workspace=lending, role="viewer")
    ours = automation({"action": "test.business_fail"}, workspace="lending")
    theirs = automation({"action": "test.business_fail"}, workspace="aml")
    for auto, n in ((ours, 1), (theirs, 3)):
        run_until_idle(run_start(automation=auto, inputs=[{"bad": True}] * n))
    board = dashboard(within=runs_for(type(lena).objects.get(pk=lena.pk)))
    assert sum(sum(c.values()) for c in board.by_day.values()) == 1
    assert [n for *_, n in board.failure_causes] == [1]
    assert [name for name, _ in board.lead_times] == [ours.name]
    assert [r.automation_id for r in board.waiting] == [ours.pk]
