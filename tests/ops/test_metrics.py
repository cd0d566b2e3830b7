"""/metrics: Prometheus text computed from the database, a fixed number of queries,
an optional bearer token."""

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from runs.engine import run_until_idle
from runs.mail.models import InboundMessage
from runs.models import Run, StepRun, WorkItem
from runs.ops.metrics import SCRAPE_QUERIES
from runs.ops.models import RunSlaBreach
from runs.services import run_start
from runs.states import RunState
from runs.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db


def drained(auto, inputs):
    run = run_start(automation=auto, inputs=inputs)
    run_until_idle(run)
    run.refresh_from_db()
    return run


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        family.name: family
        for family in text_string_to_metric_families(response.content.decode())
    }


def value(families, family, sample=None, **labels):
    matches = [
        s.value
        for s in families[family].samples
        if s.name == (sample or family) and s.labels == labels
    ]
    assert len(matches) == 1, (family, sample, labels, families[family].samples)
    return matches[0]


def set_durations(run, step_name, seconds):
    start = timezone.now() - timezone.timedelta(hours=1)
    rows = StepRun.objects.filter(run=run, step__name=step_name)
    rows.update(
        started_at=start, finished_at=start + timezone.timedelta(seconds=seconds)
    )
    return rows.count()


@pytest.fixture
def scenario(automation, cluster_gone):
    """Two automations: ops-a completes one run of two items and holds one pending
    run; ops-b's run ends unresolved with one business failure. Webhook
    deliveries, inbound mail and an SLA breach beside them."""
    a = automation("builtin.echo", "builtin.echo", slug="ops-a")
    b = automation(
        {"action": "builtin.require", "parameters": {"fields": ["account"]}},
        slug="ops-b",
    )
    done = drained(a, [{"subject": "s1"}, {"subject": "s2"}])
    unresolved = drained(b, [{"account": 1}, {"subject": "no-account"}])
    assert (done.state, unresolved.state) == (RunState.COMPLETED, RunState.UNRESOLVED)
    waiting = run_start(automation=a, inputs=[{"subject": "late"}])  # never drained
    WorkItem.objects.filter(run=waiting).update(
        available_at=timezone.now() - timezone.timedelta(seconds=600)
    )
    step1_runs = set_durations(done, "step1", 3)
    step2_runs = set_durations(done, "step2", 0.2)

    hook = Webhook.objects.create(automation=a, url="https://hooks.example/")
    old = timezone.now() - timezone.timedelta(seconds=900)
    for status, created_at in [
        (DeliveryStatus.PENDING, old),
        (DeliveryStatus.PENDING, timezone.now()),
        (DeliveryStatus.FAILED, old),
        (DeliveryStatus.DELIVERED, old),
    ]:
        WebhookDelivery.objects.create(
            webhook=hook,
            run=done,
            event="run.completed",
            body="{}",
            status=status,
            created_at=created_at,
        )
    for outcome, reason in [
        ("accepted", ""),
        ("accepted", ""),
        ("rejected", "no_automation"),
        ("duplicate", ""),
    ]:
        InboundMessage.objects.create(source="stdin", outcome=outcome, reason=reason)
    RunSlaBreach.objects.create(
        run=unresolved, kind="lead_time", seconds=120, limit_seconds=60
    )
    return {"step1_runs": step1_runs, "step2_runs": step2_runs}


def test_every_family_with_the_scenarios_values(client, scenario):
    m = scrape(client)

    assert value(m, "runs_runs", automation="ops-a", state="completed") == 1
    assert value(m, "runs_runs", automation="ops-a", state="pending") == 1
    assert value(m, "runs_runs", automation="ops-b", state="unresolved") == 1
    assert len(m["runs_runs"].samples) == 3
    assert value(m, "runs_runs_waiting_for_people", automation="ops-a") == 0
    assert value(m, "runs_runs_waiting_for_people", automation="ops-b") == 1

    processed = "runs_step_items_processed"
    assert m[processed].type == "counter"
    assert (
        value(m, processed, processed + "_total", automation="ops-a", step="step1") == 2
    )
    assert (
        value(m, processed, processed + "_total", automation="ops-a", step="step2") == 2
    )
    assert (
        value(m, processed, processed + "_total", automation="ops-b", step="step1") == 2
    )
    failed = "runs_step_items_failed"
    assert value(m, failed, failed + "_total", automation="ops-b", step="step1") == 1
    assert len(m[failed].samples) == 1

    hist, labels = "runs_step_run_duration_seconds", {"automation": "ops-a"}
    assert m[hist].type == "histogram"
    n1, n2 = scenario["step1_runs"], scenario["step2_runs"]
    bucket = hist + "_bucket"
    assert value(m, hist, bucket, **labels, step="step1", le="2.5") == 0
    assert value(m, hist, bucket, **labels, step="step1", le="5.0") == n1
    assert value(m, hist, bucket, **labels, step="step1", le="+Inf") == n1
    assert value(m, hist, bucket, **labels, step="step2", le="0.1") == 0
    assert value(m, hist, bucket, **labels, step="step2", le="0.5") == n2
    assert value(m, hist, hist + "_count", **labels, step="step1") == n1
    # SQLite's julianday arithmetic is good to a few microseconds
    step1_sum = value(m, hist, hist + "_sum", **labels, step="step1")
    step2_sum = value(m, hist, hist + "_sum", **labels, step="step2")
    assert step1_sum == pytest.approx(3 * n1, abs=0.001 * n1)
    assert step2_sum == pytest.approx(0.2 * n2, abs=0.001 * n2)

    oldest = value(m, "runs_oldest_pending_item_age_seconds", automation="ops-a")
    assert 600 <= oldest < 3600
    # ops-b's run is unresolved: its items wait for people, not for a worker
    assert len(m["runs_oldest_pending_item_age_seconds"].samples) == 1

    assert value(m, "runs_webhook_backlog") == 2
    assert 900 <= value(m, "runs_webhook_oldest_pending_age_seconds") < 3600
    assert value(m, "runs_webhook_deliveries_failed") == 1

    email = "runs_email_messages"
    assert value(m, email, email + "_total", outcome="accepted", reason="") == 2
    assert (
        value(m, email, email + "_total", outcome="rejected", reason="no_automation")
        == 1
    )
    assert value(m, email, email + "_total", outcome="duplicate", reason="") == 1

    sla = "runs_sla_breaches"
    assert value(m, sla, sla + "_total", automation="ops-b", kind="lead_time") == 1

    assert value(m, "runs_worker_clusters_alive") == 0
    assert value(m, "runs_housekeeping_overdue_seconds") >= 3600
    assert all(name.startswith("runs_") for name in m)


def test_runs_waiting_for_admission_per_automation(client, scenario, automation):
    limited = automation("builtin.echo", slug="ops-limited")
    limited.max_concurrent_runs = 1
    limited.save(update_fields=["max_concurrent_runs"])
    runs = [run_start(automation=limited) for _ in range(3)]
    assert [r.state for r in runs] == ["running", "pending", "pending"]
    m = scrape(client)
    assert m["runs_runs_waiting_admission"].type == "gauge"
    assert value(m, "runs_runs_waiting_admission", automation="ops-limited") == 2
    # ops-a's pending run has no limit to wait for: it is on its way to a worker
    assert value(m, "runs_runs", automation="ops-a", state="pending") == 1
    assert value(m, "runs_runs_waiting_admission", automation="ops-a") == 0
    run_until_idle(runs[0])
    m = scrape(client)
    assert value(m, "runs_runs_waiting_admission", automation="ops-limited") == 1


def test_a_cluster_on_time_counts_as_alive(client, cluster_on_time):
    m = scrape(client)
    # ORM broker: the schedule says one is alive; Redis broker: none reports
    # in this test, so the count it reads is 0
    import os

    expected = 0 if os.environ.get("REDIS_URL") else 1
    assert value(m, "runs_worker_clusters_alive") == expected
    assert value(m, "runs_housekeeping_overdue_seconds") == 0


def test_a_scrape_makes_the_same_queries_whatever_the_rows(
    client, scenario, automation, django_assert_num_queries
):
    with django_assert_num_queries(SCRAPE_QUERIES):
        scrape(client)
    more = automation("builtin.echo", "builtin.echo", "builtin.echo", slug="ops-c")
    for _ in range(3):
        drained(more, [{"subject": f"x{i}"} for i in range(5)])
    run_start(automation=more, inputs=[{}])
    for i in range(5):
        InboundMessage.objects.create(
            source="imap", outcome="rejected", reason="too_large"
        )
    assert Run.objects.count() == 7
    with django_assert_num_queries(SCRAPE_QUERIES):
        m = scrape(client)
    assert value(m, "runs_runs", automation="ops-c", state="completed") == 3


def test_an_empty_database_scrapes(client, django_assert_num_queries):
    with django_assert_num_queries(SCRAPE_QUERIES):
        m = scrape(client)
    assert m["runs_runs"].samples == []
    assert value(m, "runs_webhook_backlog") == 0


def test_the_token_when_set_is_required(client, settings, scenario):
    settings.RUNS_METRICS_TOKEN = "s3cret-metrics"
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing.content == b""
    assert missing["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 403 and wrong.content == b""
    other_scheme = client.get("/metrics", HTTP_AUTHORIZATION="Token s3cret-metrics")
    assert other_scheme.status_code == 401 and other_scheme.content == b""
    m = scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-metrics")
    assert value(m, "runs_webhook_backlog") == 2


def test_metrics_refuses_writes(client):
    assert client.post("/metrics").status_code == 405
