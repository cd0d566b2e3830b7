"""Two step runs of one run commit in turn (the run row is their lock), but a
commit's new items are written and checked while the other holds that lock
(PostgreSQL): the next step's items go in, with their foreign-key checks, before
the run row is locked, and the lock (FOR NO KEY UPDATE) lets those checks (FOR
KEY SHARE of the run row) through. Before, both waited: the checks were
deferred to the COMMIT, under the lock, and FOR UPDATE blocked them."""

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from automations.actions import get_action
from runs.engine import StepRunner
from runs.ledger import batch_head
from runs.machines import run_move, step_run_move
from runs.models import StepRun, WorkItem
from runs.services import run_start
from runs.states import RunState, StepRunState
from tests.factories import make_automation

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's single writer serialises every transaction")


def _other_connection():
    params = connection.get_connection_params()
    return psycopg.connect(**params, autocommit=False)


def test_a_new_items_key_check_does_not_wait_for_a_commit_holding_the_run(
    postgres_only,
):
    auto = make_automation("builtin.echo", "builtin.echo")
    run = run_start(automation=auto, inputs=[{}])
    step = auto.latest_published_version().steps.order_by("order").last()
    with transaction.atomic():
        batch_head(run)  # this side's commit holds the run row
        with _other_connection() as other:
            other.execute("SET lock_timeout = '2s'")
            other.execute("SET CONSTRAINTS ALL IMMEDIATE")
            # the other step run's new item: its check of the run row passes now
            other.execute(
                "INSERT INTO runs_workitem (run_id, step_id, state, subject, "
                "payload, attempts, available_at, failure_type, failure_code, "
                "failure_message, note, approvers, created_at, updated_at) "
                "VALUES (%s, %s, 'pending', '', '{}', 0, now(), '', '', '', '', "
                "'[]', now(), now())",
                [run.pk, step.pk],
            )
            other.rollback()
    assert WorkItem.objects.filter(run=run).count() == 1


def test_a_commit_checks_its_new_items_before_it_locks_the_run(postgres_only):
    auto = make_automation({"action": "test.count", "batch_size": 5}, "builtin.echo")
    run = run_start(automation=auto, inputs=[{}] * 10)
    run_move(run, RunState.RUNNING, actor_label="engine", verb="run.started")
    runner = StepRunner(StepRun.objects.get(run=run).pk)
    step_run_move(
        runner.step_run,
        StepRunState.RUNNING,
        updates={
            "lease_token": runner.token,
            "lease_expires_at": timezone.now() + timezone.timedelta(seconds=30),
        },
    )
    runner.spec = get_action("test.count")
    results = runner._process(runner._claim())
    with CaptureQueriesContext(connection) as queries:
        runner._commit(results, claim_next=True)
    sql = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    immediate = sql.index("SET CONSTRAINTS ALL IMMEDIATE")
    new_items = next(i for i, s in enumerate(sql) if 'COPY "runs_workitem"' in s)
    locked = next(i for i, s in enumerate(sql) if 'FROM "runs_run" WHERE' in s)
    assert immediate < new_items < locked, sql
    assert sql[locked].endswith("FOR NO KEY UPDATE"), sql[locked]
    assert WorkItem.objects.filter(run=run, parent__isnull=False).count() == 5
