"""Actions used by the tests (also loaded by worker processes the tests start,
through RUNS_ACTION_MODULES=tests.actions)."""

import os
import time
from collections import Counter

from automations.actions import BusinessError, Result, action
from automations.actions.registry import subject_source

calls: Counter = Counter()
failures_left: dict = {}
clock = {"now": 0.0}  # a clock tests give the engine instead of time.monotonic


def reset():
    calls.clear()
    failures_left.clear()
    clock["now"] = 0.0
    accounts.clear()


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


# the accounts `test.accounts` selects (tests change them between a run and its
# retry, as a source of record changes)
accounts: dict = {}


@subject_source("test.accounts")
def test_accounts(run, parameters):
    return [dict(row, subject=key) for key, row in sorted(accounts.items())]
