"""Every legal transition of every state machine, and every illegal one refused."""

import threading

import pytest
from django.db import connection, connections

from runs.machines import run_move, step_run_move, work_items_move
from runs.models import AuditEvent, Run, RunItem, StepRun, WorkItem
from runs.services import run_start
from runs.states import (
    RUN_TRANSITIONS,
    STEP_RUN_TRANSITIONS,
    WORK_ITEM_TRANSITIONS,
    IllegalTransition,
    RunState,
    StepRunState,
    WorkItemState,
)

RUN_PAIRS = [
    (frm, to) for to, froms in RUN_TRANSITIONS.items() for frm in sorted(froms)
]
RUN_ILLEGAL = [
    (frm, to)
    for to in RunState.values
    for frm in RunState.values
    if frm not in RUN_TRANSITIONS[to]
]
ITEM_PAIRS = [
    (f, t) for t, froms in WORK_ITEM_TRANSITIONS.items() for f in sorted(froms)
]
ITEM_ILLEGAL = [
    (f, t)
    for t in WorkItemState.values
    for f in WorkItemState.values
    if f not in WORK_ITEM_TRANSITIONS[t]
]
STEP_RUN_PAIRS = [
    (f, t) for t, froms in STEP_RUN_TRANSITIONS.items() for f in sorted(froms)
]
STEP_RUN_ILLEGAL = [
    (f, t)
    for t in StepRunState.values
    for f in StepRunState.values
    if f not in STEP_RUN_TRANSITIONS[t]
]


@pytest.fixture
def run(automation):
    return run_start(automation=automation("builtin.echo"))


def _events(run):
    return AuditEvent.objects.filter(run=run).count()


@pytest.mark.parametrize("frm,to", RUN_PAIRS)
def test_run_legal_transition(run, user, frm, to):
    Run.objects.filter(pk=run.pk).update(state=frm)
    before = _events(run)
    left = run_move(run, to, actor=user, reason="because")
    run.refresh_from_db()
    assert left == frm and run.state == to
    event = AuditEvent.objects.filter(run=run).order_by("-seq").first()
    assert _events(run) == before + 1
    assert (event.before, event.after["state"], event.actor, event.reason) == (
        {"state": frm},
        to,
        user,
        "because",
    )


@pytest.mark.parametrize("frm,to", RUN_ILLEGAL)
def test_run_illegal_transition_is_refused(run, frm, to):
    Run.objects.filter(pk=run.pk).update(state=frm)
    before = _events(run)
    with pytest.raises(IllegalTransition, match=f"cannot go from {frm} to {to}"):
        run_move(run, to)
    run.refresh_from_db()
    assert run.state == frm
    assert _events(run) == before


def test_run_transition_sets_timestamps(run):
    run_move(run, RunState.RUNNING)
    run.refresh_from_db()
    assert run.started_at and run.completed_at is None
    run_move(run, RunState.COMPLETED)
    run.refresh_from_db()
    assert run.completed_at >= run.created_at and run.lead_time_seconds >= 0


def _item(run, state):
    item = WorkItem.objects.filter(run=run).first()
    token = (
        "00000000-0000-0000-0000-000000000001"
        if state == WorkItemState.IN_PROGRESS
        else None
    )
    WorkItem.objects.filter(pk=item.pk).update(state=state, lease_token=token)
    return item


@pytest.mark.parametrize("frm,to", ITEM_PAIRS)
def test_work_item_legal_transition(run, frm, to):
    item = _item(run, frm)
    updates = (
        {"lease_token": "00000000-0000-0000-0000-000000000002"}
        if to == WorkItemState.IN_PROGRESS
        else {}
    )
    assert work_items_move(run, [item.pk], to, updates=updates) == 1
    item.refresh_from_db()
    assert item.state == to
    assert (item.lease_token is None) == (to != WorkItemState.IN_PROGRESS)


@pytest.mark.parametrize("frm,to", ITEM_ILLEGAL)
def test_work_item_illegal_transition_is_refused(run, frm, to):
    item = _item(run, frm)
    updates = (
        {"lease_token": "00000000-0000-0000-0000-000000000002"}
        if to == WorkItemState.IN_PROGRESS
        else {}
    )
    with pytest.raises(IllegalTransition, match=f"work items cannot move to {to}"):
        work_items_move(run, [item.pk], to, updates=updates)
    item.refresh_from_db()
    assert item.state == frm


def test_work_item_move_is_all_or_nothing(run, automation):
    run = run_start(automation=automation("builtin.echo"), inputs=[{}, {}, {}])
    a, b, c = WorkItem.objects.filter(run=run).order_by("id")
    WorkItem.objects.filter(pk=c.pk).update(state=WorkItemState.DONE)
    with pytest.raises(IllegalTransition, match=f"{c.pk} is done"):
        work_items_move(run, [a.pk, b.pk, c.pk], WorkItemState.FAILED)
    assert set(WorkItem.objects.filter(run=run).values_list("state", flat=True)) == {
        WorkItemState.PENDING,
        WorkItemState.DONE,
    }


def test_work_item_move_refuses_items_of_another_run(run, automation):
    other = run_start(automation=automation("builtin.echo"))
    foreign = WorkItem.objects.get(run=other)
    with pytest.raises(IllegalTransition, match="not in run"):
        work_items_move(run, [foreign.pk], WorkItemState.FAILED)
    foreign.refresh_from_db()
    assert foreign.state == WorkItemState.PENDING


def test_work_item_move_writes_its_run_items_in_the_same_transaction(run):
    from runs.machines.work_item import LeaseLost

    item = _item(run, WorkItemState.IN_PROGRESS)
    with pytest.raises(LeaseLost):
        work_items_move(
            run,
            [item.pk],
            WorkItemState.DONE,
            fence_token="00000000-0000-0000-0000-00000000ffff",
        )
    item.refresh_from_db()
    assert item.state == WorkItemState.IN_PROGRESS
    assert not RunItem.objects.filter(run=run).exists()


@pytest.mark.parametrize("frm,to", STEP_RUN_PAIRS)
def test_step_run_legal_transition(run, frm, to):
    step_run = StepRun.objects.get(run=run)
    StepRun.objects.filter(pk=step_run.pk).update(state=frm)
    assert step_run_move(step_run, to) is True
    step_run.refresh_from_db()
    assert step_run.state == to


@pytest.mark.parametrize("frm,to", STEP_RUN_ILLEGAL)
def test_step_run_illegal_transition_is_refused(run, frm, to):
    step_run = StepRun.objects.get(run=run)
    StepRun.objects.filter(pk=step_run.pk).update(state=frm)
    with pytest.raises(IllegalTransition):
        step_run_move(step_run, to)
    step_run.refresh_from_db()
    assert step_run.state == frm


def test_step_run_move_with_a_stale_lease_changes_nothing(run):
    step_run = StepRun.objects.get(run=run)
    StepRun.objects.filter(pk=step_run.pk).update(
        state=StepRunState.RUNNING, lease_token="00000000-0000-0000-0000-000000000001"
    )
    moved = step_run_move(
        step_run,
        StepRunState.FINISHED,
        lease_token="00000000-0000-0000-0000-000000000009",
    )
    step_run.refresh_from_db()
    assert moved is False and step_run.state == StepRunState.RUNNING


@pytest.mark.django_db(transaction=True)
def test_concurrent_transitions_of_one_run_exactly_one_wins(automation):
    """Two threads stop one running run at once: one wins, the other is refused."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers by design")
    run = run_start(automation=automation("builtin.echo"))
    Run.objects.filter(pk=run.pk).update(state=RunState.RUNNING)
    barrier = threading.Barrier(2)
    outcomes = []

    def attempt(target):
        try:
            barrier.wait()
            run_move(Run.objects.get(pk=run.pk), target)
            outcomes.append(("won", target))
        except IllegalTransition:
            outcomes.append(("refused", target))
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=attempt, args=(t,))
        for t in (RunState.STOPPING, RunState.COMPLETED)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o for o, _ in outcomes) == ["refused", "won"]
    winner = next(t for o, t in outcomes if o == "won")
    run.refresh_from_db()
    assert run.state == winner
    transitions = AuditEvent.objects.filter(run=run, before__state=RunState.RUNNING)
    assert transitions.count() == 1
