"""Actions used by the tests (also loaded by worker processes the tests start,
through RUNS_ACTION_MODULES=tests.actions)."""

import os
import threading
import time
from collections import Counter

from automations.actions import BusinessError, Result, action
from automations.actions.registry import subject_source

calls: Counter = Counter()
failures_left: dict = {}
clock = {"now": 0.0}  # a clock tests give the engine instead of time.monotonic


# in-flight tests: barriers calls meet at (all N out at once), events that let
# held calls go, and the calls that returned after the engine gave up on them
barriers: dict = {}
events: dict = {}
returned: Counter = Counter()
WAIT_SECONDS = 30  # a safety net for a broken test, never a measure


def reset():
    calls.clear()
    failures_left.clear()
    clock["now"] = 0.0
    for event in events.values():
        event.set()  # let calls a test held go
    barriers.clear()
    events.clear()
    returned.clear()
    accounts.clear()


def event(name: str) -> threading.Event:
    return events.setdefault(name, threading.Event())


@action("test.tick")
def tick(ctx):
    """Take `seconds` of the test clock (`clock`), then pass the item on."""
    clock["now"] += ctx.parameters.get("seconds", 1)
    return [ctx.payload]


@action("test.count")
def count(ctx):
    """Count calls per idempotency key and pass the item on."""
    calls[ctx.idempotency_key] += 1
    return Result(outputs=[ctx.payload], result_ref=f"ref-{ctx.work_item.pk}")


@action("test.count_journal", journal=True)
def count_journal(ctx):
    calls[ctx.idempotency_key] += 1
    return Result(outputs=[ctx.payload], result_ref=f"ref-{ctx.work_item.pk}")


@action("test.flaky")
def flaky(ctx):
    """Fail with an application error `fail_times` times per item, then succeed."""
    left = failures_left.setdefault(
        ctx.idempotency_key, ctx.parameters.get("fail_times", 1)
    )
    calls[ctx.idempotency_key] += 1
    if left > 0:
        failures_left[ctx.idempotency_key] = left - 1
        raise ConnectionError("upstream unavailable")
    return [ctx.payload]


@action("test.business_fail")
def business_fail(ctx):
    if ctx.payload.get("bad"):
        raise BusinessError("the subject is not eligible", code="not_eligible")
    return [ctx.payload]


@action("test.fan_out")
def fan_out(ctx):
    return [{"n": i, "subject": f"sub-{i}"} for i in range(ctx.parameters.get("n", 3))]


@action("test.nothing")
def nothing(ctx):
    return None


@action("test.slow")
def slow(ctx):
    """Sleep in small steps, stopping early when asked to."""
    deadline = time.monotonic() + ctx.parameters.get("seconds", 1)
    while time.monotonic() < deadline:
        if ctx.should_stop():
            break
        time.sleep(0.02)
    return [ctx.payload]


@action("test.pid")
def pid(ctx):
    return [{**ctx.payload, "pid": os.getpid()}]


@action("test.stop_run")
def stop_run(ctx):
    """Play the operator who presses stop while the first item is in flight."""
    from runs.services import run_stop

    if ctx.payload.get("stop"):
        run_stop(
            ctx.run,
            step_runs=ctx.parameters.get("step_runs", "complete"),
            pending_items=ctx.parameters.get("pending_items", "failed"),
        )
    return [ctx.payload]


class WorkerDied(BaseException):
    """Stands for SIGKILL: nothing in the step run gets to clean up."""


@action("test.die_first")
def die_first(ctx):
    calls[ctx.idempotency_key] += 1
    if ctx.attempt == 1:
        raise WorkerDied()
    return [ctx.payload]


@action("test.saw_next_step")
def saw_next_step(ctx):
    """Record whether the next step already had a step run (streaming)."""
    from runs.models import StepRun

    later = StepRun.objects.filter(run=ctx.run, step__order__gt=ctx.step.order).exists()
    return [{**ctx.payload, "next_step_started": later}]


# The longest action key a step may name (Step.action's max_length): its
# idempotency key (run id, item id, action) must fit the ledger's columns.
LONG_ACTION = "test.long_" + "x" * 190


@action(LONG_ACTION, journal=True)
def long_named(ctx):
    return Result(outputs=[ctx.payload], result_ref=ctx.idempotency_key[-20:])


@action("test.together", journal=True)
def together(ctx):
    """In flight with others: wait at barrier `barrier` (when given) until as many
    calls are out, then do what the payload's `do` says: "raise" an application
    error, "business" error, "bad_return" (not a dict), "hold" until event `hold`
    is set (or, with `first_only`, on attempt 1 only), "stop" the run (parameters
    `step_runs`, `pending_items`) and set event `stopped`, "after_stop" wait
    for `stopped`, "lease" wait until its item's lease was renewed; else pass the
    item on."""
    calls[ctx.idempotency_key] += 1
    name = ctx.parameters.get("barrier")
    if name:
        barriers[name].wait(timeout=WAIT_SECONDS)
    do = ctx.payload.get("do")
    if do == "raise":
        raise RuntimeError("this one broke")
    if do == "business":
        raise BusinessError("not eligible", code="not_eligible")
    if do == "bad_return":
        return "not a dict"
    if do == "hold" and not (ctx.payload.get("first_only") and ctx.attempt > 1):
        event("hold").wait(timeout=WAIT_SECONDS)
        returned["hold"] += 1
    if do == "stop":
        from runs.services import run_stop

        run_stop(
            ctx.run,
            step_runs=ctx.parameters.get("step_runs", "complete"),
            pending_items=ctx.parameters.get("pending_items", "failed"),
        )
        event("stopped").set()
    if do == "after_stop":
        event("stopped").wait(timeout=WAIT_SECONDS)
    if do == "lease":
        return [{**ctx.payload, "renewed": _lease_renewed(ctx.work_item.pk)}]
    return Result(outputs=[ctx.payload], result_ref=f"ref-{ctx.work_item.pk}")


def _lease_renewed(item_id: int) -> bool:
    """Wait (on this call's own connection) until the item's lease moves on."""
    from runs.models import WorkItem

    def lease():
        return (
            WorkItem.objects.filter(pk=item_id)
            .values_list("lease_expires_at", flat=True)
            .get()
        )

    first = lease()
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if lease() > first:
            return True
        time.sleep(0.05)
    return False


@action("test.thread", journal=True)
def thread(ctx):
    """Say which thread the call ran on."""
    return [{**ctx.payload, "thread": threading.current_thread().name}]


@action("test.stop_then_look")
def stop_then_look(ctx):
    """The first item (`stop`) asks a stop; the others note `ctx.should_stop()`."""
    from runs.services import run_stop

    if ctx.payload.get("stop"):
        run_stop(ctx.run, step_runs=ctx.parameters.get("step_runs", "complete"))
    else:
        calls[f"should_stop:{ctx.work_item.pk}"] = int(ctx.should_stop())
    return [ctx.payload]


# the accounts `test.accounts` selects (tests change them between a run and its
# retry, as a source of record changes)
accounts: dict = {}


@subject_source("test.accounts")
def test_accounts(run, parameters):
    return [dict(row, subject=key) for key, row in sorted(accounts.items())]
