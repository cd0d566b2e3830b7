"""Stop semantics (issue 17): items a stop settles get a `skipped` run item with the
stop as cause; `ctx.should_stop()` is true from the moment any stop is asked; a
cancelled run that left failed items still waits for someone and is notified.
Archiving an active run is allowed and the run keeps running to its end."""

import pytest
from django.core import mail

import tests.actions as test_actions
from runs.engine import run_until_idle
from runs.models import RunItem, WorkItem
from runs.selectors import dashboard
from runs.services import run_archive, run_start, run_stop
from runs.states import IllegalTransition, RunItemOutcome, RunState, WorkItemState
from tests.factories import make_user


def drain(run):
    run_until_idle(run)
    run.refresh_from_db()
    return run


@pytest.mark.parametrize("pending_items", ["failed", "done"])
def test_pending_items_settled_by_a_stop_get_a_skipped_run_item(
    automation, user, pending_items
):
    auto = automation("builtin.echo", "builtin.echo")
    run = run_start(automation=auto, inputs=[{"n": 1}, {"n": 2}])
    run_stop(run, actor=user, pending_items=pending_items)
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    rows = list(RunItem.objects.filter(run=run).order_by("seq"))
    assert [r.outcome for r in rows] == [RunItemOutcome.SKIPPED] * 2
    assert all("stopped by alice" in r.failure_cause for r in rows)
    assert {r.work_item_id for r in rows} == set(
        WorkItem.objects.filter(run=run).values_list("pk", flat=True)
    )
    expected = WorkItemState.DONE if pending_items == "done" else WorkItemState.FAILED
    assert set(WorkItem.objects.filter(run=run).values_list("state", flat=True)) == {
        expected
    }


def test_items_a_stop_did_not_settle_get_no_skipped_run_item(automation):
    auto = automation("builtin.echo")
    run = drain(run_start(automation=auto, inputs=[{"n": 1}]))
    with pytest.raises(IllegalTransition):
        run_stop(run)
    assert list(RunItem.objects.filter(run=run).values_list("outcome", flat=True)) == [
        RunItemOutcome.SUCCEEDED
    ]


def test_should_stop_is_true_once_a_stop_is_asked(automation, monkeypatch):
    monkeypatch.setattr("runs.engine.items.STOP_CHECK_SECONDS", 0)
    auto = automation({"action": "test.stop_then_look", "batch_size": 10})
    run = drain(run_start(automation=auto, inputs=[{"stop": True}, {"n": 2}]))
    looked = [k for k in test_actions.calls if k.startswith("should_stop:")]
    assert [test_actions.calls[k] for k in looked] == [1]
    # "complete": the batch in hand still finished, the run then cancelled
    assert run.state == RunState.CANCELLED
    assert WorkItem.objects.filter(run=run, state=WorkItemState.DONE).count() == 2


def test_should_stop_is_false_while_no_stop_is_asked(automation, monkeypatch):
    monkeypatch.setattr("runs.engine.items.STOP_CHECK_SECONDS", 0)
    auto = automation("test.stop_then_look")
    run = drain(run_start(automation=auto, inputs=[{"n": 1}]))
    assert run.state == RunState.COMPLETED
    assert [v for k, v in test_actions.calls.items() if "should_stop" in k] == [0]


def test_a_cancelled_run_with_failed_items_waits_and_is_notified(
    automation, settings, django_capture_on_commit_callbacks
):
    settings.RUNS_ADMIN_BASE_URL = "https://runs.example.com/"
    settings.RUNS_NOTIFY_DEFAULT_MODE = "immediate"
    # an owner is told what they may see (a Viewer)
    owner = make_user("olga", role="Viewer", email="olga@example.com")
    auto = automation("builtin.echo", slug="stopped-with-failures")
    auto.owners.add(owner)
    failed = run_start(automation=auto, inputs=[{"n": 1}])
    clean = run_start(automation=auto, inputs=[{"n": 1}])
    with django_capture_on_commit_callbacks(execute=True):
        run_stop(failed, pending_items="failed")
        run_stop(clean, pending_items="done")
    failed.refresh_from_db()
    clean.refresh_from_db()
    assert (failed.state, failed.failed_items) == (RunState.CANCELLED, 1)
    assert (clean.state, clean.failed_items) == (RunState.CANCELLED, 0)
    assert [m.subject for m in mail.outbox] == [
        f"[Runs] Stopped With Failures: run #{failed.number} cancelled"
    ]
    assert [r.pk for r in dashboard().waiting] == [failed.pk]


def test_an_active_run_can_be_archived_and_keeps_running(automation, user):
    auto = automation("builtin.echo", "builtin.echo")
    run = run_start(automation=auto, inputs=[{"n": 1}])
    run_archive(run, actor=user, reason="noise")
    run.refresh_from_db()
    assert run.archived and run.state == RunState.PENDING
    drain(run)
    assert run.state == RunState.COMPLETED and run.archived


def test_archiving_an_archived_run_is_still_refused(automation, user):
    run = run_start(automation=automation("builtin.echo"))
    run_archive(run, actor=user)
    with pytest.raises(IllegalTransition, match="already archived"):
        run_archive(run, actor=user)
