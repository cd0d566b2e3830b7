"""Webhooks: deliveries on run state changes, signed, retried, every attempt kept."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from runs.engine import run_until_idle
from runs.services import run_start, run_stop
from runs.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from runs.webhooks.services import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    backoff_seconds,
    deliveries_create,
    deliveries_retry_due,
    delivery_send,
    signature,
    signature_verify,
)


class Receiver:
    """A real HTTP server on 127.0.0.1 that answers the given status codes in turn
    and keeps every request it got."""

    def __init__(self, statuses=(200,)):
        self.statuses = list(statuses)
        self.requests = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                code = (
                    receiver.statuses.pop(0)
                    if len(receiver.statuses) > 1
                    else (receiver.statuses[0])
                )
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"try later")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def auto(automation):
    return automation("builtin.echo", slug="kyc")


def _delivery(run, hook, after="completed"):
    return deliveries_create(run_id=run.pk, before="running", after=after)


def test_run_state_changes_create_deliveries_for_matching_webhooks(
    auto, automation, django_capture_on_commit_callbacks
):
    every = Webhook.objects.create(automation=auto, url="http://127.0.0.1:9/a")
    finished = Webhook.objects.create(
        automation=auto, url="http://127.0.0.1:9/b", events=["run.completed"]
    )
    Webhook.objects.create(automation=auto, url="http://127.0.0.1:9/c", is_active=False)
    Webhook.objects.create(
        automation=automation("builtin.echo"), url="http://127.0.0.1:9/d"
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = run_start(automation=auto, inputs=[{"subject": "s"}])
    with django_capture_on_commit_callbacks(execute=True):
        run_until_idle(run)
    run.refresh_from_db()
    assert run.state == "completed"
    got = sorted(WebhookDelivery.objects.values_list("webhook__url", "event"))
    assert got == [
        (every.url, "run.completed"),
        (every.url, "run.running"),
        (finished.url, "run.completed"),
    ]
    delivery = WebhookDelivery.objects.get(webhook=finished)
    body = json.loads(delivery.body)
    assert body["event"] == "run.completed" and body["id"] == str(delivery.pk)
    assert (body["before"], body["after"]) == ("running", "completed")
    assert body["run"]["id"] == str(run.pk) and body["run"]["state"] == "completed"
    assert body["run"]["url"].startswith("http")


@pytest.fixture
def queued(monkeypatch):
    """The django-q2 tasks sent (whatever the broker), by function path."""
    import django_q.tasks

    sent = []
    real = django_q.tasks.async_task

    def spy(func, *args, **kwargs):
        sent.append(func)
        return real(func, *args, **kwargs)

    monkeypatch.setattr(django_q.tasks, "async_task", spy)
    return sent


def test_deliveries_are_queued_on_the_worker_after_commit(
    auto, django_capture_on_commit_callbacks, queued
):
    Webhook.objects.create(automation=auto, url="http://127.0.0.1:9/a")
    run = run_start(automation=auto)
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        run_stop(run)
    assert WebhookDelivery.objects.filter(event="run.cancelled").count() == 1
    assert [f for f in queued if "delivery_send" in f] == [
        "runs.webhooks.tasks.delivery_send"
    ]


def test_a_webhook_is_received_and_its_signature_verifies(auto):
    with Receiver([204]) as receiver:
        hook = Webhook.objects.create(automation=auto, url=receiver.url)
        run = run_start(automation=auto)
        (delivery,) = _delivery(run, hook)
        assert delivery_send(delivery.pk) == "delivered"
    (request,) = receiver.requests
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Runs-Event"] == "run.completed"
    assert headers["X-Runs-Delivery"] == str(delivery.pk)
    assert signature_verify(
        hook.secret,
        headers[TIMESTAMP_HEADER],
        request["body"],
        headers[SIGNATURE_HEADER],
    )
    # what the receiver checks by hand, per docs/api.md
    import hashlib
    import hmac

    expected = hmac.new(
        hook.secret.encode(),
        f"{headers[TIMESTAMP_HEADER]}.{request['body']}".encode(),
        hashlib.sha256,
    ).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert not signature_verify(
        "other secret",
        headers[TIMESTAMP_HEADER],
        request["body"],
        headers[SIGNATURE_HEADER],
    )
    assert not signature_verify(
        hook.secret,
        headers[TIMESTAMP_HEADER],
        request["body"] + " ",
        headers[SIGNATURE_HEADER],
    )
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.DELIVERED,
        1,
        204,
    )
    (attempt,) = delivery.attempt_log.all()
    assert (
        attempt.status_code == 204 and attempt.error == "" and attempt.duration_ms >= 0
    )


def test_5xx_is_retried_with_backoff_and_every_attempt_recorded(auto, settings):
    settings.RUNS_WEBHOOK_BACKOFF_SECONDS = 10
    with Receiver([503, 500, 200]) as receiver:
        hook = Webhook.objects.create(automation=auto, url=receiver.url)
        (delivery,) = _delivery(run_start(automation=auto), hook)
        started = timezone.now()
        assert delivery_send(delivery.pk).startswith("retry later (HTTP 503)")
        delivery.refresh_from_db()
        wait = (delivery.next_attempt_at - started).total_seconds()
        assert 9 <= wait <= 12
        assert delivery_send(delivery.pk) == "not due"  # not before its backoff
        WebhookDelivery.objects.update(next_attempt_at=timezone.now())
        assert delivery_send(delivery.pk).startswith("retry later (HTTP 500)")
        delivery.refresh_from_db()
        assert 19 <= (delivery.next_attempt_at - timezone.now()).total_seconds() <= 21
        WebhookDelivery.objects.update(next_attempt_at=timezone.now())
        assert delivery_send(delivery.pk) == "delivered"
    attempts = list(delivery.attempt_log.values_list("number", "status_code", "error"))
    assert attempts == [(1, 503, "HTTP 503"), (2, 500, "HTTP 500"), (3, 200, "")]
    assert len(receiver.requests) == 3
    bodies = {r["body"] for r in receiver.requests}
    assert bodies == {delivery.body}  # same body, each attempt signed afresh
    assert delivery_send(delivery.pk) == "not due"  # delivered: never again


def test_gives_up_after_max_attempts(auto, settings):
    settings.RUNS_WEBHOOK_MAX_ATTEMPTS = 2
    with Receiver([500]) as receiver:
        hook = Webhook.objects.create(automation=auto, url=receiver.url)
        (delivery,) = _delivery(run_start(automation=auto), hook)
        delivery_send(delivery.pk)
        WebhookDelivery.objects.update(next_attempt_at=timezone.now())
        assert delivery_send(delivery.pk) == "gave up"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 2


def test_connection_refused_is_recorded_and_retried(auto):
    with Receiver() as receiver:
        url = receiver.url
    hook = Webhook.objects.create(automation=auto, url=url)  # nobody listens now
    (delivery,) = _delivery(run_start(automation=auto), hook)
    assert delivery_send(delivery.pk).startswith("retry later (ConnectError")
    attempt = delivery.attempt_log.get()
    assert attempt.status_code is None and "ConnectError" in attempt.error
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING


def test_housekeeping_queues_due_deliveries(
    auto, django_capture_on_commit_callbacks, queued
):
    from runs.api.housekeeping import api_housekeeping

    hook = Webhook.objects.create(automation=auto, url="http://127.0.0.1:9/x")
    run = run_start(automation=auto)
    due, later = _delivery(run, hook)[0], _delivery(run, hook, "failed")[0]
    WebhookDelivery.objects.filter(pk=later.pk).update(
        next_attempt_at=timezone.now() + timezone.timedelta(hours=1)
    )
    WebhookDelivery.objects.filter(pk=due.pk).update(attempts=1)
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        report = api_housekeeping()
    assert report["webhooks_queued"] == 1
    assert len([f for f in queued if "delivery_send" in f]) == 1
    assert deliveries_retry_due(timezone.now() + timezone.timedelta(hours=2)) == 2


def test_an_attempt_in_flight_is_not_sent_twice(auto):
    hook = Webhook.objects.create(automation=auto, url="http://127.0.0.1:9/x")
    (delivery,) = _delivery(run_start(automation=auto), hook)
    from runs.webhooks.services import _claim

    assert _claim(delivery.pk, timezone.now()) is not None
    assert _claim(delivery.pk, timezone.now()) is None  # leased by the first


def test_backoff_doubles_and_is_capped(settings):
    settings.RUNS_WEBHOOK_BACKOFF_SECONDS = 30
    assert [backoff_seconds(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert backoff_seconds(20) == 3600


def test_signature_refuses_stale_timestamps():
    old = str(int(time.time()) - 3600)
    assert not signature_verify("s", old, "{}", signature("s", old, "{}"))
    assert not signature_verify("s", "not-a-number", "{}", "sha256=00")


def test_unknown_events_are_refused_by_validation(auto):
    from django.core.exceptions import ValidationError

    hook = Webhook(
        automation=auto, url="https://example.invalid/h", events=["run.exploded"]
    )
    with pytest.raises(ValidationError, match="unknown events: run.exploded"):
        hook.full_clean()


def test_admin_shows_deliveries_and_attempts(admin_client, auto):
    with Receiver([502, 200]) as receiver:
        hook = Webhook.objects.create(automation=auto, url=receiver.url)
        (delivery,) = _delivery(run_start(automation=auto), hook)
        delivery_send(delivery.pk)
    for path in (
        "/admin/runs/webhook/",
        "/admin/runs/webhookdelivery/",
        f"/admin/runs/webhookdelivery/{delivery.pk}/change/",
        "/admin/runs/apiclient/",
        "/admin/runs/apiclient/add/",
        "/admin/runs/idempotencykey/",
        f"/admin/runs/webhook/{hook.pk}/change/",
    ):
        response = admin_client.get(path)
        assert response.status_code == 200, path
    page = admin_client.get(f"/admin/runs/webhookdelivery/{delivery.pk}/change/")
    assert b"HTTP 502" in page.content
