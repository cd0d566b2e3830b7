"""Outbox: the webhook deliveries and notifications a run's move causes are written
in the move's own transaction, and sent after it commits.

A process that dies between the commit and the send must lose neither: the rows are
there, pending, and the periodic passes send them.
"""

import signal
import subprocess
import sys

import pytest
from django.core import mail

from runs.mail.models import Notification
from runs.services import run_start
from runs.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from tests.api.test_webhooks import Receiver
from tests.factories import make_user
from tests.runs.cluster import ROOT, cluster_env

# Moves the run in a process of its own and SIGKILLs that process from the first
# on_commit callback: after the commit, before anything registered after commit
# (where the old receivers created deliveries and notifications) could run.
KILLED_AFTER_COMMIT = """
import os, signal, sys
import django
django.setup()
from django.db import transaction
from runs.machines import run_move
from runs.models import Run

run = Run.objects.get(pk=sys.argv[1])
with transaction.atomic():
    transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    run_move(run, "failed", reason="killed after commit")
"""


@pytest.fixture
def worker_in_process(monkeypatch):
    """Call it and django-q2 runs each task queued from then on at once, in this
    process, like a worker would."""
    from django_q.conf import Conf

    return lambda: monkeypatch.setattr(Conf, "SYNC", True)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(180)
def test_a_kill_between_commit_and_send_loses_no_delivery_or_notification(
    automation, settings, worker_in_process
):
    settings.RUNS_NOTIFY_DEFAULT_MODE = "immediate"
    owner = make_user("olga", role="Viewer", email="olga@example.com")  # sees runs
    auto = automation("builtin.echo", slug="outbox")
    auto.owners.add(owner)
    with Receiver([204]) as receiver:
        Webhook.objects.create(automation=auto, url=receiver.url, events=["run.failed"])
        run = run_start(automation=auto, inputs=[{"subject": "s"}])

        moved = subprocess.run(
            [sys.executable, "-c", KILLED_AFTER_COMMIT, str(run.pk)],
            check=False,
            cwd=ROOT,
            env=cluster_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert moved.returncode == -signal.SIGKILL, moved.stderr
        run.refresh_from_db()
        assert run.state == "failed"
        # written with the move, not sent
        delivery = WebhookDelivery.objects.get(run=run)
        assert (delivery.event, delivery.status, delivery.attempts) == (
            "run.failed",
            DeliveryStatus.PENDING,
            0,
        )
        notification = Notification.objects.get(run=run)
        assert (notification.email, notification.sent_at) == ("olga@example.com", None)
        assert receiver.requests == [] and mail.outbox == []

        # the periodic passes send them
        worker_in_process()
        from runs.mail.tasks import notifications_send_due
        from runs.tasks import housekeeping

        assert housekeeping()["webhooks_queued"] == 1
        assert notifications_send_due()["immediate"] == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 1)
    assert len(receiver.requests) == 1
    assert receiver.requests[0]["headers"]["X-Runs-Event"] == "run.failed"
    notification.refresh_from_db()
    assert notification.sent_at is not None
    assert [m.to for m in mail.outbox] == [["olga@example.com"]]


@pytest.mark.django_db(transaction=True)
def test_a_move_rolled_back_leaves_no_delivery_or_notification(automation, settings):
    """The other half of one transaction: a move that does not commit writes none."""
    from django.db import transaction

    from runs.machines import run_move

    settings.RUNS_NOTIFY_DEFAULT_MODE = "immediate"
    owner = make_user("olga", role="Viewer", email="olga@example.com")  # sees runs
    auto = automation("builtin.echo", slug="outbox-rollback")
    auto.owners.add(owner)
    Webhook.objects.create(automation=auto, url="http://127.0.0.1:9/hook")
    run = run_start(automation=auto, inputs=[{"subject": "s"}])
    with pytest.raises(RuntimeError), transaction.atomic():
        run_move(run, "failed", reason="rolled back")
        assert WebhookDelivery.objects.filter(run=run).count() == 1
        assert Notification.objects.filter(run=run).count() == 1
        raise RuntimeError("the caller's transaction fails after the move")
    run.refresh_from_db()
    assert run.state == "pending"
    assert not WebhookDelivery.objects.filter(run=run).exists()
    assert not Notification.objects.filter(run=run).exists()
    assert mail.outbox == []
