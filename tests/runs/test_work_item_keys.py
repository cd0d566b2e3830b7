"""A work item's run and step exist, as long as the item does: written as it goes
in, whatever writes it (an INSERT, the engine's COPY), kept when its run or step
would be deleted, and when two transactions race an insert and a delete.

SQLite keeps a foreign key per column. On PostgreSQL the keys to the run and to
the step are checked once per statement, not once per row (migration 0026):
the same rules, which these tests pin on both."""

import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from automations.models import Step
from runs.engine.bulk import PendingItems
from runs.models import Run, StepRun, WorkItem
from runs.services import run_start
from tests.runs.locks import Holder, end

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run(automation):
    return run_start(automation=automation("builtin.echo"), inputs=[{}])


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's key checks")


def _step(run):
    return run.version.steps.get()


def _insert(how, *, run_id, step_id):
    """One new item of (run_id, step_id) in a transaction of its own."""
    with transaction.atomic():
        if how == "insert":
            WorkItem.objects.create(run_id=run_id, step_id=step_id)
        else:  # the engine's bulk write: COPY on PostgreSQL
            items = PendingItems(run_id=run_id, step_id=step_id, now=timezone.now())
            items.add({"n": 1}, "a")
            items.add({"n": 2}, "b")
            items.insert()


@pytest.mark.parametrize("how", ["insert", "bulk"])
def test_an_item_of_no_run_is_refused(run, how):
    nowhere = uuid.uuid4()
    with pytest.raises(IntegrityError):
        _insert(how, run_id=nowhere, step_id=_step(run).pk)
    assert not WorkItem.objects.filter(run_id=nowhere).exists()


@pytest.mark.parametrize("how", ["insert", "bulk"])
def test_an_item_of_no_step_is_refused(run, how):
    before = WorkItem.objects.count()
    with pytest.raises(IntegrityError):
        _insert(how, run_id=run.pk, step_id=Step.objects.order_by("-pk")[0].pk + 1)
    assert WorkItem.objects.count() == before


@pytest.mark.parametrize("how", ["insert", "bulk"])
def test_items_of_existing_runs_and_steps_go_in(run, automation, how):
    other = run_start(automation=automation("builtin.echo"), inputs=[{}])
    _insert(how, run_id=run.pk, step_id=_step(run).pk)
    _insert(how, run_id=other.pk, step_id=_step(other).pk)
    assert WorkItem.objects.filter(run__in=[run, other]).count() == (
        4 if how == "insert" else 6
    )


@pytest.mark.parametrize("column", ["run_id", "step_id"])
def test_an_item_moved_to_no_run_or_step_is_refused(run, column):
    item = WorkItem.objects.get(run=run)
    value = {"run_id": uuid.uuid4(), "step_id": _step(run).pk + 1000}[column]
    with pytest.raises(IntegrityError), transaction.atomic():
        WorkItem.objects.filter(pk=item.pk).update(**{column: value})
    assert WorkItem.objects.filter(pk=item.pk, run=run, step=_step(run)).exists()


@pytest.mark.postgres
def test_an_items_run_never_changes_on_postgresql(postgresql, run, automation):
    """Stricter than a foreign key, which would let an item move to another run
    that exists: its run and step are written once (by the engine), and the
    per-statement check of new rows would not see an UPDATE."""
    other = run_start(automation=automation("builtin.echo"), inputs=[{}])
    item = WorkItem.objects.get(run=run)
    with pytest.raises(IntegrityError), transaction.atomic():
        WorkItem.objects.filter(pk=item.pk).update(run_id=other.pk)
    item.note = "saved whole: run and step unchanged"
    item.save()  # sets every column, the same run and step: allowed
    assert WorkItem.objects.get(pk=item.pk).run_id == run.pk


def _delete_sql(model, pk) -> None:
    """A DELETE of one row as SQL, past Django's own PROTECT and CASCADE."""
    value = model._meta.pk.get_db_prep_value(pk, connection)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [value])


def test_a_run_with_items_is_not_deleted(run):
    # what refers to the run but its items goes first: their own keys are not
    # what this pins
    with pytest.raises(IntegrityError), transaction.atomic():
        for model in (StepRun, run.audit_events.model):
            model.objects.filter(run=run).delete()
        _delete_sql(Run, run.pk)
    assert Run.objects.filter(pk=run.pk).exists()


def test_a_step_with_items_is_not_deleted(run):
    step = _step(run)
    with pytest.raises(IntegrityError), transaction.atomic():
        StepRun.objects.filter(run=run).delete()
        _delete_sql(Step, step.pk)
    assert Step.objects.filter(pk=step.pk).exists()


def test_a_run_deleted_with_its_items_goes(run):
    Run.objects.filter(pk=run.pk).delete()
    assert not Run.objects.filter(pk=run.pk).exists()
    assert not WorkItem.objects.filter(run_id=run.pk).exists()


@pytest.mark.postgres
@pytest.mark.parametrize("first", ["insert", "delete"])
def test_an_insert_and_a_delete_of_its_run_racing_leave_no_orphan(
    postgresql, run, first
):
    """Whichever goes first, one of them fails and nothing is left half-done:
    the run with both items, or neither. (Which one fails depends on when the
    item's key is checked, at its statement or at its commit.)"""

    def insert():
        WorkItem.objects.create(run_id=run.pk, step_id=_step(run).pk)

    def delete():
        Run.objects.filter(pk=run.pk).delete()

    order = [insert, delete] if first == "insert" else [delete, insert]
    holders = [Holder(order[0])]
    assert holders[0].got.wait(10), holders[0].failed
    holders.append(Holder(order[1]))
    holders[1].got.wait(1)  # it may be waiting for the first one's lock
    end(*holders)
    failed = [exc for holder in holders for exc in holder.failed]
    assert len(failed) == 1 and isinstance(failed[0], IntegrityError), failed
    left = (
        Run.objects.filter(pk=run.pk).exists(),
        WorkItem.objects.filter(run_id=run.pk).count(),
    )
    assert left in [(True, 2), (False, 0)]
