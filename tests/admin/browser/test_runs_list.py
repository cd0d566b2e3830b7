"""Browser tests of the runs list (issue 18): the Trigger, Run by and Current step
columns, the columns fitting 1440 px, progress that tells done from failed, the
kind filter, the hint for archived matches of a search, rows that update in place
while a run is active, and the audit trail exports.

The shared fixtures are in conftest.py (``browser_page``) and tests/admin/conftest.py.
"""

import csv
import os
import re

import pytest
from django.urls import reverse

from automations.models import TriggerKind
from runs.exports import AUDIT_COLUMNS
from runs.services import run_start

from .support import axe_violations, login

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:runs_run_changelist"
SHOTS = os.environ.get("RUNS_LIST_SHOTS", "")


def _list(page, query=""):
    page.goto(page.base + reverse(CHANGELIST) + query)
    page.wait_for_selector("#changelist")


def _row(page, run):
    href = reverse("admin:runs_run_change", args=[run.pk])
    return page.locator(f"#result_list tr:has(.field-number_link a[href='{href}'])")


def _cell(page, run, column):
    return _row(page, run).locator(f"td.field-{column}")


def _shot(page, name):
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


@pytest.fixture
def mixed_runs(automation, operator, unresolved_run, completed_run):
    """Runs started each way: by olivia in admin, over the API, by a schedule, by
    e-mail, a re-run of the first, and a job's child run."""
    manual = unresolved_run(actor=operator)
    api = completed_run(trigger_kind=TriggerKind.API, actor=operator)
    auto = automation("test.count")
    schedule = run_start(
        automation=auto,
        trigger_kind=TriggerKind.SCHEDULE,
        actor_label="schedule 0 6 * * *",
    )
    email = run_start(
        automation=auto,
        trigger_kind=TriggerKind.EMAIL,
        actor_label="e-mail from branch@example.org",
    )
    rerun = run_start(automation=auto, actor=operator, rerun_of=manual)
    child = run_start(
        automation=auto,
        actor=operator,
        actor_label=f"job run #{manual.number}",
        parent=manual,
    )
    return {
        "manual": manual,
        "api": api,
        "schedule": schedule,
        "email": email,
        "rerun": rerun,
        "child": child,
    }


def test_trigger_and_run_by_say_how_and_by_whom(browser_page, mixed_runs):
    page = browser_page
    login(page, "olivia")
    _list(page)
    _shot(page, "runs-list")
    expected = {
        "manual": ("Manual · olivia", "olivia"),
        "api": ("API · olivia", "olivia"),
        "schedule": ("Schedule", "schedule 0 6 * * *"),
        "email": ("E-mail", "e-mail from branch@example.org"),
        "rerun": (f"Re-run of #{mixed_runs['manual'].number} · olivia", "olivia"),
        "child": (f"Job run #{mixed_runs['manual'].number}", "olivia"),
    }
    for name, (trigger, by) in expected.items():
        run = mixed_runs[name]
        assert _cell(page, run, "trigger_label").inner_text().strip() == trigger, name
        assert _cell(page, run, "started_by").inner_text().strip() == by, name
    # the links go to the runs they name
    rerun_link = _cell(page, mixed_runs["rerun"], "trigger_label").locator("a")
    assert rerun_link.get_attribute("href") == reverse(
        "admin:runs_run_change", args=[mixed_runs["manual"].pk]
    )


def test_current_step_column(browser_page, operator, running_run, completed_run):
    page = browser_page
    running, done = running_run(actor=operator), completed_run(actor=operator)
    login(page, "olivia")
    _list(page)
    assert _cell(page, running, "current").inner_text().strip() == "step2"
    assert _cell(page, done, "current").inner_text().strip() == "-"


def test_every_column_fits_at_1440_px(browser_page, mixed_runs, running_run):
    page = browser_page
    running_run()
    login(page, "olivia")
    _list(page)
    _shot(page, "runs-list-1440")
    assert page.viewport_size["width"] == 1440
    results = page.locator("#changelist-form .results")
    overflow = results.evaluate("el => el.scrollWidth - el.clientWidth")
    assert overflow <= 0, f"#result_list overflows its box by {overflow}px"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440
    for column in ("lead_time", "progress", "failed", "current", "started_by"):
        header = page.locator(f"#result_list th.column-{column}")
        box = header.bounding_box()
        assert box is not None, column
        assert box["x"] >= 0 and box["x"] + box["width"] <= 1440, (column, box)
        cells = page.locator(f"#result_list td.field-{column}")
        for i in range(cells.count()):
            box = cells.nth(i).bounding_box()
            assert box["x"] + box["width"] <= 1440, (column, i, box)


def test_progress_tells_failed_from_done(browser_page, operator, unresolved_run):
    page = browser_page
    run = unresolved_run()  # 3 items: 1 done, 2 failed
    login(page, "olivia")
    _list(page)
    progress = _cell(page, run, "progress")
    assert progress.inner_text().strip() == "1 done · 2 failed / 3"
    bar = progress.locator(".runs-progress")
    label = bar.get_attribute("aria-label")
    assert label == "1 done, 2 failed, 0 resolved, 0 open of 3 items"
    assert bar.get_attribute("role") == "img"
    assert _cell(page, run, "failed").inner_text().strip() == "2"


def test_kind_filter_has_a_proper_title(browser_page, operator, completed_run):
    page = browser_page
    regular, case = completed_run(), completed_run(is_test_case=True)
    login(page, "olivia")
    _list(page)
    titles = page.locator("#changelist-filter details summary").all_inner_texts()
    titles = [t.strip() for t in titles] or page.locator(
        "#changelist-filter h3"
    ).all_inner_texts()
    assert not any("is test case" in t for t in titles), titles
    assert any(t.strip() == "By kind" for t in titles), titles
    page.click("#changelist-filter a:text-is('Test case runs')")
    page.wait_for_url("**kind=test_case**")
    assert _row(page, case).count() == 1 and _row(page, regular).count() == 0


# -- a search that only archived runs match -------------------------------------


def test_search_hints_at_archived_matches_the_person_may_see(
    browser_page, automation, lending, aml
):
    from automations.services import workspace_grant
    from runs.engine import run_until_idle
    from runs.services import run_archive
    from tests.factories import groups_ensure, make_user

    groups_ensure()  # a transactional test before this one flushed the roles
    lena = make_user("lena2", is_staff=True)
    workspace_grant(user=lena, workspace=lending, role="viewer")
    mine = automation("test.count", workspace="lending")
    theirs = automation("test.count", workspace="aml")
    archived = []
    for auto in (mine, mine, theirs):
        run = run_start(automation=auto, inputs=[{"subject": "acct:77"}])
        run_until_idle(run)
        run_archive(run)
        archived.append(run)
    kept = run_start(automation=mine, inputs=[{"subject": "acct:1"}])
    page = browser_page
    login(page, "lena2")

    # the subject of two archived lending runs and one of AML's: two for lena
    _list(page, "?q=acct:77")
    assert page.locator("#result_list tbody tr").count() == 0
    hint = page.locator(".runs-archived-hint")
    assert hint.inner_text().strip() == "2 archived runs match — show archived"
    _shot(page, "runs-list-archived-hint")
    hint.locator("a").click()
    page.wait_for_url("**archived=yes**")
    assert "q=acct" in page.url
    for run in archived[:2]:
        assert _row(page, run).count() == 1
    assert _row(page, archived[2]).count() == 0  # AML's: never listed, never counted

    # the number of AML's archived run: nothing, and no hint either
    _list(page, f"?q={archived[2].number}")
    assert page.locator(".runs-archived-hint").count() == 0
    # a search with a hit, or of the archived list itself: no hint
    _list(page, f"?q={kept.number}")
    assert _row(page, kept).count() == 1
    assert page.locator(".runs-archived-hint").count() == 0
    _list(page, f"?q={archived[0].number}&archived=yes")
    assert page.locator(".runs-archived-hint").count() == 0


# -- live in place ----------------------------------------------------------------


def test_rows_update_in_place_and_polling_stops(
    browser_page, operator, running_run, completed_run
):
    from django.utils import timezone

    from runs.admin.run_list import LIVE_SECONDS
    from runs.models import Run
    from runs.states import RunState

    running, done = running_run(actor=operator), completed_run(actor=operator)
    page = browser_page
    login(page, "olivia")
    polls = []
    page.on(
        "request",
        lambda request: polls.append(request.url) if "/live/" in request.url else None,
    )
    _list(page, f"?automation__id__exact={running.automation_id}&q={running.number}")
    assert page.locator("#runs-live").count() == 1
    page.evaluate("window.notReloaded = true")
    page.check(f"input.action-select[value='{running.pk}']")
    assert _cell(page, running, "state_badge").inner_text().strip() == "Running"
    page.wait_for_timeout(LIVE_SECONDS * 1000 + 500)
    assert polls, "the list did not poll while a run is active"
    # the poll asks for the same list: filters and search kept
    assert f"q={running.number}" in polls[0]
    assert f"automation__id__exact={running.automation_id}" in polls[0]

    Run.objects.filter(pk=running.pk).update(
        state=RunState.COMPLETED, completed_at=timezone.now(), current_step=""
    )
    page.wait_for_function(
        "pk => document.querySelector("
        "`#result_list tr:has(input.action-select[value='${pk}']) .field-state_badge`"
        ").innerText.trim() === 'Completed'",
        arg=str(running.pk),
        timeout=(LIVE_SECONDS * 3) * 1000,
    )
    assert page.evaluate("window.notReloaded") is True  # no navigation, no reload
    assert page.is_checked(f"input.action-select[value='{running.pk}']")
    assert "1 of 1 selected" in page.locator(".action-counter").inner_text()
    assert _cell(page, running, "current").inner_text().strip() == "-"
    assert _cell(page, running, "completed_at").inner_text().strip() != "-"
    # nothing active any more: the poller is gone and asks no more
    page.wait_for_selector("#runs-live", state="detached")
    asked = len(polls)
    page.wait_for_timeout(LIVE_SECONDS * 2 * 1000 + 500)
    assert len(polls) == asked

    # a list with no active run does not poll at all
    polls.clear()
    _list(page, f"?q={done.number}")
    assert page.locator("#runs-live").count() == 0
    page.wait_for_timeout(LIVE_SECONDS * 1000 + 500)
    assert polls == []


# -- audit trail exports ------------------------------------------------------------

STAMP = r"\d{8}T\d{6}Z"
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00$")


def _download(page, click):
    with page.expect_download() as info:
        click()
    download = info.value
    with open(download.path(), encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return download.suggested_filename, rows


def _assert_audit(rows, numbers):
    assert rows, "an audit trail without rows"
    assert list(rows[0]) == AUDIT_COLUMNS
    assert {int(r["run_number"]) for r in rows} == set(numbers)
    for row in rows:
        for column in ("started_at", "finished_at"):
            assert ISO_UTC.match(row[column]), (column, row[column])


def test_run_page_exports_its_audit_trail(browser_page, operator, unresolved_run):
    run = unresolved_run(actor=operator)
    page = browser_page
    login(page, "olivia")
    page.goto(page.base + reverse("admin:runs_run_change", args=[run.pk]))
    assert page.locator("text=Export run items (CSV)").count() == 0
    name, rows = _download(page, lambda: page.click("#run-export-audit"))
    assert re.fullmatch(rf"audit-trail-run-{run.number}-{STAMP}\.csv", name), name
    _assert_audit(rows, [run.number])
    verbs = [r["verb"] for r in rows if r["record"] == "audit_event"]
    assert verbs[0] == "run.created"
    assert sum(r["record"] == "run_item" for r in rows) == 3


def test_list_exports_the_audit_trail_of_what_it_shows(
    browser_page, operator, completed_run, unresolved_run
):
    shown, other = unresolved_run(actor=operator), completed_run(actor=operator)
    page = browser_page
    login(page, "olivia")
    _list(page, f"?automation__id__exact={shown.automation_id}")
    link = page.locator("#runs-export-audit")
    assert link.is_visible()
    name, rows = _download(page, link.click)
    assert re.fullmatch(rf"audit-trail-run-{shown.number}-{STAMP}\.csv", name), name
    _assert_audit(rows, [shown.number])

    # the selected runs, from the action menu, straight to the file
    _list(page)
    page.check(f"input.action-select[value='{shown.pk}']")
    page.check(f"input.action-select[value='{other.pk}']")
    page.select_option("select[name=action]", "export_audit")
    name, rows = _download(page, lambda: page.click("button[name=index]"))
    assert re.fullmatch(rf"audit-trail-runs-{STAMP}\.csv", name), name
    _assert_audit(rows, [shown.number, other.number])


def test_audit_trail_of_a_date_range(browser_page, operator, completed_run):
    import datetime

    from runs.models import Run

    old, recent = completed_run(actor=operator), completed_run(actor=operator)
    Run.objects.filter(pk=old.pk).update(
        created_at=datetime.datetime(2026, 10, 3, 9, 0, tzinfo=datetime.UTC)
    )
    page = browser_page
    login(page, "olivia")
    _list(page)
    page.click("#runs-export-audit-range")
    page.wait_for_selector("#runs-audit-range")

    # the last day is included; a range the wrong way round is refused
    page.fill("#id_start", "2026-10-03")
    page.fill("#id_end", "2026-10-01")
    with page.expect_response(lambda r: "/audit/" in r.url) as answer:
        page.click("#runs-audit-range input[type=submit]")
    assert answer.value.status == 400
    assert "'To' must be on or after 'From'" in page.locator(".errornote").inner_text()
    _shot(page, "runs-audit-range-refused")

    page.fill("#id_start", "2026-10-01")
    page.fill("#id_end", "2026-10-03")
    name, rows = _download(
        page, lambda: page.click("#runs-audit-range input[type=submit]")
    )
    assert re.fullmatch(rf"audit-trail-2026-10-01-to-2026-10-03-{STAMP}\.csv", name)
    assert {int(r["run_number"]) for r in rows} == {old.number}
    assert recent.number not in {int(r["run_number"]) for r in rows}


def test_runs_list_has_no_serious_accessibility_violation(browser_page, mixed_runs):
    page = browser_page
    login(page, "olivia")
    _list(page)
    assert axe_violations(page) == []
    page.goto(page.base + reverse("admin:runs_run_audit_range"))
    assert axe_violations(page) == []
