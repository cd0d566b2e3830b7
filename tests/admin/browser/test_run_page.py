"""Browser tests of the run page (issue 18, run page part): payloads as JSON, the
"current" step marker, the lead time while running, where the items came from,
live updates by htmx polling that stop when nothing moves, and the timeline of
step runs. Chromium at 1440 px against a live server (fixtures in conftest.py)."""

import pytest
from django.urls import reverse

from runs.engine import run_until_idle
from runs.engine.step_runs import step_run_execute
from runs.models import StepRun, WorkItem
from runs.services import run_start
from runs.services.approvals import work_item_decide
from runs.states import StepRunState

from .support import axe_violations, login

pytestmark = pytest.mark.django_db(transaction=True)

LIVE = "/live/"


def _open(page, run):
    page.goto(page.base + reverse("admin:runs_run_change", args=[run.pk]))


def _count_loads(page):
    """How many times the page (re)loaded: a list the 'load' event appends to."""
    loads = []
    page.on("load", lambda: loads.append(1))
    return loads


def _live_requests(page):
    seen = []
    page.on("request", lambda r: seen.append(r.url) if LIVE in r.url else None)
    return seen


def _execute_queued(run):
    for sr in StepRun.objects.filter(run=run, state=StepRunState.QUEUED):
        step_run_execute(sr.pk)


def test_payloads_are_indented_json_escaped_wrapped_and_long_ones_collapse(
    browser_page, operator, automation
):
    page = browser_page
    long_text = "Zürich " + "x" * 400
    run = run_start(
        automation=automation("builtin.echo"),
        inputs=[
            {"subject": "short", "note": None, "html": "<b>bold</b>"},
            {"subject": "long", **{f"k{i}": long_text for i in range(12)}},
        ],
    )
    run_until_idle(run)
    login(page, "olivia")
    _open(page, run)
    rows = page.locator("#work-items tr.work-item")
    short = rows.nth(0).locator("td.runs-payload")
    text = short.inner_text()
    # JSON, not Python's repr: double quotes and null, the markup shown as text
    assert '"note": null' in text and '"subject": "short"' in text
    assert "None" not in text and "'" not in text
    assert '"html": "<b>bold</b>"' in text
    assert short.locator("b").count() == 0
    assert short.locator("details").count() == 0  # short: shown whole
    # long: collapsed with its size named, nothing clipped once opened, and wrapped
    long = rows.nth(1).locator("td.runs-payload details")
    assert long.count() == 1
    assert "show all 15 lines" in long.locator("summary").inner_text()
    long.locator("summary").click()
    body = long.locator("pre.runs-json").last
    assert body.inner_text().count("Zürich") == 12  # not \u00fc, not cut
    box = body.bounding_box()
    assert box["width"] <= 600  # wrapped, not one 5,000 px line
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440

    # the work item's and the run item's own admin pages show the same JSON
    item = WorkItem.objects.get(run=run, subject="short")
    page.goto(page.base + reverse("admin:runs_workitem_change", args=[item.pk]))
    shown = page.locator(".field-payload_json pre.runs-json").inner_text()
    assert '"note": null' in shown and "\n" in shown
    run_item = run.run_items.first()
    page.goto(page.base + reverse("admin:runs_runitem_change", args=[run_item.pk]))
    assert page.locator(".field-parameters_json pre.runs-json").count() == 1


def _current_steps(page):
    marked = page.locator("#run-steps li.current")
    return [marked.nth(i).get_attribute("data-step") for i in range(marked.count())]


def _decide(run, user, item, decision, **kwargs):
    work_item_decide(run, actor=user, work_item_id=item.pk, decision=decision, **kwargs)
    run_until_idle(run)
    run.refresh_from_db()


def test_current_marks_each_step_with_open_items_and_none_once_ended(
    browser_page, operator, other_user, automation
):
    page = browser_page
    approval = {"action": "builtin.request_approval"}
    auto = automation(approval, approval, "builtin.echo")
    run = run_start(automation=auto, inputs=[{"subject": "a"}, {"subject": "b"}])
    run_until_idle(run)
    a, b = WorkItem.objects.filter(run=run).order_by("id")
    login(page, "olivia")

    # a passed step 1 and waits at step 2, b still waits at step 1: both marked
    _decide(run, other_user, a, "approve")
    _open(page, run)
    assert _current_steps(page) == ["step1", "step2"]
    assert page.locator("#run-steps li", has_text="◀ current").count() == 2

    # a finished step 3 (the step that ran last, run.current_step); b still
    # waits at step 1, which alone is current
    a2 = WorkItem.objects.get(run=run, parent=a)
    _decide(run, other_user, a2, "approve")
    assert run.state == "awaiting_input" and run.current_step == "step3"
    _open(page, run)
    assert _current_steps(page) == ["step1"]

    # ended: no step is current
    _decide(run, other_user, b, "reject", reason="not ours")
    assert run.state == "unresolved"
    _open(page, run)
    assert _current_steps(page) == []
    assert "current" not in page.locator("#run-steps").inner_text()


def test_lead_time_shows_time_so_far_while_running_and_lead_time_once_ended(
    browser_page, operator, running_run
):
    page = browser_page
    run = running_run()
    login(page, "olivia")
    _open(page, run)
    lead = page.locator("#run-lead").inner_text()
    assert lead.startswith("running for") and "-" not in lead
    assert "s" in lead.split("running for", 1)[1]
    _execute_queued(run)
    run.refresh_from_db()
    assert run.completed_at
    _open(page, run)
    lead = page.locator("#run-lead").inner_text()
    assert lead.startswith("lead time") and "-" not in lead


def test_the_item_total_says_how_many_came_from_inputs_and_from_steps(
    browser_page, operator, automation
):
    page = browser_page
    auto = automation(
        {"action": "test.fan_out", "parameters": {"n": 3}}, "builtin.echo"
    )
    run = run_start(automation=auto, inputs=[{"subject": "a"}, {"subject": "b"}])
    run_until_idle(run)
    run.refresh_from_db()
    assert run.total_items == 8
    login(page, "olivia")
    _open(page, run)
    assert page.locator("#run-total-items").inner_text() == "8"
    origins = page.locator("#run-item-origins")
    assert origins.inner_text() == (
        "Items: 2 inputs + 6 added by steps (outputs) (6 at step2 from step1's outputs)"
    )
    step2 = page.locator("#run-steps li[data-step=step2]").inner_text()
    assert "6 item(s) (outputs of the step before)" in step2


def test_the_page_updates_in_place_while_running_and_stops_polling_when_done(
    browser_page, operator, automation
):
    page = browser_page
    run = run_start(
        automation=automation("builtin.echo", "builtin.echo"),
        inputs=[{"subject": "a", **{f"k{i}": i for i in range(10)}}, {"subject": "b"}],
    )
    login(page, "olivia")
    loads = _count_loads(page)
    polls = _live_requests(page)
    _open(page, run)
    opened = page.locator("#work-items tr.work-item").first.locator("details")
    opened.locator("summary").click()
    assert page.locator("#run-live").get_attribute("data-polls") == "yes"
    assert page.locator("meta[http-equiv=refresh]").count() == 0
    page.evaluate("window.__sameDocument = true")
    assert page.locator("#run-total-items").inner_text() == "2"
    loaded = len(loads)

    # step 1 runs: its outputs become step 2's items, seen without a reload
    _execute_queued(run)
    page.wait_for_function(
        "document.querySelector('#run-total-items').textContent.trim() === '4'",
        timeout=15_000,
    )
    assert page.evaluate("window.__sameDocument") is True
    assert len(loads) == loaded  # no 'load' event: updated in place
    assert polls
    assert page.locator("#work-items tr.work-item").count() == 4
    assert opened.get_attribute("open") is not None  # a payload opened stays open

    # step 2 runs: the run completes, the page shows it and polling ends
    _execute_queued(run)
    page.wait_for_function(
        "document.querySelector('#run-state').textContent.includes('Completed')",
        timeout=15_000,
    )
    assert page.locator("#run-live").get_attribute("data-polls") == "no"
    assert page.locator("[hx-trigger]").count() == 0
    assert page.locator("#run-actions").count() == 1
    assert page.locator("#run-steps li.current").count() == 0
    settled = len(polls)
    page.wait_for_timeout(7_000)  # more than two poll intervals
    assert len(polls) == settled
    assert page.evaluate("window.__sameDocument") is True
    assert len(loads) == loaded


def test_no_polling_while_the_run_only_waits_for_a_decision(
    browser_page, operator, automation
):
    page = browser_page
    auto = automation({"action": "builtin.request_approval"}, "builtin.echo")
    run = run_start(automation=auto, inputs=[{"subject": "a"}])
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == "awaiting_input"
    login(page, "olivia")
    polls = _live_requests(page)
    _open(page, run)
    assert page.locator("#run-live").get_attribute("data-polls") == "no"
    assert "waiting for a decision" in page.locator("#run-live-note").inner_text()
    page.wait_for_timeout(4_000)
    assert polls == []


def test_timeline_of_step_runs_draws_one_bar_each_with_ticks_and_a_table(
    browser_page, operator, automation, monkeypatch
):
    page = browser_page
    auto = automation("builtin.echo", "test.business_fail", "builtin.echo")
    run = run_start(
        automation=auto, inputs=[{"subject": "ok"}, {"subject": "no", "bad": True}]
    )
    run_until_idle(run)
    login(page, "olivia")
    _open(page, run)
    svg = page.locator("#run-timeline svg.runs-timeline")
    assert svg.count() == 1
    bars = svg.locator("rect.runs-timeline-bar")
    assert bars.count() == StepRun.objects.filter(run=run).count() == 3
    tooltip = bars.nth(0).locator("title").text_content()
    assert tooltip.startswith("step1 · Finished") and "attempt 1" in tooltip
    assert "worker" in tooltip
    colour = bars.nth(0).get_attribute("fill")
    from runs.admin.timeline import STEP_RUN_COLOURS

    assert colour == STEP_RUN_COLOURS[StepRunState.FINISHED]
    ticks = svg.locator("text.runs-timeline-tick")
    assert ticks.count() >= 1
    assert all(":" in ticks.nth(i).text_content() for i in range(ticks.count()))
    assert svg.get_attribute("role") == "img"
    assert "3 step run(s)" in svg.locator("desc").text_content()
    # the text alternative: the same rows as a table
    page.click("#run-timeline details summary")
    rows = page.locator("#run-timeline table tbody tr")
    assert rows.count() == 3 and "step2" in rows.nth(1).inner_text()
    assert not [v for v in axe_violations(page) if "timeline" in str(v[3])]

    # bounded: only the newest step runs are drawn, with a note of the rest
    monkeypatch.setattr("runs.admin.timeline.TIMELINE_LIMIT", 2)
    _open(page, run)
    assert page.locator("#run-timeline rect.runs-timeline-bar").count() == 2
    assert (
        "1 more, older step run is not drawn"
        in page.locator("#run-timeline").inner_text()
    )
    labels = page.locator("#run-timeline text.runs-timeline-label")
    assert labels.nth(0).text_content().startswith("2. step2")


def test_run_page_has_no_serious_accessibility_violations(
    browser_page, operator, running_run
):
    page = browser_page
    run = running_run()
    login(page, "olivia")
    _open(page, run)
    assert axe_violations(page) == []
