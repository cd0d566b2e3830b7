"""The statement count of one API trigger, pinned so that it cannot silently grow
(issue 19: the trigger's cost is its statements; the bar is trigger >= 50% of a bare
authenticated endpoint)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.models import Run, StepRun, WorkItem
from tests.factories import make_user

from .conftest import client_for
from .test_trigger import post

# the token; the automation with its api trigger, latest published version and
# that version's first step (one SELECT); then the write (runs.services.start_write):
# on SQLite the run number, run (with its chain head), item, ledger event, step
# run and commit, with the ORM broker's task row in the same transaction; on
# PostgreSQL one statement that commits alone (Redis gets the task after it), or
# with the ORM broker BEGIN, that statement, the task row and the COMMIT. No re-read for
# the answer. SQLite counts its BEGIN IMMEDIATE and busy_timeout pragmas as
# statements too.
MAX_STATEMENTS = {"sqlite": 11, "postgresql": 3}


@pytest.mark.django_db(transaction=True)
def test_one_trigger_stays_within_its_statement_count(automation, settings):
    admin = make_user("root", is_superuser=True)
    client = client_for(admin, token=True)
    slug = automation().slug
    # the first run of an install also creates the run-number counter
    assert post(client, slug, {"inputs": [{"n": 0}]}).status_code == 202
    with CaptureQueriesContext(connection) as queries:
        response = post(client, slug, {"inputs": [{"n": 1}, {"n": 2}]})
    assert response.status_code == 202
    run = Run.objects.get(pk=response.json()["id"])
    assert run.number == 2 and WorkItem.objects.filter(run=run).count() == 2
    assert StepRun.objects.filter(run=run).count() == 1
    statements = [q["sql"] for q in queries.captured_queries]
    task_row = 1 if settings.Q_CLUSTER.get("orm") else 0
    commit = 2 * task_row if connection.vendor == "postgresql" else 0  # BEGIN, COMMIT
    ceiling = MAX_STATEMENTS[connection.vendor] + task_row + commit
    assert len(statements) <= ceiling, "\n".join(statements)
