"""The step runs of a run take turns for its chain (`batch_head`, the run row FOR
NO KEY UPDATE), so what a commit does under that lock bounds the run's
throughput (PostgreSQL). The new items' keys are checked as the items go in,
before that lock: to their run and step by the COPY itself (migration 0026), to
their parent by its key made immediate. A key-share lock of the run row taken
under the lock of old (the row FOR UPDATE) deadlocked with a timeout holding the
row (tests/runs/test_lock_order.py); the chain lock leaves key-share locks
alone, and `run_lock` holders wait for the committing step runs."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.engine.commit import immediate_keys_sql
from runs.machines import run_move
from runs.models import WorkItem
from runs.services import run_start
from runs.states import RunState

from .runners import running_runner

pytestmark = pytest.mark.django_db


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite checks its keys in process, under its one write lock")


def test_the_parent_key_only_is_made_immediate(postgres_only):
    sql = immediate_keys_sql()
    assert sql.startswith("SET CONSTRAINTS ") and sql.endswith(" IMMEDIATE")
    names = sql.removeprefix("SET CONSTRAINTS ").removesuffix(" IMMEDIATE")
    keys = [name.strip('"') for name in names.split(", ")]
    assert len(keys) == 1 and "_parent_id_" in keys[0], keys


def test_a_commit_checks_those_keys_before_it_locks_the_run(postgres_only, automation):
    auto = automation({"action": "test.count", "batch_size": 5}, "builtin.echo")
    run = run_start(automation=auto, inputs=[{}] * 10)
    run_move(run, RunState.RUNNING, actor_label="engine", verb="run.started")
    runner = running_runner(run)
    results = runner._process(runner._claim())
    with CaptureQueriesContext(connection) as queries:
        runner._commit(results, claim_next=True)
    sql = [q["sql"] for q in queries.captured_queries]
    immediate = sql.index(immediate_keys_sql())
    new_items = next(i for i, s in enumerate(sql) if 'COPY "runs_workitem"' in s)
    locked = next(i for i, s in enumerate(sql) if 'FROM "runs_run" WHERE' in s)
    assert immediate < new_items < locked, sql
    assert WorkItem.objects.filter(run=run, parent__isnull=False).count() == 5
