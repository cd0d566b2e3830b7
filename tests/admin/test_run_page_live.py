"""The run page's live parts (issue 18): the poll endpoint's rights, answers and
query count, the JSON display of payloads and the timeline of step runs. The
browser side is in tests/admin/browser/test_run_page.py."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from runs.admin.display import json_block
from runs.admin.timeline import _ticks, run_timeline
from runs.engine import run_until_idle
from runs.services import run_start


def _live(client, run, **params):
    return client.get(reverse("admin:runs_run_live", args=[run.pk]), params)


def _count(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_the_poll_answers_the_live_parts_and_polls_on_while_the_run_moves(
    admin_client, running_run
):
    run = running_run()
    response = _live(admin_client, run, item_state="pending")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="run-live" hx-get=')
    assert 'hx-trigger="every 3s"' in html
    # the filter is kept in the next poll's URL
    assert "item_state=pending" in html.split("hx-trigger", 1)[0]
    for part in ("run-actions", "run-steps", "run-timeline", "work-items"):
        assert f'id="{part}" hx-swap-oob="true"' in html, part
    assert "<html" not in html


@pytest.mark.django_db
def test_the_poll_ends_when_the_run_ended_or_waits_for_people(
    admin_client, automation, completed_run
):
    done = completed_run()
    html = _live(admin_client, done).content.decode()
    assert "hx-trigger" not in html and 'data-polls="no"' in html
    auto = automation({"action": "builtin.request_approval"}, "builtin.echo")
    waiting = run_start(automation=auto, inputs=[{"subject": "a"}])
    run_until_idle(waiting)
    waiting.refresh_from_db()
    assert waiting.state == "awaiting_input"
    for response in (
        _live(admin_client, waiting),
        admin_client.get(reverse("admin:runs_run_change", args=[waiting.pk])),
    ):
        assert b"hx-trigger" not in response.content
        assert b"waiting for a decision" in response.content


@pytest.mark.django_db
def test_the_poll_checks_rights_and_bad_input(client, admin_client, running_run):
    run = running_run()
    url = reverse("admin:runs_run_live", args=[run.pk])
    assert client.get(url).status_code == 302  # not logged in: the login page
    missing = url.replace(str(run.pk), "00000000-0000-0000-0000-000000000000")
    assert admin_client.get(missing).status_code == 404
    # a bad filter is ignored, not a 500
    bad = admin_client.get(url, {"item_step": "x", "after": "y", "item_state": "z"})
    assert bad.status_code == 200


@pytest.mark.django_db
def test_the_poll_and_the_page_take_a_fixed_number_of_queries(admin_client, automation):
    auto = automation("test.count", "test.count")
    small = run_start(automation=auto, inputs=[{}])
    run_until_idle(small)
    big = run_start(automation=auto, inputs=[{"subject": str(i)} for i in range(40)])
    run_until_idle(big)
    for name in ("admin:runs_run_live", "admin:runs_run_change"):
        _count(admin_client, reverse(name, args=[small.pk]))  # warm caches
        a = _count(admin_client, reverse(name, args=[small.pk]))
        b = _count(admin_client, reverse(name, args=[big.pk]))
        assert a == b, name


def test_json_block_is_indented_escaped_json_and_long_values_collapse():
    short = json_block({"name": "Zoë", "html": "<script>x</script>", "n": None})
    assert short.startswith('<pre class="runs-json">')
    assert "&quot;name&quot;: &quot;Zoë&quot;" in short  # non-ASCII kept
    assert "&lt;script&gt;" in short and "<script>" not in short
    assert "&quot;n&quot;: null" in short and "None" not in short
    assert "\n  " in short  # indented
    long = json_block({f"k{i}": i for i in range(20)})
    assert long.startswith('<details class="runs-json-details">')
    assert "show all 22 lines" in long and "&quot;k19&quot;: 19" in long


@pytest.mark.django_db
def test_the_timeline_is_one_query_and_bounded(automation, django_assert_num_queries):
    auto = automation("builtin.echo", "builtin.echo", "builtin.echo")
    run = run_start(automation=auto, inputs=[{"subject": "a"}])
    run_until_idle(run)
    with django_assert_num_queries(1):
        timeline = run_timeline(run, total=3)
    assert [b.step_run.step.name for b in timeline.bars] == ["step1", "step2", "step3"]
    assert [b.attempt for b in timeline.bars] == [1, 1, 1]
    assert timeline.more == 0
    newest = run_timeline(run, total=3, limit=2)
    assert [b.step_run.step.name for b in newest.bars] == ["step2", "step3"]
    assert newest.more == 1
    fresh = run_start(automation=auto, inputs=[{}], priority=0)
    assert run_timeline(fresh, total=1).bars[0].ongoing


def test_ticks_are_round_times_across_the_span():
    start = datetime(2026, 12, 1, 7, 0, 3, tzinfo=UTC)
    ticks = _ticks(start, 125.0)
    labels = [t.label for t in ticks]
    assert labels == ["07:00:30", "07:01:00", "07:01:30", "07:02:00"]
    assert all(190 <= t.x <= 980 for t in ticks)
    fast = [t.label for t in _ticks(start, 0.9)]
    assert fast[0] == "07:00:03.0" and fast[-1] == "07:00:03.8"
    assert len(fast) == 5  # every 0.2 s
    day = _ticks(start, timedelta(days=3).total_seconds())
    assert len(day) <= 6 and "-" in day[0].label
