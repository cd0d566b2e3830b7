"""The trigger's request path (issue 19): what it reads in one statement and the
202 answer it builds from the run it just wrote, against the ORM and the
serializer they stand in for."""

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIRequestFactory

from automations.models import Automation, AutomationVersion, Step, Trigger
from runs import ledger
from runs.api.serializers import RunSerializer, run_representation
from runs.api.triggering import trigger_target
from runs.models import Run
from runs.services import run_start
from tests.factories import make_automation

from .test_trigger import post


def fields_of(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.fields}


@pytest.mark.django_db
def test_trigger_target_reads_what_the_orm_reads():
    make_automation("builtin.echo", slug="two-versions")
    # a second import publishes version 2 with two steps: its first step is taken
    auto = make_automation(
        {"action": "builtin.echo", "batch_size": 7, "parameters": {"a": [1, 2.5]}},
        "builtin.echo",
        slug="two-versions",
        triggers=[{"kind": "manual"}, {"kind": "api"}, {"kind": "api"}],
    )
    target = trigger_target("two-versions")
    version = auto.latest_published_version()
    assert version.number == 2
    expected = {
        "automation": Automation.objects.get(pk=auto.pk),
        "trigger": auto.triggers.filter(kind="api", enabled=True)
        .order_by("pk")
        .first(),
        "version": AutomationVersion.objects.get(pk=version.pk),
        "first_step": Step.objects.filter(version=version).order_by("order").first(),
    }
    for name, instance in expected.items():
        found = getattr(target, name)
        assert type(found) is type(instance) and fields_of(found) == fields_of(
            instance
        ), name
        assert not found._state.adding and found.get_deferred_fields() == set()
    assert target.first_step.batch_size == 7
    assert target.first_step.parameters == {"a": [1, 2.5]}
    assert target.version.automation is target.automation
    assert target.first_step.version is target.version


@pytest.mark.django_db
def test_trigger_target_without_trigger_or_version():
    assert trigger_target("no-such-automation") is None
    auto = make_automation(slug="manual-draft", publish=False, triggers=[])
    target = trigger_target(auto.slug)
    assert target.automation.pk == auto.pk
    assert (target.trigger, target.version, target.first_step) == (None, None, None)
    Trigger.objects.create(automation=auto, kind="api", enabled=False)
    assert trigger_target(auto.slug).trigger is None


@pytest.mark.django_db
def test_a_disabled_api_trigger_is_passed_over(api):
    auto = make_automation(slug="switched", triggers=[{"kind": "api"}])
    first = auto.triggers.get()
    second = Trigger.objects.create(automation=auto, kind="api")
    Trigger.objects.filter(pk=first.pk).update(enabled=False)
    assert trigger_target(auto.slug).trigger.pk == second.pk
    response = post(api, auto.slug, {"inputs": []})
    assert response.status_code == 202
    assert Run.objects.get().trigger_id == second.pk


def representations(run):
    request = APIRequestFactory().get("/")
    loaded = Run.objects.select_related("automation", "version").get(pk=run.pk)
    return (
        run_representation(loaded, request),
        dict(RunSerializer(loaded, context={"request": request}).data),
    )


@pytest.mark.django_db
def test_the_202_answer_is_the_serializers_for_every_field(operator):
    auto = make_automation()
    run = run_start(automation=auto, inputs=[{"subject": "a"}], actor=operator)
    built, serialized = representations(run)
    assert list(built) == list(RunSerializer.Meta.fields)
    assert built == serialized
    # a finished, archived re-run: every field that can be null has a value
    other = run_start(automation=auto, rerun_of=run, actor=operator)
    now = timezone.now()
    Run.objects.filter(pk=other.pk).update(
        state="completed",
        started_at=now - timezone.timedelta(seconds=1.5),
        completed_at=now,
        archived=True,
        output_items=3,
        failed_items=1,
    )
    built, serialized = representations(other)
    assert built["rerun_of"] == str(run.pk) and built["lead_time_seconds"] > 0
    assert built == serialized


@pytest.mark.django_db
def test_the_202_answer_matches_a_read_of_the_run(api, automation):
    auto = automation("builtin.echo")
    response = post(api, auto.slug, {"inputs": [{"subject": "a"}]})
    assert response.status_code == 202
    assert response.json() == representations(Run.objects.get())[1]


@pytest.mark.django_db(transaction=True)
def test_a_known_ledger_head_needs_the_callers_transaction():
    run = run_start(automation=make_automation())
    event = ledger.audit_event(verb="run.noted", run=run)
    with pytest.raises(ValueError, match="transaction"):
        ledger.append(run=run, events=[event], head=(run.ledger_seq, run.ledger_hash))
    with transaction.atomic():
        ledger.append(run=run, events=[event])
    run.refresh_from_db()
    assert run.ledger_seq == 2  # run.created, then this one, in one chain


@pytest.mark.django_db(transaction=True)
def test_the_orm_brokers_task_row_is_written_with_the_run(settings):
    """On the ORM broker the step run's task is queued in the run's transaction:
    a start that rolls back leaves no task, one that commits leaves exactly one."""
    if not settings.Q_CLUSTER.get("orm"):
        pytest.skip("the Redis broker sends after the commit")
    from django_q.models import OrmQ

    auto = make_automation()

    class Undone(Exception):
        pass

    with pytest.raises(Undone), transaction.atomic():
        run_start(automation=auto)
        assert OrmQ.objects.count() == 1  # written, not yet committed
        raise Undone
    assert OrmQ.objects.count() == 0 and not Run.objects.exists()
    run_start(automation=auto)
    assert OrmQ.objects.count() == 1
