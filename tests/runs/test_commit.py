"""The batch commit is the engine's hot path: its statements do not grow with the
batch (rows go in by `executemany` on SQLite, COPY on PostgreSQL), and a refactor
that adds one shows here."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.machines import run_move
from runs.services import run_start
from runs.states import RunState

from .runners import running_runner

# Both: the next step's lookup (once per step run). SQLite: the run row (locked
# first), the items' settle, the outputs' and run items' inserts, the run's head
# and counters, the step run's count, the next step's start (its lock, its count
# of step runs and of due items, the new step run) and the next batch's claim.
# PostgreSQL: the run held shared, the new items' keys to step and parent made
# immediate, the outputs' COPY, one statement for the settle, the step run's count
# and the claim, then the chain lock (the run row), the run items' COPY, the
# run's head and counters, and the same four of the next step's start (after the
# commit: it locks the run exclusively).
# On the ORM broker also the new step run's task row (written in the next
# step's start, not in a transaction of its own after it).
COMMIT_STATEMENTS = {"sqlite": 12, "postgresql": 12}


def _statements(automation, batch: int) -> int:
    auto = automation({"action": "test.count", "batch_size": batch}, "builtin.echo")
    run = run_start(automation=auto, inputs=[{}] * (batch * 2))
    run_move(run, RunState.RUNNING, actor_label="engine", verb="run.started")
    runner = running_runner(run)
    results = runner._process(runner._claim())
    assert len(results) == batch
    with CaptureQueriesContext(connection) as queries:
        claimed = runner._commit(results, claim_next=True)
    assert len(claimed) == batch
    return len([q for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]])


@pytest.mark.parametrize("batch", [5, 50])
def test_a_batch_commit_runs_a_fixed_number_of_statements(automation, batch, settings):
    task_row = 1 if settings.Q_CLUSTER.get("orm") else 0
    expected = COMMIT_STATEMENTS[connection.vendor] + task_row
    assert _statements(automation, batch) == expected
