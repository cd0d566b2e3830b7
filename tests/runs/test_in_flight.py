"""Items in flight (a step's max_in_flight): one step run calls its action on up to
N items at once, and every rule of one item at a time holds."""

import threading

import pytest

import tests.actions as test_actions
from runs.engine import run_until_idle
from runs.ledger import idempotency_key
from runs.models import ActionResult, RunItem, StepRun, WorkItem
from runs.services import run_start
from runs.states import RunItemOutcome, RunState, WorkItemState


def together(*, barrier=None, **step):
    """A one-step automation on test.together; its calls meet at a barrier of
    `barrier` parties (all of them out at once) when given."""
    parameters = dict(step.pop("parameters", {}))
    if barrier:
        test_actions.barriers["b"] = threading.Barrier(
            barrier, timeout=test_actions.WAIT_SECONDS
        )
        parameters["barrier"] = "b"
    return {"action": "test.together", "parameters": parameters, **step}


def drain(auto, inputs):
    run = run_start(automation=auto, inputs=inputs)
    run_until_idle(run)
    run.refresh_from_db()
    return run


def by_do(run):
    """(payload `do`, state, failure code) of each of the run's items."""
    return sorted(
        (i.payload.get("do", ""), i.state, i.failure_code)
        for i in WorkItem.objects.filter(run=run)
    )


def test_one_step_run_has_n_calls_out_at_once(automation):
    # the barrier opens only once 4 calls are out together: one at a time, every
    # call would fail with a broken barrier
    auto = automation(together(barrier=4, max_in_flight=4, batch_size=8))
    run = drain(auto, [{"n": n} for n in range(8)])
    assert run.state == RunState.COMPLETED
    assert StepRun.objects.filter(run=run).count() == 1
    assert set(RunItem.objects.filter(run=run).values_list("outcome", flat=True)) == {
        RunItemOutcome.SUCCEEDED
    }


def test_one_run_item_and_one_key_per_attempt(automation):
    auto = automation(together(barrier=4, max_in_flight=4, batch_size=8))
    run = drain(auto, [{"n": n} for n in range(8)])
    items = WorkItem.objects.filter(run=run)
    expected = {idempotency_key(run.pk, i.pk, "test.together") for i in items}
    run_items = RunItem.objects.filter(run=run)
    assert run_items.count() == 8
    assert set(run_items.values_list("idempotency_key", flat=True)) == expected
    assert dict(test_actions.calls) == dict.fromkeys(expected, 1)
    # the journal, written on the step run's thread, holds each call once
    assert (
        set(
            ActionResult.objects.filter(run=run).values_list(
                "idempotency_key", flat=True
            )
        )
        == expected
    )
    assert run.actions_invoked == 8 and run.output_items == 8


def test_an_exception_in_one_item_touches_no_other(automation):
    auto = automation(together(barrier=4, max_in_flight=4, batch_size=4))
    run = drain(
        auto, [{"do": "raise"}, {"do": "business"}, {"do": "bad_return"}, {"do": ""}]
    )
    assert run.state == RunState.UNRESOLVED
    assert by_do(run) == [
        ("", WorkItemState.DONE, ""),
        ("bad_return", WorkItemState.FAILED, "application_error"),
        ("business", WorkItemState.FAILED, "not_eligible"),
        ("raise", WorkItemState.FAILED, "application_error"),
    ]
    assert RunItem.objects.filter(run=run).count() == 4
    assert RunItem.objects.filter(run=run, outcome="succeeded").count() == 1
    assert run.failed_items == 3


def test_a_call_past_the_item_timeout_fails_and_is_retried(automation):
    """The held call is abandoned after item_timeout_seconds: its item's attempt 1
    fails (the others are not held up), attempt 2 succeeds under the same key."""
    auto = automation(
        together(
            max_in_flight=4,
            batch_size=4,
            item_timeout_seconds=1,
            max_attempts=2,
            retry_backoff_seconds=0,
        )
    )
    run = drain(auto, [{"do": "hold", "first_only": True}, {}, {}, {}])
    assert run.state == RunState.COMPLETED
    held = WorkItem.objects.get(run=run, payload__do="hold")
    attempts = list(
        RunItem.objects.filter(work_item=held)
        .order_by("attempt")
        .values_list("attempt", "outcome", "idempotency_key", "failure_cause")
    )
    key = idempotency_key(run.pk, held.pk, "test.together")
    assert attempts == [
        (1, "failed", key, "TimeoutError: item took longer than 1s"),
        (2, "succeeded", key, ""),
    ]
    assert RunItem.objects.filter(run=run).count() == 5
    test_actions.event("hold").set()


def test_a_call_past_the_item_timeout_on_its_last_attempt_fails(automation):
    auto = automation(together(max_in_flight=2, batch_size=2, item_timeout_seconds=1))
    run = drain(auto, [{"do": "hold"}, {}])
    test_actions.event("hold").set()
    assert run.state == RunState.UNRESOLVED
    assert by_do(run) == [
        ("", WorkItemState.DONE, ""),
        ("hold", WorkItemState.FAILED, "application_error"),
    ]


def test_the_commit_interval_commits_a_prefix_and_each_item_once(automation, settings):
    """With RUNS_COMMIT_SECONDS 0 each round commits the calls it took (at least
    one) and leaves the rest claimed: every item is called and written once."""
    settings.RUNS_COMMIT_SECONDS = 0
    auto = automation(together(max_in_flight=4, batch_size=16))
    run = drain(auto, [{"n": n} for n in range(16)])
    assert run.state == RunState.COMPLETED
    assert StepRun.objects.filter(run=run).count() == 1
    keys = list(
        RunItem.objects.filter(run=run).values_list("idempotency_key", flat=True)
    )
    assert len(keys) == len(set(keys)) == 16
    assert set(test_actions.calls.values()) == {1}


@pytest.mark.django_db(transaction=True)
def test_leases_are_renewed_while_items_are_in_flight(automation, settings):
    """A heartbeat every third of the lease, from the step run's thread, while its
    calls are out (each call waits, on its own connection, to see it)."""
    settings.RUNS_LEASE_SECONDS = 3
    auto = automation(together(max_in_flight=2, batch_size=2))
    run = drain(auto, [{"do": "lease"}, {"do": "lease"}])
    assert run.state == RunState.COMPLETED
    assert StepRun.objects.get(run=run).items_processed == 2
    renewed = [
        output["renewed"]
        for result in ActionResult.objects.filter(run=run)
        for output in result.outputs
    ]
    assert renewed == [True, True]


@pytest.mark.django_db(transaction=True)
def test_terminate_fails_the_items_in_flight(automation):
    """The calls still out when the run is terminated are abandoned: their items
    fail "terminated", like those never started; a call that returns later
    changes nothing."""
    auto = automation(
        together(max_in_flight=4, batch_size=8, parameters={"step_runs": "terminate"})
    )
    run = drain(auto, [{"do": "stop"}] + [{"do": "hold"}] * 7)
    assert run.state == RunState.CANCELLED
    states = by_do(run)
    assert states[:7] == [("hold", WorkItemState.FAILED, "terminated")] * 7
    # the call that pressed terminate ended as it returned, or, when the step run
    # read the run's state before it saw the call return, as one in flight
    assert states[7] in (
        ("stop", WorkItemState.DONE, ""),
        ("stop", WorkItemState.FAILED, "terminated"),
    )
    assert RunItem.objects.filter(run=run, failure_cause="terminated").count() >= 7
    # the held calls return now; what they return is ignored
    held = sum(test_actions.calls.values()) - 1
    test_actions.event("hold").set()
    for thread in threading.enumerate():
        if thread.name.startswith("step-run-"):
            thread.join(timeout=test_actions.WAIT_SECONDS)
    assert test_actions.returned["hold"] == held >= 1
    assert RunItem.objects.filter(run=run).count() == 8
    assert by_do(run) == states


@pytest.mark.django_db(transaction=True)
def test_stop_complete_lets_the_items_in_flight_finish(automation):
    auto = automation(
        together(
            barrier=4,
            max_in_flight=4,
            batch_size=4,
            parameters={"step_runs": "complete", "pending_items": "failed"},
        )
    )
    run = drain(auto, [{"do": "stop"}] + [{"do": "after_stop"}] * 3 + [{}] * 4)
    assert run.state == RunState.CANCELLED
    # the four out when stop was pressed finished; the four pending were stopped
    assert by_do(run) == [("", WorkItemState.FAILED, "stopped")] * 4 + [
        ("after_stop", WorkItemState.DONE, "")
    ] * 3 + [("stop", WorkItemState.DONE, "")]
    assert RunItem.objects.filter(run=run, outcome="succeeded").count() == 4


def test_calls_leave_the_step_runs_thread_only_in_flight(automation):
    """max_in_flight 1 (the default) calls on the step run's own thread; more
    calls on the pool's."""
    one = drain(automation("test.thread"), [{}, {}])
    many = drain(automation({"action": "test.thread", "max_in_flight": 2}), [{}, {}])
    threads = {
        run.pk: {
            o["thread"].split("_")[0]
            for r in ActionResult.objects.filter(run=run)
            for o in r.outputs
        }
        for run in (one, many)
    }
    assert threads[one.pk] == {threading.current_thread().name}
    assert threads[many.pk] == {f"step-run-{StepRun.objects.get(run=many).pk}"}
