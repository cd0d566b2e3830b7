"""Notifications when a run needs people: locmem backend, and one real SMTP server."""

import socket
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.utils import timezone

from runs.engine import run_until_idle
from runs.machines import run_move
from runs.mail.models import AutomationSubscription, Notification
from runs.mail.notifications import notification_digests_send, notifications_send_due
from runs.services import run_start
from runs.states import RunState
from tests.factories import make_user


@pytest.fixture(autouse=True)
def _base_url(settings):
    settings.RUNS_ADMIN_BASE_URL = "https://runs.example.com/"
    settings.RUNS_NOTIFY_DEFAULT_MODE = "immediate"


@pytest.fixture
def owner(db):
    # a Viewer: only who may view the automation's runs hears of them (issue 15)
    return make_user("olga", role="Viewer", email="olga@example.com")


@pytest.fixture
def watched(automation, owner):
    auto = automation("test.business_fail", slug="kyc-review")
    auto.owners.add(owner)
    return auto


def _fail(run, to=RunState.FAILED, capture=None):
    with capture(execute=True):
        if to == RunState.TIMED_OUT:
            run_move(run, RunState.RUNNING)
        run_move(run, to, reason="test")


def test_failed_run_mails_the_owner_with_counts_and_link(
    watched, owner, django_capture_on_commit_callbacks
):
    run = run_start(automation=watched, inputs=[{"subject": "acct:1"}, {"bad": True}])
    _fail(run, capture=django_capture_on_commit_callbacks)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["olga@example.com"]
    assert message.subject == f"[Runs] Kyc Review: run #{run.number} failed"
    assert f"Run #{run.number} of Kyc Review (v1) is failed." in message.body
    assert "Work items:       2 total, 0 output, 0 failed" in message.body
    assert (
        f"Open the run: https://runs.example.com/admin/runs/run/{run.pk}/change/"
        in message.body
    )
    row = Notification.objects.get()
    assert (row.state, row.mode, row.attempts) == ("failed", "immediate", 0)
    assert row.sent_at is not None


def test_unresolved_run_from_the_engine_is_notified_once(
    watched, django_capture_on_commit_callbacks
):
    run = run_start(automation=watched, inputs=[{"subject": "acct:1"}, {"bad": True}])
    with django_capture_on_commit_callbacks(execute=True):
        run_until_idle(run)
    run.refresh_from_db()

    assert run.state == RunState.UNRESOLVED
    assert len(mail.outbox) == 1
    assert "unresolved" in mail.outbox[0].subject
    assert "Work items:       2 total, 1 output, 1 failed" in mail.outbox[0].body


def test_timed_out_is_notified_and_good_endings_are_not(
    watched, automation, owner, django_capture_on_commit_callbacks
):
    timed_out = run_start(automation=watched)
    _fail(timed_out, RunState.TIMED_OUT, capture=django_capture_on_commit_callbacks)
    assert [m.subject.rsplit(" ", 2)[-1] for m in mail.outbox] == ["out"]
    assert "timed out" in mail.outbox[0].subject

    fine = automation("builtin.echo", slug="fine")
    fine.owners.add(owner)
    ok = run_start(automation=fine)
    cancelled = run_start(automation=fine)
    with django_capture_on_commit_callbacks(execute=True):
        run_until_idle(ok)
        run_move(cancelled, RunState.CANCELLED)
    ok.refresh_from_db()
    assert ok.state == RunState.COMPLETED
    assert len(mail.outbox) == 1


def test_subscribers_preferences_and_who_is_skipped(
    watched, owner, django_capture_on_commit_callbacks
):
    follower = make_user("fred", role="Viewer", email="fred@example.com")
    muted_owner = make_user("mia", role="Viewer", email="mia@example.com")
    no_email = make_user("nemo", role="Viewer", email="")
    gone = make_user("gus", role="Viewer", email="gus@example.com", is_active=False)
    # subscribed, but holds no role in the automation's workspace
    stranger = make_user("sam", email="sam@example.com")
    watched.owners.add(muted_owner, no_email, gone)
    AutomationSubscription.objects.create(automation=watched, user=follower)
    AutomationSubscription.objects.create(automation=watched, user=stranger)
    AutomationSubscription.objects.create(
        automation=watched, user=muted_owner, mode="off"
    )

    _fail(run_start(automation=watched), capture=django_capture_on_commit_callbacks)

    assert sorted(m.to[0] for m in mail.outbox) == [
        "fred@example.com",
        "olga@example.com",
    ]


def test_digest_batches_runs_into_one_mail_per_period(
    watched, owner, settings, django_capture_on_commit_callbacks
):
    settings.RUNS_NOTIFY_DIGEST_MINUTES = 60
    AutomationSubscription.objects.create(automation=watched, user=owner, mode="digest")
    first, second = run_start(automation=watched), run_start(automation=watched)
    _fail(first, capture=django_capture_on_commit_callbacks)
    _fail(second, RunState.TIMED_OUT, capture=django_capture_on_commit_callbacks)
    assert mail.outbox == []  # nothing one by one

    assert notification_digests_send() == 1
    assert len(mail.outbox) == 1
    digest = mail.outbox[0]
    assert digest.to == ["olga@example.com"]
    assert digest.subject == "[Runs] 2 runs need attention"
    assert f"Run #{first.number} of Kyc Review (v1): failed" in digest.body
    assert f"Run #{second.number} of Kyc Review (v1): timed out" in digest.body
    assert digest.body.count("Open the run: https://runs.example.com/admin/") == 2
    assert notification_digests_send() == 0  # all sent

    third = run_start(automation=watched)
    _fail(third, capture=django_capture_on_commit_callbacks)
    assert notification_digests_send() == 0  # within the period: wait
    later = timezone.now() + timezone.timedelta(minutes=61)
    assert notification_digests_send(now=later) == 1
    assert mail.outbox[-1].subject == "[Runs] 1 run needs attention"
    assert f"Run #{third.number} " in mail.outbox[-1].body
    assert f"Run #{first.number} " not in mail.outbox[-1].body


def test_digest_as_the_default_mode(
    watched, settings, django_capture_on_commit_callbacks
):
    settings.RUNS_NOTIFY_DEFAULT_MODE = "digest"
    _fail(run_start(automation=watched), capture=django_capture_on_commit_callbacks)
    assert mail.outbox == []
    assert notifications_send_due() == {"immediate": 0, "digests": 1}
    assert len(mail.outbox) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_failed_send_stays_in_the_outbox_and_is_retried(
    watched, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", _closed_port()
    settings.EMAIL_TIMEOUT = 5
    run = run_start(automation=watched)
    _fail(run, capture=django_capture_on_commit_callbacks)

    row = Notification.objects.get()
    assert row.sent_at is None and row.attempts == 1
    assert "ConnectionRefusedError" in row.error
    run.refresh_from_db()
    assert run.state == RunState.FAILED  # the run moved whatever the mail did

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert notifications_send_due() == {"immediate": 1, "digests": 0}
    row.refresh_from_db()
    assert row.sent_at is not None and row.error == ""
    assert len(mail.outbox) == 1
    assert notifications_send_due() == {"immediate": 0, "digests": 0}


class _Inbox:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_closed_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


def test_notification_through_a_real_smtp_server(
    watched, settings, smtp_server, django_capture_on_commit_callbacks
):
    controller, inbox = smtp_server
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = controller.hostname, controller.port
    settings.EMAIL_USE_TLS = False
    settings.DEFAULT_FROM_EMAIL = "runs@runs.example.com"
    run = run_start(automation=watched)

    _fail(run, capture=django_capture_on_commit_callbacks)

    assert len(inbox.envelopes) == 1
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "runs@runs.example.com"
    assert envelope.rcpt_tos == ["olga@example.com"]
    received = message_from_bytes(envelope.content, policy=policy.default)
    assert received["Subject"] == f"[Runs] Kyc Review: run #{run.number} failed"
    assert received["To"] == "olga@example.com"
    body = received.get_content()
    assert f"https://runs.example.com/admin/runs/run/{run.pk}/change/" in body
    assert "Work items:       1 total" in body
    assert Notification.objects.get().sent_at is not None
