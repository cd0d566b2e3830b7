"""Smoke tests per ModelAdmin, with query counts that do not grow with rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from runs.engine import run_until_idle
from runs.models import Run, WorkItem
from runs.services import run_archive, run_start


def _runs(automation_factory, n, auto=None):
    auto = auto or automation_factory("test.count")
    runs = []
    for i in range(n):
        run = run_start(automation=auto, inputs=[{"subject": f"acct:{i}"}, {}])
        run_until_idle(run)
        runs.append(run)
    return runs


def _queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(ctx.captured_queries), response


ADMIN_PAGES = [
    "admin:runs_run_changelist",
    "admin:runs_steprun_changelist",
    "admin:runs_workitem_changelist",
    "admin:runs_runitem_changelist",
    "admin:runs_auditevent_changelist",
    "admin:runs_actionresult_changelist",
    "admin:automations_automation_changelist",
    "admin:automations_automationversion_changelist",
    "admin:automations_trigger_changelist",
    "admin:automations_subject_changelist",
    "admin:index",
]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_changelist_query_count_does_not_grow_with_rows(admin_client, automation, name):
    auto = automation("test.count")
    _runs(automation, 2, auto)
    _queries(admin_client, reverse(name))  # warm caches (content types)
    small, _ = _queries(admin_client, reverse(name))
    _runs(automation, 8, auto)
    large, _ = _queries(admin_client, reverse(name))
    assert large == small


@pytest.mark.django_db
def test_run_changelist_fixed_queries_and_no_count(admin_client, automation):
    _runs(automation, 3)
    n, _response = _queries(admin_client, reverse("admin:runs_run_changelist"))
    _runs(automation, 7)
    with CaptureQueriesContext(connection) as ctx:
        admin_client.get(reverse("admin:runs_run_changelist"))
    assert len(ctx.captured_queries) == n
    sql = " ".join(q["sql"].upper() for q in ctx.captured_queries)
    assert "COUNT(*)" not in sql.replace('COUNT("RUNS_WORKITEM"', "")
    assert "DISTINCT" not in sql  # the date hierarchy does not scan the table


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name,model",
    [
        ("admin:runs_run_change", "run"),
        ("admin:runs_workitem_change", "workitem"),
        ("admin:runs_runitem_change", "runitem"),
        ("admin:runs_auditevent_change", "audit"),
        ("admin:runs_steprun_change", "steprun"),
    ],
)
def test_change_pages_render_with_fixed_queries(admin_client, automation, name, model):
    small_auto = automation("test.count")
    small = run_start(automation=small_auto, inputs=[{}])
    run_until_idle(small)
    big = run_start(
        automation=small_auto, inputs=[{"subject": str(i)} for i in range(40)]
    )
    run_until_idle(big)

    def pk(run):
        return {
            "run": run.pk,
            "workitem": run.work_items.first().pk,
            "runitem": run.run_items.first().pk,
            "audit": run.audit_events.first().pk,
            "steprun": run.step_runs.first().pk,
        }[model]

    _queries(admin_client, reverse(name, args=[pk(small)]))  # warm caches
    a, _ = _queries(admin_client, reverse(name, args=[pk(small)]))
    b, _ = _queries(admin_client, reverse(name, args=[pk(big)]))
    assert a == b


@pytest.mark.django_db
def test_archived_runs_are_hidden_unless_the_filter_asks(admin_client, automation):
    kept, archived = _runs(automation, 2)
    run_archive(archived)
    url = reverse("admin:runs_run_changelist")
    page = admin_client.get(url).content.decode()
    link = reverse("admin:runs_run_change", args=[archived.pk])
    assert link not in page and reverse("admin:runs_run_change", args=[kept.pk]) in page
    assert link in admin_client.get(url + "?archived=yes").content.decode()
    assert link in admin_client.get(url + "?archived=all").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["number", "id", "subject"])
def test_search_by_number_id_and_subject(admin_client, automation, how):
    one, other = _runs(automation, 2)
    term = {"number": str(one.number), "id": str(one.pk), "subject": "acct:0"}[how]
    page = admin_client.get(
        reverse("admin:runs_run_changelist"), {"q": term}
    ).content.decode()
    assert reverse("admin:runs_run_change", args=[one.pk]) in page
    assert reverse("admin:runs_run_change", args=[other.pk]) not in page


@pytest.mark.django_db
def test_filters_and_date_drilldown(admin_client, automation):
    run = _runs(automation, 1)[0]
    run.refresh_from_db()
    url = reverse("admin:runs_run_changelist")
    year, month = run.created_at.year, run.created_at.month
    for query in [
        f"?state__exact={run.state}",
        f"?automation__id__exact={run.automation_id}",
        "?trigger_kind__exact=manual",
        f"?created_at__year={year}",
        f"?created_at__year={year}&created_at__month={month}",
        (
            f"?created_at__year={year}&created_at__month={month}"
            f"&created_at__day={run.created_at.day}"
        ),
    ]:
        page = admin_client.get(url + query).content.decode()
        assert reverse("admin:runs_run_change", args=[run.pk]) in page, query
    page = admin_client.get(url + "?state__exact=failed").content.decode()
    assert reverse("admin:runs_run_change", args=[run.pk]) not in page


@pytest.mark.django_db
def test_pagination_without_count(admin_client, automation, settings):
    from runs.admin.runs import RunAdmin

    _runs(automation, 3)
    RunAdmin.list_per_page, saved = 2, RunAdmin.list_per_page
    try:
        url = reverse("admin:runs_run_changelist")
        first = admin_client.get(url).content.decode()
        assert "?p=2" in first and "Page 1" in first
        second = admin_client.get(url + "?p=2").content.decode()
        assert "Page 2" in second and "?p=3" not in second
        numbers = sorted(Run.objects.values_list("number", flat=True))
        assert f">#{numbers[0]}<" in second
    finally:
        RunAdmin.list_per_page = saved


@pytest.mark.django_db
def test_run_detail_shows_steps_items_run_items_and_audit(admin_client, automation):
    auto = automation("test.count", {"action": "test.business_fail"})
    run = run_start(
        automation=auto, inputs=[{"subject": "ok"}, {"subject": "nope", "bad": True}]
    )
    run_until_idle(run)
    url = reverse("admin:runs_run_change", args=[run.pk])
    page = admin_client.get(url).content.decode()
    for text in (
        "step1",
        "step2",
        "not_eligible",
        "the subject is not eligible",
        "run.created",
        "run.unresolved",
        "Run items",
        "Audit trail",
    ):
        assert text in page, text
    assert 'http-equiv="refresh"' not in page
    assert "hx-trigger" not in page  # finished: nothing polls
    failed = admin_client.get(url, {"item_state": "failed"}).content.decode()
    assert failed.count('class="work-item work-item-failed"') == 1
    assert 'class="work-item work-item-done"' not in failed
    step2 = WorkItem.objects.filter(run=run, step__name="step2").first().step_id
    by_step = admin_client.get(url, {"item_step": step2}).content.decode()
    assert by_step.count('class="work-item ') == 2


@pytest.mark.django_db
def test_run_detail_polls_while_active(admin_client, running_run):
    run = running_run()
    page = admin_client.get(reverse("admin:runs_run_change", args=[run.pk])).content
    assert b'http-equiv="refresh"' not in page  # no full reloads any more
    live = reverse("admin:runs_run_live", args=[run.pk]).encode()
    assert b'hx-get="' + live in page and b'hx-trigger="every ' in page
    assert b"current" in page


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["subject", "idempotency_key"])
def test_run_items_search_by_subject_and_idempotency_key(admin_client, automation, how):
    """Run items are found by exact subject or exact key, neither indexed on run
    items (two entries fewer per item-step written): the subject through the
    work items of that subject, the key through the work item it names."""
    auto = automation("builtin.echo")
    runs = [run_start(automation=auto, inputs=[{"subject": f"s:{i}"}]) for i in (1, 2)]
    for run in runs:
        run_until_idle(run)
    wanted = runs[0].run_items.get()
    term = getattr(wanted, how)
    response = admin_client.get(reverse("admin:runs_runitem_changelist"), {"q": term})
    assert response.status_code == 200
    found = list(response.context["cl"].queryset)
    assert found == [wanted]
    if connection.vendor == "postgresql":
        queryset = response.context["cl"].queryset
        with connection.cursor() as cursor:
            # tiny test tables: make the planner show what it does on big ones
            cursor.execute("SET LOCAL enable_seqscan = off")
            plan = queryset.explain()
        assert "Seq Scan on runs_runitem" not in plan, plan
        # the run items are reached by their work item, not filtered on a scan
        assert "Index Cond: (work_item_id = " in plan, plan


@pytest.mark.django_db
@pytest.mark.parametrize("term", ["acct:1", "x:12:builtin.echo"])
def test_run_items_search_reads_no_whole_table(admin_client, automation, term):
    """Neither a subject nor a key is compared on every run item: a term shaped
    like no key (every run item's key is `run:work item:action`) is looked up
    as a subject only."""
    run = run_start(automation=automation("builtin.echo"), inputs=[{"subject": "x"}])
    run_until_idle(run)
    response = admin_client.get(reverse("admin:runs_runitem_changelist"), {"q": term})
    queryset = response.context["cl"].queryset
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            plan = queryset.explain()
        assert "Seq Scan on runs_runitem" not in plan, plan
        assert "Index Cond: (work_item_id = " in plan, plan
    else:
        plan = queryset.explain()
        assert "SCAN runs_runitem" not in plan, plan


@pytest.mark.django_db
@pytest.mark.parametrize("term", ["r:99999999999999999999999:builtin.echo", "r:-1:a"])
def test_run_items_search_by_a_key_of_no_work_item_finds_nothing(
    admin_client, automation, term
):
    """A key-shaped term whose work item number no work item can have (past the
    column's range) is a search that finds nothing, not a server error."""
    run = run_start(automation=automation("builtin.echo"), inputs=[{"subject": "x"}])
    run_until_idle(run)
    response = admin_client.get(reverse("admin:runs_runitem_changelist"), {"q": term})
    assert response.status_code == 200
    assert list(response.context["cl"].queryset) == []
