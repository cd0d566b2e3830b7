"""Two clusters racing for one free slot (PostgreSQL): exactly one run starts.

Each side has its own connection (a thread), as two `qcluster` processes do; a
barrier lets them decide at the same moment. Without the automation row lock both
would count the same free slot and both start a run.
"""

import threading

import pytest
from django.db import connection, connections

from runs.engine import run_until_idle
from runs.engine.admission import runs_admit
from runs.models import Run, StepRun
from runs.services import run_start
from runs.states import RunState
from tests.factories import make_automation

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(*functions):
    barrier = threading.Barrier(len(functions))
    errors, results = [], []

    def side(function):
        try:
            barrier.wait(timeout=30)
            results.append(function())
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=side, args=(f,)) for f in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a side is stuck"
    assert not errors, errors
    return results


def _running(auto) -> int:
    return Run.objects.filter(automation=auto, state=RunState.RUNNING).count()


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's single writer serialises every transaction")


@pytest.mark.parametrize("attempt", range(5))
def test_two_clusters_admitting_at_once_start_one_run(postgres_only, attempt):
    auto = make_automation("builtin.echo", max_concurrent_runs=1)
    holder = run_start(automation=auto)
    # two left waiting when the slot frees: without the lock each side would
    # start one (SKIP LOCKED alone only keeps them off the same run)
    waiting = [run_start(automation=auto) for _ in range(4)]
    run_until_idle(holder)  # its end admitted waiting[0]
    run_until_idle(waiting[0])  # and that one's end waiting[1]
    # the slot is taken again: free it behind the engine's back, so both sides
    # find it free and race for it
    Run.objects.filter(pk=waiting[1].pk).update(state=RunState.COMPLETED)
    admitted = _race(lambda: runs_admit(auto.pk), lambda: runs_admit(auto.pk))
    assert sorted(len(a) for a in admitted) == [0, 1]
    assert _running(auto) == 1
    assert Run.objects.get(pk=waiting[2].pk).state == RunState.RUNNING
    assert StepRun.objects.filter(run=waiting[2]).count() == 1
    assert Run.objects.get(pk=waiting[3].pk).state == RunState.PENDING


@pytest.mark.parametrize("attempt", range(5))
def test_a_new_run_and_a_run_ending_race_for_one_slot(postgres_only, attempt):
    """One cluster ends the run holding the slot (admitting the oldest waiting
    run), another starts a new run at the same moment: one of them runs."""
    auto = make_automation("builtin.echo", max_concurrent_runs=1)
    holder = run_start(automation=auto)
    waiting = run_start(automation=auto)
    results = _race(
        lambda: run_until_idle(holder),
        lambda: run_start(automation=auto, inputs=[{"n": 1}]),
    )
    new = next(r for r in results if isinstance(r, Run))
    assert Run.objects.get(pk=holder.pk).state == RunState.COMPLETED
    assert _running(auto) == 1
    # the oldest waits longest: whichever side decided, the older run starts
    assert Run.objects.get(pk=waiting.pk).state == RunState.RUNNING
    assert Run.objects.get(pk=new.pk).state == RunState.PENDING


@pytest.mark.parametrize("attempt", range(3))
def test_many_new_runs_at_once_never_exceed_the_limit(postgres_only, attempt):
    auto = make_automation("builtin.echo", max_concurrent_runs=2)
    _race(*(lambda: run_start(automation=auto) for _ in range(6)))
    assert _running(auto) == 2
    assert Run.objects.filter(automation=auto, state=RunState.PENDING).count() == 4


@pytest.mark.parametrize("attempt", range(4))
def test_an_end_a_new_run_and_a_stop_of_a_waiting_run_at_once_deadlock_nothing(
    postgres_only, attempt
):
    """The lock order: the run that moved, its automation row, waiting runs (SKIP
    LOCKED). A stop locks only the waiting run; a new run is inserted before the
    automation row is locked. Three sides at once: none waits on another for
    ever (PostgreSQL would abort one with a deadlock error)."""
    from runs.services import run_stop

    auto = make_automation("builtin.echo", max_concurrent_runs=1)
    holder = run_start(automation=auto, inputs=[{"n": i} for i in range(50)])
    stopped, waiting = run_start(automation=auto), run_start(automation=auto)
    _race(
        lambda: run_until_idle(holder),
        lambda: run_start(automation=auto),
        lambda: run_stop(Run.objects.get(pk=stopped.pk)),
    )
    assert Run.objects.get(pk=holder.pk).state == RunState.COMPLETED
    # the stop came first (the run never started), was passed over while it held
    # the run (SKIP LOCKED), or came just after the run was admitted (it started,
    # was stopped and its end admitted the next): it ends cancelled either way
    stopped = Run.objects.get(pk=stopped.pk)
    assert stopped.state == RunState.CANCELLED
    if stopped.started_at is None:
        assert not StepRun.objects.filter(run=stopped).exists()
    assert _running(auto) == 1
    started = Run.objects.get(automation=auto, state=RunState.RUNNING)
    assert started.pk == waiting.pk


# run_start of an automation with a limit, pinned so that admission cannot silently
# grow: run number, run, items and its event as without a limit; then the automation
# row lock, the count of occupying runs, the waiting runs, and for the one admitted
# its move (lock, update, event, outbox) and first step run. SQLite counts its
# BEGIN IMMEDIATE and pragmas too.
ADMITTED_STATEMENTS = {"sqlite": 39, "postgresql": 32}
WAITING_STATEMENTS = {"sqlite": 18, "postgresql": 16}


def test_run_start_with_a_limit_stays_within_its_statement_count():
    from django.test.utils import CaptureQueriesContext

    auto = make_automation("builtin.echo", max_concurrent_runs=2)
    run_start(automation=auto)  # the first run also creates the run-number counter
    with CaptureQueriesContext(connection) as admitted:
        assert run_start(automation=auto).state == RunState.RUNNING
    with CaptureQueriesContext(connection) as waiting:
        assert run_start(automation=auto).state == RunState.PENDING
    sql = [q["sql"] for q in admitted.captured_queries]
    assert len(sql) <= ADMITTED_STATEMENTS[connection.vendor], "\n".join(sql)
    sql = [q["sql"] for q in waiting.captured_queries]
    assert len(sql) <= WAITING_STATEMENTS[connection.vendor], "\n".join(sql)
