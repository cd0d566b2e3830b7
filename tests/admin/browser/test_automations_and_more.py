"""Browser tests of the automation page (issue 18) and of the pages around it:
triggers per kind, versions' status and author, frozen versions read-only, the
diff without noise, the import preview's diff, the list's last and next run,
four-eyes publishing, the period report's links, the favicon, no "View site", and
the 403/404 pages in the admin's look. The shared fixtures are in conftest.py.
"""

import pytest
from django.urls import reverse

from automations.definitions import automation_import
from automations.models import Automation, AutomationVersion
from runs.engine import run_until_idle
from runs.models import AuditEvent
from runs.services import run_start
from tests.factories import make_user

from .support import axe_violations, login

pytestmark = pytest.mark.django_db(transaction=True)

TRIGGERS = [
    {"kind": "manual"},
    {"kind": "api"},
    {"kind": "schedule", "cron": "0 6 * * 1"},
    {"kind": "email", "address": "kyc@bank.example", "senders": ["ops@bank.example"]},
]


def _definition(slug, *, steps=("builtin.echo",), publish=True, **extra):
    return {
        "slug": slug,
        "name": slug.replace("-", " ").title(),
        "publish": publish,
        "steps": [
            {"name": f"step{i + 1}", "action": action} for i, action in enumerate(steps)
        ],
        "triggers": [{"kind": "manual"}],
        **extra,
    }


def _versions(slug, actor):
    """kyc: v1 and v2 published (v1 frozen since), v3 a draft; all made by actor."""
    automation_import(_definition(slug), actor=actor)
    automation_import(
        _definition(slug, steps=("builtin.echo", "builtin.echo")), actor=actor
    )
    automation_import(
        _definition(slug, steps=("builtin.echo", "builtin.require"), publish=False),
        actor=actor,
    )
    return Automation.objects.get(slug=slug)


def _visible(page, selector):
    return page.locator(selector).evaluate("el => el.offsetParent !== null")


def _change(page, automation):
    page.goto(
        page.base + reverse("admin:automations_automation_change", args=[automation.pk])
    )


# -- the automation page -----------------------------------------------------------


def test_triggers_show_only_the_fields_of_their_kind_within_1440px(
    browser_page, author
):
    page = browser_page
    automation_import(_definition("kyc", triggers=TRIGGERS), actor=author)
    login(page, "ada")
    _change(page, Automation.objects.get(slug="kyc"))
    blocks = page.locator(".trigger-inline .inline-related:not(.empty-form)")
    assert blocks.count() == 4
    kinds = {}
    for i in range(4):
        block = blocks.nth(i)
        kinds[block.get_attribute("data-kind")] = f"#{block.get_attribute('id')}"
    assert set(kinds) == {"manual", "api", "schedule", "email"}
    for kind in ("manual", "api"):
        for field in ("senders", "cron", "address", "subject_pattern"):
            assert not _visible(page, f"{kinds[kind]} .field-{field}"), (kind, field)
    assert _visible(page, f"{kinds['email']} .field-senders")
    assert _visible(page, f"{kinds['email']} .field-address")
    assert not _visible(page, f"{kinds['email']} .field-cron")
    assert _visible(page, f"{kinds['schedule']} .field-cron")
    assert not _visible(page, f"{kinds['schedule']} .field-senders")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1440, f"the page is {width}px wide"
    assert axe_violations(page) == []

    # changing the kind shows the new kind's fields
    page.select_option(f"{kinds['api']} select[name$='-kind']", "email")
    assert _visible(page, f"{kinds['api']} .field-senders")


def test_versions_have_status_and_author(browser_page, author):
    page = browser_page
    automation = _versions("kyc", author)
    login(page, "ada")
    _change(page, automation)
    rows = {}
    for row in page.locator("#versions-group tbody tr.has_original").all():
        number = row.locator("td.field-number").inner_text().strip()
        rows[number] = (
            row.locator("td.field-status").inner_text().strip(),
            row.locator("td.field-author").inner_text().strip(),
        )
    assert rows == {
        "3": ("draft", "ada"),
        "2": ("published", "ada"),
        "1": ("frozen", "ada"),
    }


def test_a_frozen_version_is_read_only(browser_page, author, client):
    page = browser_page
    automation = _versions("kyc", author)
    frozen = AutomationVersion.objects.get(automation=automation, number=1)
    draft = AutomationVersion.objects.get(automation=automation, number=3)
    login(page, "ada")
    page.goto(
        page.base
        + reverse("admin:automations_automationversion_change", args=[frozen.pk])
    )
    page.wait_for_selector("#content-main")
    assert page.locator("input[name=_save]").count() == 0
    assert page.locator("a.deletelink").count() == 0
    assert page.locator("input[name=run_timeout_seconds]").count() == 0
    page.goto(
        page.base
        + reverse("admin:automations_automationversion_change", args=[draft.pk])
    )
    assert page.locator("input[name=_save]").count() == 1

    # and the server refuses a POST to either door
    client.force_login(author)
    change = reverse("admin:automations_automationversion_change", args=[frozen.pk])
    delete = reverse("admin:automations_automationversion_delete", args=[frozen.pk])
    assert client.post(change, {"run_timeout_seconds": "5"}).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    frozen.refresh_from_db()
    assert frozen.run_timeout_seconds is None
    assert AutomationVersion.objects.filter(pk=frozen.pk).exists()


def test_the_diff_shows_the_steps_without_publish_noise(browser_page, author):
    page = browser_page
    automation = _versions("kyc", author)
    draft = AutomationVersion.objects.get(automation=automation, number=3)
    login(page, "ada")
    page.goto(
        page.base + reverse("admin:automations_automationversion_diff", args=[draft.pk])
    )
    diff = page.locator("#version-diff").inner_text()
    assert '+      "action": "builtin.require"' in diff
    assert '-      "action": "builtin.echo"' in diff
    assert "publish" not in diff


def test_the_import_preview_shows_the_diff_against_the_current_version(
    browser_page, author, tmp_path
):
    page = browser_page
    automation_import(_definition("kyc"), actor=author)
    changed = tmp_path / "kyc.yaml"
    changed.write_text(
        "slug: kyc\nname: Kyc\npublish: false\nrun_timeout_seconds: 600\n"
        "steps:\n- {name: step1, action: builtin.echo}\n"
        "- {name: check, action: builtin.require, parameters: {fields: [account]}}\n"
        "triggers: [{kind: manual}]\n"
    )
    login(page, "ada")
    page.goto(page.base + reverse("admin:automations_automation_import_definitions"))
    page.set_input_files("#id_file", str(changed))
    page.click("input[type=submit][value=Preview]")
    page.wait_for_selector("#definitions-preview")
    preview = page.locator("#definitions-preview").inner_text()
    assert "kyc: v2, new version" in preview
    assert "What changes: v1 → v2" in preview
    assert '+  "run_timeout_seconds": 600' in preview
    assert '+      "name": "check"' in preview
    assert "publish" not in preview.split("What changes")[1]
    # a preview writes nothing
    assert AutomationVersion.objects.filter(automation__slug="kyc").count() == 1


def test_the_list_shows_last_and_next_run(browser_page, author, operator):
    page = browser_page
    automation_import(
        _definition("kyc", triggers=[{"kind": "schedule", "cron": "0 6 * * 1"}]),
        actor=author,
    )
    automation_import(_definition("quiet"), actor=author)
    kyc = Automation.objects.get(slug="kyc")
    run_until_idle(run_start(automation=kyc, inputs=[{"subject": "a"}]))
    second = run_start(automation=kyc, inputs=[{"subject": "b"}])
    run_until_idle(second)
    login(page, "ada")
    page.goto(page.base + reverse("admin:automations_automation_changelist"))
    rows = page.locator("#result_list tbody tr")
    by_slug = {
        rows.nth(i).locator("td.field-slug").inner_text(): rows.nth(i)
        for i in range(rows.count())
    }
    last = by_slug["kyc"].locator("td.field-last_run")
    assert last.locator("a").inner_text() == f"#{second.number}"
    assert "Completed" in last.inner_text() and "UTC" in last.inner_text()
    next_run = by_slug["kyc"].locator("td.field-next_run").inner_text()
    assert next_run.endswith("06:00:00 UTC"), next_run
    assert by_slug["quiet"].locator("td.field-last_run").inner_text() == "-"
    assert by_slug["quiet"].locator("td.field-next_run").inner_text() == "-"


def test_four_eyes_publishing(browser_page, author, client):
    page = browser_page
    automation_import(_definition("kyc"), actor=None)
    kyc = Automation.objects.get(slug="kyc")
    Automation.objects.filter(pk=kyc.pk).update(publish_needs_second_person=True)
    automation_import(
        _definition("kyc", steps=("builtin.echo", "builtin.echo"), publish=False),
        actor=author,
    )
    v2 = AutomationVersion.objects.get(automation=kyc, number=2)
    assert v2.created_by == author
    version_url = reverse("admin:automations_automationversion_change", args=[v2.pk])
    publish_url = reverse("admin:automations_automationversion_publish", args=[v2.pk])

    # ada made v2: no Publish offered, the reason shown before any form
    login(page, "ada")
    page.goto(page.base + version_url)
    assert page.locator(f"a[href='{publish_url}']").count() == 0
    assert "needs a second person" in page.locator("#publish-refusal").inner_text()
    page.goto(page.base + publish_url)
    assert "needs a second person" in page.locator("#publish-refusal").inner_text()
    assert page.locator("input[type=submit][value='Yes, publish']").count() == 0
    # and the server refuses her POST
    client.force_login(author)
    client.post(publish_url)
    v2.refresh_from_db()
    assert not v2.is_published

    # bea, another author, may
    make_user("bea", role="Author")
    page.context.clear_cookies()
    login(page, "bea")
    page.goto(page.base + version_url)
    page.click(f"a[href='{publish_url}']")
    page.click("input[type=submit][value='Yes, publish']")
    page.wait_for_selector(".messagelist")
    v2.refresh_from_db()
    assert v2.is_published
    event = AuditEvent.objects.filter(verb="version.published").latest("id")
    assert event.actor.username == "bea"
    assert event.after["made_by"] == "ada" and event.after["second_person"] is True


# -- elsewhere -----------------------------------------------------------------------


def test_the_period_report_is_linked_from_the_app_list_and_the_automation(
    browser_page, author, viewer
):
    page = browser_page
    automation_import(_definition("kyc"), actor=author)
    kyc = Automation.objects.get(slug="kyc")
    run_until_idle(run_start(automation=kyc, inputs=[{"subject": "a"}]))
    login(page, "victor")
    page.goto(page.base + reverse("admin:index"))
    page.click("#content-main .app-runs a:text-is('Period report')")
    page.wait_for_selector(".runs-report-form")
    assert page.url.split("?")[0].endswith(reverse("admin:runs_run_report"))

    page.context.clear_cookies()
    login(page, "ada")
    _change(page, kyc)
    page.click("#automation-report-link")
    page.wait_for_selector(".runs-report-form")
    assert "automation=kyc" in page.url
    assert "kyc" in page.locator("#content").inner_text()


def test_favicon_and_no_view_site_link(browser_page, viewer):
    page = browser_page
    response = page.goto(page.base + "/favicon.ico")
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    login(page, "victor")
    assert page.locator("#user-tools a:text-is('View site')").count() == 0


def test_refused_and_unknown_pages_are_in_the_admin_look_and_say_nothing(
    browser_page, viewer, author
):
    page = browser_page
    automation_import(_definition("kyc"), actor=author)
    kyc = Automation.objects.get(slug="kyc")
    login(page, "victor")
    # a viewer may not start runs: the run-now door refuses
    response = page.goto(
        page.base + reverse("admin:automations_automation_run_now", args=[kyc.pk])
    )
    assert response.status == 403
    error = page.locator("#error-page")
    assert error.get_attribute("data-status") == "403"
    assert page.locator("#header #site-name").count() == 1
    page.click("#error-page a:text-is('Back to the control room')")
    page.wait_for_selector("#content-main")
    assert page.url.rstrip("/").endswith(reverse("admin:index").rstrip("/"))

    response = page.goto(
        page.base + reverse("admin:runs_run_change", args=["no-such-run-0123"])
    )
    assert response.status == 404
    text = page.locator("#content").inner_text()
    assert page.locator("#error-page").get_attribute("data-status") == "404"
    assert "no-such-run-0123" not in text and "Traceback" not in text
