"""Faults with real processes: a worker killed with SIGKILL mid-step, and two clusters
working one run at once. Every item ends done or failed exactly once; no side effect
happens twice."""

import os
import signal

import pytest
from django.core.management import call_command
from django.db import connection

from runs.models import Run, RunItem, StepRun, WorkItem
from runs.services import run_start
from runs.states import RUN_FINAL, RunState, StepRunState
from tests.factories import make_automation

from .cluster import IdempotentEndpoint, cluster_env, processes, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SETTLED = RUN_FINAL | {RunState.UNRESOLVED}


def _state(run):
    return Run.objects.values_list("state", flat=True).get(pk=run.pk)


def _assert_exactly_once(run, endpoint, items):
    last = run.version.steps.order_by("-order").first()
    finals = WorkItem.objects.filter(run=run, step=last)
    assert finals.count() == items
    assert set(finals.values_list("state", flat=True)) <= {"done", "failed"}
    # one successful (or replayed) run item per work item of the HTTP step
    per_item = {}
    for work_item_id, outcome in RunItem.objects.filter(run=run, step=last).values_list(
        "work_item_id", "outcome"
    ):
        if outcome in ("succeeded", "idempotent_replay"):
            per_item[work_item_id] = per_item.get(work_item_id, 0) + 1
    assert set(per_item.values()) == {1}
    assert len(per_item) == finals.filter(state="done").count()
    # no side effect twice, and each done item's effect happened
    assert set(endpoint.effects.values()) == {1}
    assert len(endpoint.effects) == len(per_item)


def test_sigkill_a_worker_mid_step(db):
    with IdempotentEndpoint(delay=0.05) as endpoint:
        automation = make_automation(
            {"action": "builtin.echo", "batch_size": 20},
            {
                "action": "builtin.http_request",
                "batch_size": 10,
                "max_attempts": 3,
                "retry_backoff_seconds": 0,
                "parameters": {"url": endpoint.url},
            },
            slug="fault-kill",
        )
        env = cluster_env()
        with processes(["qcluster"], ["housekeeping", "--every", "1"], env=env):
            run = run_start(
                automation=automation, inputs=[{"n": i} for i in range(200)]
            )
            # kill the worker that holds HTTP items mid-batch; should its commit
            # win the race against the kill, wait for the next batch and again
            orphaned, killed = [], []
            for _attempt in range(3):
                held = wait_for(
                    lambda: (
                        WorkItem.objects.filter(
                            run=run,
                            step__order=2,
                            state="in_progress",
                            lease_owner__isnull=False,
                        )
                        .select_related("lease_owner")
                        .first()
                    ),
                    timeout=60,
                    what="HTTP items held by a worker",
                )
                step_run = held.lease_owner
                os.kill(int(step_run.worker.rsplit(":", 1)[1]), signal.SIGKILL)
                killed.append(step_run.pk)
                orphaned = list(
                    WorkItem.objects.filter(
                        lease_token=held.lease_token, state="in_progress"
                    ).values_list("pk", flat=True)
                )
                if orphaned:
                    break
            wait_for(
                lambda: _state(run) in SETTLED, timeout=120, what="the run to settle"
            )
        run.refresh_from_db()
    assert run.state == RunState.COMPLETED, run.state
    assert StepRun.objects.get(pk=killed[-1]).state == StepRunState.FAILED
    assert orphaned, "three kills all landed between two batches"
    lost = RunItem.objects.filter(run=run, failure_cause="lease expired (worker lost)")
    assert set(lost.values_list("work_item_id", flat=True)) == set(orphaned)
    _assert_exactly_once(run, endpoint, 200)
    call_command("verify_audit")


def test_two_clusters_at_once_process_no_item_twice(db):
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL: two clusters on one SQLite file only queue on its lock"
        )
    items = int(os.environ.get("RUNS_TWO_CLUSTER_ITEMS", "10000"))
    with IdempotentEndpoint() as endpoint:
        automation = make_automation(
            {
                "action": "builtin.http_request",
                "batch_size": 100,
                "concurrency": 4,
                "parameters": {"url": endpoint.url},
            },
            slug="two-clusters",
        )
        env = cluster_env(RUNS_LEASE_SECONDS=60)  # two clusters on one queue
        with processes(["qcluster"], ["qcluster"], env=env):
            run = run_start(
                automation=automation, inputs=[{"n": i} for i in range(items)]
            )
            wait_for(
                lambda: _state(run) in SETTLED,
                timeout=600,
                interval=1,
                what="the run to settle",
            )
        run.refresh_from_db()
    assert run.state == RunState.COMPLETED
    workers = set(StepRun.objects.filter(run=run).values_list("worker", flat=True))
    assert len(workers) >= 2
    assert sum(endpoint.requests.values()) == items  # not even a replayed request
    _assert_exactly_once(run, endpoint, items)
