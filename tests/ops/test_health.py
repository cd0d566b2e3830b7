"""/healthz and /readyz: the process, the database, the broker, a cluster."""

import json
import os

import pytest
from django.db import OperationalError, connections

pytestmark = pytest.mark.django_db

ON_REDIS = bool(os.environ.get("REDIS_URL"))


def test_healthz_answers_without_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_probes_refuse_writes(client):
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


def test_readyz_is_200_when_database_broker_and_cluster_answer(client, cluster_on_time):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["failed"] == []
    broker = "redis" if ON_REDIS else "broker"
    assert body["checks"] == {"database": "ok", broker: "ok", "cluster": "ok"}


def test_readyz_names_redis_when_redis_is_unreachable(
    client, settings, closed_port, cluster_on_time
):
    q_cluster = {k: v for k, v in settings.Q_CLUSTER.items() if k != "orm"}
    settings.Q_CLUSTER = {**q_cluster, "redis": f"redis://127.0.0.1:{closed_port}/0"}
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "redis" in body["failed"] and "database" not in body["failed"]
    assert body["checks"]["redis"] == "ConnectionError"
    # the reason is a class name: no host or port for whoever asks
    assert str(closed_port) not in response.content.decode()


def test_readyz_names_the_database_when_it_fails(client, monkeypatch, cluster_on_time):
    def broken(*args, **kwargs):
        raise OperationalError("connection to server at 10.0.0.9 failed")

    monkeypatch.setattr(connections["default"], "cursor", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"][0] == "database"
    assert body["checks"]["database"] == "OperationalError"
    assert "10.0.0.9" not in response.content.decode()


def test_readyz_names_the_cluster_when_none_fired_housekeeping(client, cluster_gone):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["cluster"]
    assert body["checks"]["cluster"].startswith("no cluster seen for ")


def test_readyz_without_a_housekeeping_schedule_names_the_cluster(client):
    from django_q.models import Schedule

    Schedule.objects.filter(name="runs:housekeeping").delete()
    body = client.get("/readyz").json()
    assert body["failed"] == ["cluster"]
    assert body["checks"]["cluster"] == "no housekeeping schedule"


def test_readyz_can_leave_the_cluster_out(client, settings, cluster_gone):
    settings.RUNS_READY_CHECK_CLUSTER = False
    response = client.get("/readyz")
    assert response.status_code == 200
    assert "cluster" not in response.json()["checks"]


def test_the_cluster_window_is_a_setting(client, settings, cluster_gone):
    settings.RUNS_READY_CLUSTER_SECONDS = 7200
    assert client.get("/readyz").status_code == 200


@pytest.mark.skipif(not ON_REDIS, reason="needs REDIS_URL (the Redis broker)")
def test_a_cluster_reporting_its_status_in_redis_counts_as_seen(client, cluster_gone):
    from runs.ops.health import clusters_alive, redis_client

    assert clusters_alive() == 0
    redis = redis_client()
    from django.conf import settings

    key = f"django_q:{settings.Q_CLUSTER['name']}:cluster:ops-observe-test"
    redis.set(key, "stat", ex=30)
    try:
        assert clusters_alive() == 1
        response = client.get("/readyz")
        assert response.status_code == 200, json.loads(response.content)
    finally:
        redis.delete(key)
        redis.close()
