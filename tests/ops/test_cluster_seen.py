"""A real qcluster: /readyz names the cluster until one runs, then answers 200."""

import os

import pytest
from django.utils import timezone

from tests.runs.cluster import cluster_env, processes, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_readyz_sees_a_real_cluster_and_metrics_count_it(client):
    from django_q.models import Schedule

    from runs.engine.housekeeping import housekeeping_schedule_sync

    housekeeping_schedule_sync()
    Schedule.objects.filter(name="runs:housekeeping").update(
        next_run=timezone.now() - timezone.timedelta(hours=1)
    )
    assert client.get("/readyz").json()["failed"] == ["cluster"]

    with processes(["qcluster"], env=cluster_env()):
        # Redis broker: the cluster's status within a second; ORM broker: its
        # scheduler fires the overdue housekeeping schedule (about 30 s in)
        wait_for(
            lambda: client.get("/readyz").status_code == 200,
            timeout=120,
            interval=1,
            what="/readyz to see the cluster",
        )
        if os.environ.get("REDIS_URL"):
            from runs.ops.health import clusters_alive

            # the status django-q2 really saves is what clusters_alive counts
            wait_for(lambda: clusters_alive() >= 1, timeout=30, what="its status")
        metrics = client.get("/metrics").content.decode()
    alive = next(
        line
        for line in metrics.splitlines()
        if line.startswith("runs_worker_clusters_alive ")
    )
    assert float(alive.split()[1]) >= 1
