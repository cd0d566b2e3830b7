"""Two step runs of a run commit in turn (the run row is their lock), so what a
commit does under that lock bounds the run's throughput (PostgreSQL). The new
items' keys to their step and parent are checked as the items go in, before
the lock; the key to the run is left to the COMMIT, under it: checked before,
its key-share lock of the run row deadlocked with a timeout holding the row
(tests/runs/test_lock_order.py)."""

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


def test_the_step_and_parent_keys_only_are_made_immediate(postgres_only):
    sql = immediate_keys_sql()
    assert sql.startswith("SET CONSTRAINTS ") and sql.endswith(" IMMEDIATE")
    names = sql.removeprefix("SET CONSTRAINTS ").removesuffix(" IMMEDIATE")
    keys = sorted(name.strip('"') for name in names.split(", "))
    assert len(keys) == 2, keys
    assert "_parent_id_" in keys[0] and "_step_id_" in keys[1], keys
    assert all("runs_run" not in key for key in keys), keys


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
