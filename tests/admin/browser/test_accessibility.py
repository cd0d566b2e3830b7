"""Accessibility and the shared look: axe-core finds no critical or serious
violation on the control room's main pages, in the light and the dark theme, and the
state palette is one set of distinct colours the badges read well on.

The data is what an operator meets on a working day: a run with done, failed and
items awaiting a decision, other finished runs, so the dashboard's chart has bars.
"""

from pprint import pformat

import pytest
from django.urls import reverse

from runs.engine import run_until_idle
from runs.models import WorkItem
from runs.services import run_start
from runs.states import WorkItemState
from tests.factories import make_user

from .support import axe_violations, login

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = ["dashboard", "runs list", "run page", "approval page", "automation page"]


# a loan application as the demo's robot gets it: payloads longer than a table cell
APPLICATION = {
    "income": 90000,
    "term_months": 36,
    "purpose": "working capital for the winter season and a second delivery van",
    "branch": "Harbourside",
    "officer_email": "maria.lopez@cu.example",
    "documents": ["tax-return-2025.pdf", "bank-statements-q3.pdf", "lease.pdf"],
}


@pytest.fixture
def control_room(automation, operator, unresolved_run, completed_run):
    """A superuser (rita) and a run olivia started: two items failed at the first
    step, two wait for a decision at the second; beside it finished runs."""
    make_user("rita", is_staff=True, is_superuser=True)
    auto = automation(
        {"name": "check eligibility", "action": "test.business_fail"},
        {
            "name": "four-eyes review",
            "action": "builtin.request_approval",
            "parameters": {"deadline_seconds": 86400},
        },
        slug="loan-review",
    )
    run = run_start(
        automation=auto,
        inputs=[
            {**APPLICATION, "subject": "Harbor Bakery LLC", "amount": 20000},
            {**APPLICATION, "subject": "Delta Shipping", "amount": 150000},
            {**APPLICATION, "subject": "Quarry Lane Dental", "bad": True},
            {**APPLICATION, "subject": "Pine & Co", "bad": True},
        ],
        actor=operator,
    )
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == "awaiting_input"
    unresolved_run()
    completed_run()
    awaiting = WorkItem.objects.filter(
        run=run, state=WorkItemState.AWAITING_INPUT
    ).first()
    return {
        "dashboard": reverse("admin:index"),
        "runs list": reverse("admin:runs_run_changelist"),
        "run page": reverse("admin:runs_run_change", args=[run.pk]),
        "approval page": reverse("admin:runs_run_decide", args=[run.pk, awaiting.pk]),
        "automation page": reverse(
            "admin:automations_automation_change", args=[auto.pk]
        ),
    }


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_main_pages_have_no_serious_axe_violation(browser_page, control_room, scheme):
    page = browser_page
    page.emulate_media(color_scheme=scheme)
    login(page, "rita")
    found = {}
    for name in PAGES:
        page.goto(page.base + control_room[name])
        page.wait_for_selector("#content")
        if name == "dashboard":  # the chart has bars to check
            assert page.locator("#content svg rect").count() > 0
        if name == "run page":
            for state in ("done", "failed", "awaiting_input"):
                assert page.locator(f"tr.work-item-{state}").count() > 0, state
        violations = axe_violations(page)
        if violations:
            found[name] = violations
    assert not found, pformat(found, width=100)


def _badge(page):
    """The computed colours of the first state badge and the page's background."""
    return page.evaluate(
        """() => {
        const badge = document.querySelector('.runs-state-awaiting_input');
        const s = getComputedStyle(badge);
        return [s.backgroundColor, s.color,
                getComputedStyle(document.body).backgroundColor];
    }"""
    )


@pytest.mark.parametrize("system", ["light", "dark"])
def test_the_theme_toggle_switches_the_state_palette(
    browser_page, control_room, system
):
    """The admin's toggle (html[data-theme]) wins over the system's preference, for
    the admin's colours and the state palette alike."""
    page = browser_page
    page.emulate_media(color_scheme=system)
    login(page, "rita")
    page.goto(page.base + control_room["runs list"])
    light = ("rgb(124, 58, 237)", "rgb(255, 255, 255)")  # violet, white text
    dark = ("rgb(180, 142, 245)", "rgb(17, 17, 17)")  # light violet, dark text
    start, other = (light, dark) if system == "light" else (dark, light)
    assert tuple(_badge(page)[:2]) == start
    background = _badge(page)[2]
    page.click("button.theme-toggle")  # auto -> the other theme
    expected = "dark" if system == "light" else "light"
    assert page.evaluate("document.documentElement.dataset.theme") == expected
    assert tuple(_badge(page)[:2]) == other
    assert _badge(page)[2] != background
    assert axe_violations(page) == []
    page.reload()  # the choice is kept (localStorage)
    assert tuple(_badge(page)[:2]) == other
