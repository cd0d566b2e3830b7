"""PostgreSQL: the step runs of a run commit side by side, holding the run shared
(`run_share`), and take turns only for its chain (`batch_head`). A holder of the
run's exclusive lock (`run_lock`: a stop, a timeout, an operator) waits for them,
and step runs that come after it wait behind it, never past it."""

import pytest
from django.db import OperationalError, connection, transaction

from runs.ledger import batch_head, run_lock, run_share
from runs.models import WorkItem
from runs.services import run_start
from runs.states import RunState
from tests.runs.locks import Holder, until, waiting

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's IMMEDIATE transaction holds its one write lock")


@pytest.fixture
def run(automation):
    return run_start(automation=automation("builtin.echo"), inputs=[{}])


def test_two_step_runs_hold_the_run_together(run):
    first = Holder(lambda: run_share(run))
    assert first.got.wait(10)
    second = Holder(lambda: run_share(run), lock_timeout_ms=2000)
    assert second.got.wait(10), second.failed
    first.end()
    second.end()
    assert not first.failed and not second.failed


def test_run_share_reads_the_state(run):
    with transaction.atomic():
        assert run_share(run) == RunState.PENDING


def test_the_exclusive_lock_waits_for_a_step_run_holding_the_run(run):
    sharer = Holder(lambda: run_share(run))
    assert sharer.got.wait(10)
    operator = Holder(lambda: run_lock(run), lock_timeout_ms=300)
    operator.thread.join(10)
    assert operator.failed and isinstance(operator.failed[0], OperationalError)
    assert "lock timeout" in str(operator.failed[0])
    sharer.end()


def test_step_runs_after_a_waiting_exclusive_lock_queue_behind_it(run):
    # no step run slips past a stop waiting for the run: the stop goes first
    sharer = Holder(lambda: run_share(run))
    assert sharer.got.wait(10)
    operator = Holder(lambda: run_lock(run))
    assert until(lambda: waiting("advisory") == 1)
    late = Holder(lambda: run_share(run), lock_timeout_ms=300)
    late.thread.join(10)
    assert late.failed and "lock timeout" in str(late.failed[0])
    assert not operator.got.is_set()
    sharer.end()
    assert operator.got.wait(10)
    operator.end()
    assert not operator.failed


def test_the_chain_lock_is_taken_in_turn(run):
    first = Holder(lambda: (run_share(run), batch_head(run)))
    assert first.got.wait(10)
    second = Holder(lambda: (run_share(run), batch_head(run)), lock_timeout_ms=300)
    second.thread.join(10)
    assert second.failed and "lock timeout" in str(second.failed[0])
    first.end()


def test_the_chain_lock_leaves_rows_referring_to_the_run_alone(run):
    # FOR NO KEY UPDATE: a row that refers to the run (a key-share lock of
    # its row) goes in while a step run holds the chain
    holder = Holder(lambda: (run_share(run), batch_head(run)))
    assert holder.got.wait(10)

    def refer():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = 2000")
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            WorkItem.objects.create(run=run, step=run.version.steps.get())

    referrer = Holder(refer)
    assert referrer.got.wait(10), referrer.failed
    referrer.end()
    holder.end()
    assert not referrer.failed
