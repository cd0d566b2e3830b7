"""SLA alerts: lead time (Automation.sla_seconds) and pending age
(RUNS_SLA_PENDING_SECONDS) tell the owners and fire run.sla_breached, once a run."""

import json

import pytest
from django.core import mail
from django.utils import timezone

from runs.engine import housekeeping, run_until_idle
from runs.mail.models import Notification
from runs.models import Run, WorkItem
from runs.ops.models import RunSlaBreach
from runs.ops.sla import run_sla_breach, sla_breaches_check
from runs.services import run_start
from runs.states import RunState
from runs.webhooks.models import Webhook, WebhookDelivery
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _immediate(settings):
    settings.RUNS_NOTIFY_DEFAULT_MODE = "immediate"
    settings.RUNS_SLA_PENDING_SECONDS = None


@pytest.fixture
def owner(db):
    # a Viewer: only who may view the automation's runs hears of them (issue 15)
    return make_user("olga", role="Viewer", email="olga@example.com")


@pytest.fixture
def watched(automation, owner):
    """An automation with a 60 s lead-time SLA, an owner and a webhook that wants
    only SLA breaches."""

    def make(sla_seconds=60, slug="kyc-review"):
        auto = automation("builtin.echo", slug=slug, sla_seconds=sla_seconds)
        auto.owners.add(owner)
        Webhook.objects.create(
            automation=auto, url="https://hooks.example/", events=["run.sla_breached"]
        )
        return auto

    return make


def ago(seconds):
    return timezone.now() - timezone.timedelta(seconds=seconds)


def started(auto, created_seconds_ago=0):
    """A run that is still pending (never drained), created that long ago."""
    run = run_start(automation=auto, inputs=[{"subject": "acct-1"}])
    Run.objects.filter(pk=run.pk).update(created_at=ago(created_seconds_ago))
    WorkItem.objects.filter(run=run).update(created_at=ago(created_seconds_ago))
    return run


def housekeep(capture):
    with capture(execute=True):
        return housekeeping()


def test_a_run_past_its_lead_time_tells_owners_and_webhooks_once(
    watched, django_capture_on_commit_callbacks
):
    run = started(watched(), created_seconds_ago=120)

    report = housekeep(django_capture_on_commit_callbacks)

    assert report["sla_breached"] == 1
    breach = RunSlaBreach.objects.get(run=run)
    assert breach.kind == "lead_time" and breach.limit_seconds == 60
    assert breach.seconds >= 120
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["olga@example.com"]
    assert message.subject == f"[Runs] Kyc Review: run #{run.number} overdue"
    assert Notification.objects.get(run=run).state == "sla_breached"
    delivery = WebhookDelivery.objects.get(run=run)
    assert delivery.event == "run.sla_breached"
    body = json.loads(delivery.body)
    assert body["event"] == "run.sla_breached"
    assert body["before"] == body["after"] == RunState.PENDING
    assert body["run"]["id"] == str(run.pk)

    # the next passes see the same breach and send nothing
    assert housekeep(django_capture_on_commit_callbacks)["sla_breached"] == 0
    assert housekeep(django_capture_on_commit_callbacks)["sla_breached"] == 0
    assert len(mail.outbox) == 1
    assert WebhookDelivery.objects.filter(run=run).count() == 1
    assert Notification.objects.filter(run=run).count() == 1


def test_a_run_within_its_lead_time_is_not_a_breach(
    watched, django_capture_on_commit_callbacks
):
    started(watched(), created_seconds_ago=30)
    assert housekeep(django_capture_on_commit_callbacks)["sla_breached"] == 0
    assert not RunSlaBreach.objects.exists() and not mail.outbox


def test_no_sla_no_breach_however_old(automation, django_capture_on_commit_callbacks):
    started(automation("builtin.echo"), created_seconds_ago=86400)
    assert housekeep(django_capture_on_commit_callbacks)["sla_breached"] == 0


def test_a_run_that_finished_late_is_a_breach_and_one_in_time_is_not(
    watched, django_capture_on_commit_callbacks
):
    auto = watched()
    late = run_start(automation=auto, inputs=[{}])
    run_until_idle(late)
    in_time = run_start(automation=auto, inputs=[{}])
    run_until_idle(in_time)
    Run.objects.filter(pk=late.pk).update(created_at=ago(200), completed_at=ago(100))
    Run.objects.filter(pk=in_time.pk).update(created_at=ago(200), completed_at=ago(170))

    assert housekeep(django_capture_on_commit_callbacks)["sla_breached"] == 1
    breach = RunSlaBreach.objects.get()
    assert breach.run_id == late.pk and breach.kind == "lead_time"
    assert breach.seconds == pytest.approx(100, abs=1)


def test_an_item_pending_past_the_threshold_is_a_breach_once(
    automation, owner, settings, django_capture_on_commit_callbacks
):
    settings.RUNS_SLA_PENDING_SECONDS = 300
    auto = automation("builtin.echo", slug="no-lead-time-sla")
    auto.owners.add(owner)
    waiting = started(auto)
    fresh = started(auto)
    WorkItem.objects.filter(run=waiting).update(available_at=ago(600))

    assert housekeep(django_capture_on_commit_callbacks)["sla_breached"] == 1
    breach = RunSlaBreach.objects.get()
    assert breach.run_id == waiting.pk and breach.kind == "pending_age"
    assert breach.limit_seconds == 300 and breach.seconds >= 600
    assert len(mail.outbox) == 1
    assert housekeep(django_capture_on_commit_callbacks)["sla_breached"] == 0
    assert len(mail.outbox) == 1
    assert not RunSlaBreach.objects.filter(run=fresh).exists()


def test_the_pending_age_threshold_is_off_by_default(
    automation, django_capture_on_commit_callbacks
):
    run = started(automation("builtin.echo"))
    WorkItem.objects.filter(run=run).update(available_at=ago(86400))
    assert housekeep(django_capture_on_commit_callbacks)["sla_breached"] == 0


def test_a_run_over_both_thresholds_is_one_breach(
    watched, settings, django_capture_on_commit_callbacks
):
    settings.RUNS_SLA_PENDING_SECONDS = 60
    run = started(watched(), created_seconds_ago=600)
    WorkItem.objects.filter(run=run).update(available_at=ago(600))

    assert housekeep(django_capture_on_commit_callbacks)["sla_breached"] == 1
    assert RunSlaBreach.objects.get(run=run).kind == "lead_time"
    assert len(mail.outbox) == 1
    assert WebhookDelivery.objects.filter(run=run).count() == 1


def test_recording_a_breach_twice_records_it_once(
    watched, django_capture_on_commit_callbacks
):
    run = started(watched(), created_seconds_ago=120)
    with django_capture_on_commit_callbacks(execute=True):
        first = run_sla_breach(run=run, kind="lead_time", seconds=120, limit=60)
        second = run_sla_breach(run=run, kind="pending_age", seconds=120, limit=60)
    assert (first, second) == (True, False)
    assert RunSlaBreach.objects.get(run=run).kind == "lead_time"
    assert len(mail.outbox) == 1 and WebhookDelivery.objects.count() == 1


def test_a_broken_check_does_not_stop_housekeeping(watched, monkeypatch):
    run = started(watched(), created_seconds_ago=120)

    def broken(now):
        raise RuntimeError("boom")

    monkeypatch.setattr("runs.ops.sla._lead_time_breaches", broken)
    assert sla_breaches_check() == 0
    assert not RunSlaBreach.objects.filter(run=run).exists()


def test_webhooks_may_subscribe_to_sla_breaches(automation):
    hook = Webhook(
        automation=automation("builtin.echo"),
        url="https://hooks.example/",
        events=["run.sla_breached", "run.failed"],
    )
    hook.full_clean()


@pytest.mark.parametrize("bad", [0, 366 * 86400 + 1])
def test_the_admin_refuses_an_sla_out_of_bounds(automation, bad):
    from django.core.exceptions import ValidationError

    auto = automation("builtin.echo")
    auto.sla_seconds = bad
    with pytest.raises(ValidationError, match="sla_seconds|greater|less"):
        auto.full_clean()
