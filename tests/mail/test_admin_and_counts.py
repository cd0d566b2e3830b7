"""Admin pages of the e-mail models, the intake counts, and housekeeping wiring."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import Schedule

from runs.mail.models import AutomationSubscription, InboundMessage, Notification
from runs.mail.selectors import inbound_counts
from runs.models import Run
from tests.factories import make_user

from .conftest import eml, receive


@pytest.fixture
def admin_client_logged(client, db):
    admin = make_user("root", email="root@x.example", is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client


def test_rejections_are_counted_by_reason(invoices):
    receive(eml("invoice_multipart.eml"))
    receive(eml("invoice_multipart.eml"))
    receive(eml("malformed_no_from.eml"))
    receive(eml("malformed_truncated.eml"))
    receive(eml("plain_cc.eml"))

    assert inbound_counts() == {
        "accepted": {"": 1},
        "duplicate": {"": 1},
        "rejected": {"unparseable": 2, "no_automation": 1},
    }
    later = timezone.now() + timezone.timedelta(seconds=1)
    assert inbound_counts(since=later) == {}


def _rows(invoices, user, messages):
    for name in messages:
        receive(eml(name))
    AutomationSubscription.objects.get_or_create(automation=invoices, user=user)
    for run in Run.objects.filter(notifications__isnull=True):
        Notification.objects.create(
            run=run, user=user, email=user.email, state="failed", mode="immediate"
        )


def _queries(client, path) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


@pytest.mark.parametrize(
    "path",
    [
        "/admin/runs/inboundmessage/",
        "/admin/runs/notification/",
        "/admin/runs/automationsubscription/",
    ],
)
def test_changelists_take_the_same_queries_whatever_the_rows(
    admin_client_logged, invoices, django_user_model, automation, path
):
    user = django_user_model.objects.get(username="root")
    _rows(invoices, user, ["invoice_multipart.eml", "plain_cc.eml"])
    few = _queries(admin_client_logged, path)
    other = automation(
        "builtin.echo", triggers=[{"kind": "email", "address": "alerts@runs.example"}]
    )
    AutomationSubscription.objects.create(automation=other, user=user)
    _rows(
        invoices,
        user,
        [
            "non_ascii_headers.eml",
            "html_only.eml",
            "forwarded.eml",
            "plain_cc.eml",
            "malformed_no_from.eml",
        ],
    )
    assert _queries(admin_client_logged, path) == few


def test_change_pages_render(admin_client_logged, invoices, django_user_model):
    receive(eml("invoice_multipart.eml"))
    user = django_user_model.objects.get(username="root")
    subscription = AutomationSubscription.objects.create(automation=invoices, user=user)
    notification = Notification.objects.create(
        run=Run.objects.get(),
        user=user,
        email=user.email,
        state="failed",
        mode="digest",
    )
    for path in (
        f"/admin/runs/inboundmessage/{InboundMessage.objects.get().pk}/change/",
        f"/admin/runs/notification/{notification.pk}/change/",
        f"/admin/runs/automationsubscription/{subscription.pk}/change/",
    ):
        response = admin_client_logged.get(path)
        assert response.status_code == 200, path
    assert (
        b"20261116091401.4242@acme.example"
        in admin_client_logged.get(
            f"/admin/runs/inboundmessage/{InboundMessage.objects.get().pk}/change/"
        ).content
    )


def test_housekeeping_keeps_the_mail_schedules(db, settings):
    from runs.tasks import housekeeping

    settings.RUNS_IMAP_HOST = "imap.example"
    report = housekeeping()
    assert report["mail_schedules"] == {
        "fetch_mail": "scheduled",
        "notifications": "scheduled",
    }
    names = set(Schedule.objects.values_list("name", flat=True))
    assert {"runs:fetch_mail", "runs:notifications"} <= names


def test_system_check_refuses_bad_mail_settings(settings):
    from runs.mail.checks import mail_settings_valid

    assert mail_settings_valid() == []
    settings.RUNS_NOTIFY_DEFAULT_MODE = "weekly"
    settings.RUNS_EMAIL_MAX_ATTACHMENT_BYTES = 0
    assert sorted(e.id for e in mail_settings_valid()) == ["runs.E101", "runs.E102"]
