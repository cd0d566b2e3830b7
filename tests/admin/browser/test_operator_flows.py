"""Browser tests: Debian's chromium driven by Playwright against a live server.

Operator: stop a running run with "terminate", retry and resolve failed items,
archive a run and find it again through the filter. Viewer: no control action is
offered. The shared fixtures are in conftest.py.
"""

import pytest
from django.urls import reverse

from runs.engine import run_until_idle
from runs.models import Run
from runs.states import RunState

from .support import login as _login

pytestmark = pytest.mark.django_db(transaction=True)


def _state(run):
    run.refresh_from_db()
    return run.state


def _detail(page, run):
    page.goto(page.base + reverse("admin:runs_run_change", args=[run.pk]))


def test_operator_controls_runs(browser_page, operator, running_run, unresolved_run):
    page = browser_page
    running, failing = running_run(), unresolved_run()
    _login(page, "olivia", "pw")

    # stop the running run from the changelist, with "terminate"
    page.goto(page.base + reverse("admin:runs_run_changelist"))
    page.check(f"input.action-select[value='{running.pk}']")
    page.select_option("select[name=action]", "stop_runs")
    page.click("button[name=index]")
    page.wait_for_selector("#runs-action-form")
    page.check("input[name=step_runs][value=terminate]")
    page.check("input[name=pending_items][value=failed]")
    page.click("input[name=_confirm]")
    page.wait_for_selector(".messagelist")
    assert _state(running) == RunState.CANCELLED
    assert running.stop_options["step_runs"] == "terminate"

    # retry the failed items from the run page; the engine fails them again
    _detail(page, failing)
    page.click("a[data-action=retry]")
    page.click("input[name=_confirm]")
    page.wait_for_selector(".messagelist")
    assert _state(failing) == RunState.RUNNING
    run_until_idle(failing)
    assert _state(failing) == RunState.UNRESOLVED

    # resolve them with a note (required)
    _detail(page, failing)
    page.click("a[data-action=resolve]")
    page.click("input[name=_confirm]")  # no note: the form does not submit
    assert page.locator("textarea[name=note]").evaluate("el => !el.checkValidity()")
    assert _state(failing) == RunState.UNRESOLVED
    page.fill("textarea[name=note]", "confirmed with the branch by phone")
    page.click("input[name=_confirm]")
    page.wait_for_selector(".messagelist")
    assert _state(failing) == RunState.COMPLETED

    # archive it: gone from the default list, found again through the filter
    _detail(page, failing)
    page.click("a[data-action=archive]")
    page.click("input[name=_confirm]")
    page.wait_for_selector(".messagelist")
    assert Run.objects.get(pk=failing.pk).archived
    link = f"a[href='{reverse('admin:runs_run_change', args=[failing.pk])}']"
    page.goto(page.base + reverse("admin:runs_run_changelist"))
    assert page.locator(f"#result_list {link}").count() == 0
    page.click("#changelist-filter a:text-is('Archived')")
    page.wait_for_selector(f"#result_list {link}")
    assert "archived=yes" in page.url


def test_viewer_is_offered_no_control_action(browser_page, viewer, unresolved_run):
    page = browser_page
    run = unresolved_run()
    _login(page, "victor", "pw")
    page.goto(page.base + reverse("admin:runs_run_changelist"))
    options = page.locator("select[name=action] option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    assert set(options) - {""} == {"export_audit", "export_csv"}
    _detail(page, run)
    page.wait_for_selector("#run-steps")
    assert page.locator("#run-actions a[data-action]").count() == 0
    assert page.locator("#run-actions a").first.inner_text().startswith("Export")
