"""The run page of a job shows its child runs in order with their states, a child's
page links its parent; every run page shows its outputs, its outcome counts per
step and per action, and a line saying why it is unresolved or failed."""

import re

import pytest
from django.urls import reverse

from runs.engine import run_until_idle
from runs.models import Run
from runs.services import run_start


def page(client, run):
    response = client.get(reverse("admin:runs_run_change", args=[run.pk]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_a_jobs_page_lists_its_children_and_a_childs_page_links_the_job(
    admin_client, automation
):
    automation("builtin.echo", slug="kyc")
    automation("test.business_fail", slug="supplier")
    job = automation(
        {"action": "builtin.run_automation", "parameters": {"automation": "kyc"}},
        {"action": "builtin.run_automation", "parameters": {"automation": "supplier"}},
        slug="quarterly",
    )
    run = run_start(automation=job, inputs=[{"subject": "a", "bad": True}])
    run_until_idle()
    run.refresh_from_db()
    kyc, supplier = Run.objects.filter(parent=run).order_by("number")
    html = page(admin_client, run)
    rows = re.findall(r'<tr class="child-run child-run-(\w+)">.*?Run #(\d+)', html)
    assert rows == [
        ("completed", str(kyc.number)),
        ("unresolved", str(supplier.number)),
    ]
    # why the job is unresolved, with the failure code of its item
    assert "1 work item failed and wait for a retry or a resolution" in html
    assert "child_unresolved" in html
    child_html = page(admin_client, supplier)
    assert 'id="run-parent"' in child_html
    assert reverse("admin:runs_run_change", args=[run.pk]) in child_html


@pytest.mark.django_db
def test_the_run_page_shows_outputs_and_outcomes_per_step_and_action(
    admin_client, automation
):
    auto = automation("test.count", {"action": "test.business_fail"})
    run = run_start(
        automation=auto, inputs=[{"subject": "ok"}, {"subject": "nope", "bad": True}]
    )
    run_until_idle(run)
    html = page(admin_client, run)
    outputs = re.findall(r'<tr class="run-output">', html)
    assert len(outputs) == 1  # the one item that passed the last step
    steps = re.findall(
        r'<tr class="breakdown-step"><td>(\d)\. (\w+)</td>'
        r"<td><code>([\w.]+)</code></td>((?:<td>\d+</td>)+)",
        html,
    )
    cells = {name: re.findall(r"\d+", tail) for _, name, _, tail in steps}
    # outcomes in RunItemOutcome order: succeeded, failed
    assert cells == {"step1": ["2", "0"], "step2": ["1", "1"]}
    actions = re.findall(r'<tr class="breakdown-action">.*?<code>([\w.]+)</code>', html)
    assert actions == ["test.business_fail", "test.count"]
    assert "1 × <code>not_eligible</code> at step2" in html


@pytest.mark.django_db
def test_a_completed_run_says_no_why(admin_client, automation):
    run = run_start(automation=automation("builtin.echo"))
    run_until_idle(run)
    html = page(admin_client, run)
    assert 'id="run-why"' not in html and 'id="run-children"' not in html


@pytest.mark.django_db
def test_the_runs_list_has_a_completed_column(admin_client, automation):
    run = run_start(automation=automation("builtin.echo"))
    run_until_idle(run)
    html = admin_client.get(reverse("admin:runs_run_changelist")).content.decode()
    assert "column-completed_at" in html
    ordered = admin_client.get(reverse("admin:runs_run_changelist"), {"o": "6"})
    assert ordered.status_code == 200
