"""Browser tests of the approval page and the dashboard (issue 18).

Approval: the page shows what is approved (run, automation and version, step,
payload as escaped pretty JSON, who requested, the fields asked for, the decisions
so far) in the admin's aligned rows; nobody is offered Approve / Decide and then
refused: the starter (four eyes) and a superuser who is not among the approvers
(the demo's "group:Operator" step) see why instead, on the run page, the lists and
the approval page. Dashboard: waiting runs include those awaiting approval; charts
with nice ticks, labelled axes, legends and data tables; failure causes counted by
work item; a grid that uses the width; Recent actions with their verb; live while
a run moves, and still once nothing does.
"""

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from automations.services import workspace_add, workspace_grant
from runs.engine import run_until_idle
from runs.models import WorkItem
from runs.services import run_retry, run_start, run_stop, work_item_decide
from runs.services.approvals import DecisionRefused
from tests.factories import groups_ensure, make_user

from .support import axe_violations, login

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = {
    "type": "object",
    "properties": {
        "code": {
            "type": "string",
            "pattern": "^[0-9]{6}$",
            "title": "Six-digit code",
            "description": "The code the bank sent by SMS",
        },
        "confirmed": {"type": "boolean", "title": "Confirmed by phone"},
    },
    "required": ["code"],
}
PAYLOAD = {"payment": "PAY-7", "beneficiary": "<script>alert(1)</script>", "n": 3}


@pytest.fixture
def people(db):
    """sam starts runs and may approve; bob approves; root is a superuser."""
    perms = ["approve_run", "view_run", "view_workitem"]
    return {
        "sam": make_user("sam", perms, is_staff=True),
        "bob": make_user("bob", perms, is_staff=True),
        "root": get_user_model().objects.create_superuser("root", password="pw"),
    }


def awaiting_run(automation, actor, approvers=(), schema=SCHEMA):
    auto = automation(
        {
            "name": "bank code",
            "action": "builtin.request_approval",
            "parameters": {
                "approvers": list(approvers),
                **({"input_schema": schema} if schema else {}),
            },
        },
        "builtin.echo",
        slug="payment-release",
    )
    run = run_start(automation=auto, inputs=[PAYLOAD], actor=actor)
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == "awaiting_input"
    return run, WorkItem.objects.get(run=run, state="awaiting_input")


def bulk_decide(page, run):
    """Select `run` in the runs list and ask for Approve / reject."""
    page.goto(page.base + reverse("admin:runs_run_changelist"))
    page.check(f"input.action-select[value='{run.pk}']")
    page.select_option("select[name=action]", "decide_runs")
    page.click("button[name=index]")
    page.wait_for_load_state()


def decide_url(run, item):
    return reverse("admin:runs_run_decide", args=[run.pk, item.pk])


# -- approval ----------------------------------------------------------------------


def test_the_approval_page_shows_what_is_approved(browser_page, automation, people):
    page = browser_page
    run, item = awaiting_run(automation, people["sam"])
    with pytest.raises(DecisionRefused):  # a refused attempt: a prior decision
        work_item_decide(
            run, actor=people["sam"], work_item_id=item.pk, decision="approve"
        )
    login(page, "bob")
    page.goto(page.base + decide_url(run, item))
    assert f"Run #{run.number}" in page.inner_text("#approval-run")
    assert "Payment Release · version 1 (published)" in page.inner_text(
        "#approval-automation"
    )
    assert "bank code" in page.inner_text("#approval-step")
    assert "builtin.request_approval" in page.inner_text("#approval-step")
    assert page.inner_text("#approval-requested").startswith("sam, who started")
    # the payload as pretty JSON, its markup shown as text, never run
    shown = page.inner_text("#approval-payload")
    assert json.loads(shown) == PAYLOAD and '\n  "payment": "PAY-7"' in shown
    assert page.locator("#approval-payload script").count() == 0
    schema = page.inner_text("#approval-schema")
    assert "code" in schema and "Six-digit code" in schema and "^[0-9]{6}$" in schema
    assert "confirmed" in schema and "boolean" in schema
    decisions = page.inner_text("#approval-decisions")
    assert "sam" in decisions and "work_item.decision_refused" in decisions
    assert "four eyes" in decisions
    assert axe_violations(page) == []


def test_the_approval_form_lines_labels_up_with_their_fields(
    browser_page, automation, people, tmp_path
):
    page = browser_page
    run, item = awaiting_run(automation, people["sam"])
    login(page, "bob")
    page.goto(page.base + decide_url(run, item))
    page.locator("#approval-form").screenshot(path=str(tmp_path / "form.png"))
    rows = []
    for name in ("data-code", "reason"):
        label = page.locator(f"label[for=id_{name}]").bounding_box()
        field = page.locator(f"#id_{name}").bounding_box()
        # on one line, the field right of its label
        assert abs(label["y"] - field["y"]) < 12, name
        assert field["x"] >= label["x"] + label["width"], name
        rows.append(field["x"])
    assert abs(rows[0] - rows[1]) < 2  # the fields start in one column
    box = page.locator("#id_data-confirmed").bounding_box()
    text = page.locator("label[for=id_data-confirmed]").bounding_box()
    assert abs(box["y"] + box["height"] / 2 - (text["y"] + text["height"] / 2)) < 8
    assert text["height"] < 24  # the checkbox label on one line


def test_the_starter_is_told_why_before_any_form(browser_page, automation, people):
    page = browser_page
    run, item = awaiting_run(automation, people["sam"])
    login(page, "sam")
    page.goto(page.base + reverse("admin:runs_run_change", args=[run.pk]))
    assert page.locator("a[data-action=decide]").count() == 0
    why = "You started this run: four-eyes rule, someone else must approve"
    assert why in page.inner_text("#run-decide-refusal")
    assert why in page.inner_text(f"[data-refusal='{item.pk}']")
    assert page.locator("a.button:text-is('Decide')").count() == 0
    # the approval page: the reason first, and no form at all
    page.goto(page.base + decide_url(run, item))
    assert why in page.inner_text("#approval-refusal")
    assert page.locator("#approval-form, #approve, [name=data-code]").count() == 0
    # the action page itself sends back with the reason, before any form
    page.goto(page.base + reverse("admin:runs_run_action", args=[run.pk, "decide"]))
    assert why in page.inner_text(".messagelist")
    assert page.locator("#runs-action-form").count() == 0
    # the runs list's bulk Approve / reject: the reason, and no form to fill
    bulk_decide(page, run)
    assert why in page.inner_text(".messagelist")
    assert page.locator("#runs-action-form").count() == 0
    # the work item's own page
    page.goto(page.base + reverse("admin:runs_workitem_change", args=[item.pk]))
    assert why in page.inner_text(".field-corrections")
    assert page.locator(".field-corrections a.button").count() == 0


def test_a_superuser_not_among_the_approvers_is_not_offered_approve(
    browser_page, automation, people, operator
):
    """The demo's AML finding: approvers ["group:Operator"]; the superuser is not
    in that group, so is refused: no Decide for them, the reason instead; an
    operator is offered it."""
    page = browser_page
    run, item = awaiting_run(
        automation, people["sam"], approvers=["group:Operator"], schema=None
    )
    login(page, "root")
    page.goto(page.base + reverse("admin:runs_run_change", args=[run.pk]))
    assert page.locator("a[data-action=decide]").count() == 0
    assert "You are not among the approvers: group:Operator" in page.inner_text(
        "#run-decide-refusal"
    )
    page.goto(page.base + decide_url(run, item))
    assert "not among the approvers" in page.inner_text("#approval-refusal")
    assert page.locator("#approve").count() == 0
    bulk_decide(page, run)
    assert "not among the approvers" in page.inner_text(".messagelist")
    assert page.locator("#runs-action-form").count() == 0
    # the operator may: offered on the run page and the list, and it works
    page.context.clear_cookies()
    login(page, "olivia")
    page.goto(page.base + reverse("admin:runs_run_change", args=[run.pk]))
    assert page.locator("a[data-action=decide]").count() == 1
    page.goto(page.base + decide_url(run, item))
    page.fill("#id_reason", "checked the finding")
    page.click("#approve")
    page.wait_for_selector(".messagelist")
    item.refresh_from_db()
    assert item.approval["by"] == "olivia"


# -- dashboard ---------------------------------------------------------------------


def test_waiting_for_someone_lists_runs_awaiting_approval(
    browser_page, automation, people, unresolved_run
):
    page = browser_page
    run, _ = awaiting_run(automation, people["sam"])
    failed = unresolved_run()
    login(page, "bob")
    page.goto(page.base + reverse("admin:index"))
    waiting = page.locator("#runs-waiting")
    row = waiting.locator(f"tr:has(a:text-is('Run #{run.number}'))")
    assert "1 item awaiting a decision" in row.inner_text()
    assert "Awaiting input" in row.inner_text()
    assert waiting.locator(f"a:text-is('Run #{failed.number}')").count() == 1


def test_runs_per_day_has_nice_ticks_labelled_axes_legend_and_a_table(
    browser_page, viewer, completed_run, unresolved_run
):
    page = browser_page
    for _ in range(6):
        completed_run()
    unresolved_run()
    login(page, "victor")
    page.goto(page.base + reverse("admin:index"))
    chart = page.locator("#runs-card-by-day svg")
    ticks = [
        t.strip() for t in chart.locator("text[text-anchor=end]").all_text_contents()
    ]
    assert ticks == ["0", "2", "4", "6", "8"]  # 7 runs today: 4-6 nice ticks
    assert chart.locator("line.runs-grid").count() == len(ticks)
    titles = chart.locator("text.runs-axis-title").all_text_contents()
    assert titles == ["Day", "Runs"]
    assert "7 runs" in chart.get_attribute("aria-label")
    legend = page.inner_text("#runs-card-by-day figcaption")
    assert "Completed" in legend and "Unresolved" in legend
    page.click("#runs-card-by-day details summary")
    table = page.inner_text("#runs-card-by-day details table")
    assert re.search(r"Day\s+Completed\s+Unresolved\s+Total", table, re.IGNORECASE)
    assert re.search(r"\s6\s+1\s+7", table)


def test_failure_causes_count_items_not_attempts_and_lead_times_show(
    browser_page, viewer, unresolved_run
):
    page = browser_page
    run = unresolved_run()  # two items fail with a business error
    for _ in range(2):  # retried twice, failing each time: still two items
        run_retry(run, reason="again")
        run_until_idle(run)
    run.refresh_from_db()
    assert run.failed_items == 2
    login(page, "victor")
    page.goto(page.base + reverse("admin:index"))
    page.click("#runs-card-failures details summary")
    rows = page.locator("#runs-card-failures details tbody tr").all_inner_texts()
    assert len(rows) == 1 and rows[0].split("\t")[-1].strip() == "2"
    svg = page.locator("#runs-card-failures svg")
    assert "(2)" in svg.get_attribute("aria-label")
    assert svg.locator("text.runs-axis-title").text_content() == "Failed work items"
    lead = page.locator("#runs-card-lead svg")
    assert lead.locator("circle").count() == 2  # median and 95th percentile
    assert lead.locator("text.runs-axis-title").all_text_contents() == [
        "Day (run ended)",
        "Lead time",
    ]
    assert len(lead.locator("text[text-anchor=end]").all_text_contents()) >= 4
    page.click("#runs-card-lead details summary")
    assert run.automation.name in page.inner_text("#runs-card-lead details table")
    assert axe_violations(page) == []


@pytest.mark.parametrize("width", [1280, 1920])
def test_the_dashboard_uses_the_width_in_a_grid_of_cards(
    browser_page, viewer, completed_run, width
):
    page = browser_page
    completed_run()
    page.set_viewport_size({"width": width, "height": 1000})
    login(page, "victor")
    page.goto(page.base + reverse("admin:index"))
    board = page.locator("#runs-dashboard").bounding_box()
    assert board["width"] > 0.9 * (width - 80)  # not a narrow column
    cards = [
        page.locator(f"#{name}").bounding_box()
        for name in ("runs-card-waiting", "runs-card-mine", "runs-card-lead")
    ]
    # at least two cards side by side, each wider than 400 px
    assert abs(cards[0]["y"] - cards[1]["y"]) < 2 and cards[1]["x"] > cards[0]["x"]
    assert all(c["width"] > 400 for c in cards)
    wide = page.locator("#runs-card-by-day").bounding_box()
    assert wide["width"] > 0.9 * board["width"]


def test_recent_actions_say_what_was_done(browser_page, operator, unresolved_run):
    page = browser_page
    run = unresolved_run()
    login(page, "olivia")
    page.goto(page.base + reverse("admin:runs_run_change", args=[run.pk]))
    page.click("a[data-action=resolve]")
    page.fill("textarea[name=note]", "settled by phone")
    page.click("input[name=_confirm]")
    page.wait_for_selector(".messagelist")
    page.goto(page.base + reverse("admin:index"))
    entry = page.locator("#recent-actions-module li").first.inner_text()
    assert "Resolve failed items: 2 failed item(s) resolved" in entry
    assert f"Run #{run.number}" in entry


def test_the_dashboard_is_live_while_a_run_moves_and_stops_after(
    browser_page, viewer, running_run
):
    page = browser_page
    run = running_run()
    login(page, "victor")
    page.goto(page.base + reverse("admin:index"))
    board = page.locator("#runs-dashboard")
    assert board.get_attribute("data-live") == "on"
    assert board.get_attribute("hx-trigger") == "every 5s"
    # the fragment is polled in place (no full reload): a marker on the page stays
    page.evaluate("window.__kept = true")
    run_stop(run, step_runs="terminate", pending_items="failed", reason="test")
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state not in ("running", "pending", "stopping", "terminating")
    page.wait_for_selector("#runs-dashboard[data-live=off]", timeout=15_000)
    assert page.evaluate("window.__kept") is True
    assert page.locator("#runs-dashboard").get_attribute("hx-trigger") is None
    # nothing moves: no further polls
    polls = []
    page.on("request", lambda r: polls.append(r.url) if "dashboard" in r.url else None)
    page.wait_for_timeout(6_000)
    assert polls == []


def test_the_dashboard_counts_only_runs_the_person_may_see(
    browser_page, automation, unresolved_run
):
    page = browser_page
    lending, _ = workspace_add(slug="lending", name="Lending desk")
    workspace_add(slug="aml", name="AML team")
    mine = unresolved_run()
    foreign = automation({"action": "test.business_fail"}, workspace="aml")
    other = run_start(automation=foreign, inputs=[{"bad": True, "subject": "z"}])
    run_until_idle(other)
    groups_ensure()  # a transactional test's flush removed the role groups
    workspace_grant(user=make_user("lena"), workspace=lending, role="viewer")
    seen = automation({"action": "test.business_fail"}, workspace="lending")
    visible = run_start(automation=seen, inputs=[{"bad": True, "subject": "y"}])
    run_until_idle(visible)
    login(page, "lena")
    page.goto(page.base + reverse("admin:index"))
    waiting = page.inner_text("#runs-waiting")
    assert f"Run #{visible.number}" in waiting
    assert f"Run #{other.number}" not in waiting
    assert f"Run #{mine.number}" not in waiting
    label = page.locator("#runs-card-by-day svg").get_attribute("aria-label")
    assert ": 1 runs" in label
    page.click("#runs-card-failures details summary")
    rows = page.locator("#runs-card-failures details tbody tr").all_inner_texts()
    assert len(rows) == 1 and rows[0].split("\t")[-1].strip() == "1"
