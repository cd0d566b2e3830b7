"""Locks are taken in one order everywhere: the run row, then its items.

SQLite's single writer hides a wrong order; on PostgreSQL two transactions that
lock the same rows in opposite orders deadlock (one of them is aborted). Here a
run's time runs out while two step runs of it commit batches: the commits and the
timeout's `_end_run` lock the run row and the same items.
"""

import threading

import pytest
from django.db import connection, connections
from django.utils import timezone

from runs.engine import StepRunner
from runs.engine.progress import run_time_out
from runs.ledger_verify import verify_chain
from runs.models import Run, StepRun, WorkItem
from runs.services import run_start
from runs.states import RunState, WorkItemState

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _in_thread(errors, function, *args):
    def target():
        try:
            function(*args)
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def _time_out_when_due(run_id, done):
    run = Run.objects.select_related("version").get(pk=run_id)
    while not done.is_set():
        if timezone.now() >= run.deadline_at:
            run_time_out(run)
            return


@pytest.mark.parametrize("attempt", range(6))
def test_time_running_out_while_two_step_runs_commit_deadlocks_nothing(
    automation, attempt
):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's single writer serialises every transaction")
    auto = automation(
        {"action": "builtin.echo", "batch_size": 4, "concurrency": 2},
        "test.nothing",
        timeout=60,
    )
    run = run_start(automation=auto, inputs=[{"n": i} for i in range(2000)])
    step_runs = list(StepRun.objects.filter(run=run).values_list("pk", flat=True))
    assert len(step_runs) == 2
    # the timeout falls while both step runs are committing batches
    Run.objects.filter(pk=run.pk).update(
        deadline_at=timezone.now() + timezone.timedelta(seconds=0.4 + attempt * 0.1)
    )
    errors, done = [], threading.Event()
    threads = [
        _in_thread(errors, lambda pk=pk: StepRunner(pk).execute()) for pk in step_runs
    ]
    threads.append(_in_thread(errors, _time_out_when_due, run.pk, done))
    for thread in threads[:2]:
        thread.join(timeout=120)
    done.set()
    threads[2].join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    assert not errors, errors
    run.refresh_from_db()
    assert run.state == RunState.TIMED_OUT
    assert not WorkItem.objects.filter(
        run=run, state=WorkItemState.IN_PROGRESS
    ).exists()
    assert verify_chain(run) is None
