"""Items in flight: a step whose `max_in_flight` is N calls its action on up to N
items of a batch at once, each on a thread of a pool, for steps that wait on
other systems (an HTTP endpoint answering in 50 ms moves 20 items/s one at a
time, N × 20 this way).

Only the calls leave the step run's thread. Everything that touches the
database stays on it: the item's preparation (condition, approval, journal
replay), its outcome and journal record (`ItemProcessing._finish`), the stop
checks and the heartbeat that renews the step run's and its items' leases while
calls are out. An action in flight sees `should_stop()` as the step run's thread
last read it.

The rules are those of one item at a time: one run item and one idempotency key
per attempt (the commit writes them, as for any batch); an exception in one call
is that item's outcome only; a call past the step's `item_timeout_seconds` fails
its item (an application error, retried by the attempt rule) and is abandoned
(Python cannot kill a thread; its result is ignored, and a fresh pool takes the
next items so the abandoned call holds no place); once the run is terminated,
timed out or failed, the calls still out are abandoned and their items fail with
that cause, like the items not started; a stop that lets step runs complete
lets the calls finish. Items are started in batch order and, when the commit
interval ends, the ones started are finished first, so the results are always a
prefix of the batch (the rest stays claimed for the next round).
"""

import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from django.db import connections

from ..models import ActionResult
from . import items as item_module


def _call(func, context, started: list):
    """On a pool thread: the action's normalised result or its exception; the
    database connections the action opened on this thread are closed after it."""
    started.append(time.monotonic())
    try:
        return item_module._normalise(func(context)), None
    except Exception as exc:  # noqa: BLE001 (the item's outcome: see _finish)
        return None, exc
    finally:
        for connection in connections.all(initialized_only=True):
            connection.close()


class _Pools:
    """The pool the next call goes to, replaced once a call is abandoned."""

    def __init__(self, size: int, name: str):
        self.size, self.name = size, name
        self.all = []
        self.current = self._new()

    def _new(self) -> ThreadPoolExecutor:
        pool = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix=self.name)
        self.all.append(pool)
        return pool

    def abandon(self) -> None:
        self.current.shutdown(wait=False)
        self.current = self._new()

    def close(self) -> None:
        for pool in self.all:
            pool.shutdown(wait=False, cancel_futures=True)


def process_in_flight(runner, items: list, journal: dict, commit_by: float) -> list:
    """Results for the first items of `items` (see ItemProcessing._process), with
    up to `runner.step.max_in_flight` calls out at once."""
    step = runner.step
    timeout = step.item_timeout_seconds
    results = [None] * len(items)
    out: dict = {}  # future -> (index, result, [start time])
    pools = _Pools(step.max_in_flight, f"step-run-{runner.step_run.pk}")
    started = 0  # items[:started] are prepared (and called, when they need it)
    stopped = False
    try:
        while True:
            while (
                not stopped
                and started < len(items)
                and len(out) < step.max_in_flight
                and not (started and time.monotonic() >= commit_by)
            ):
                if runner.should_stop():
                    stopped = True
                    break
                prepared = runner._prepare(items[started], journal)
                if isinstance(prepared, item_module.ItemResult):
                    results[started] = prepared
                else:
                    result, context = prepared
                    clock = []
                    future = pools.current.submit(
                        _call, runner.spec.func, context, clock
                    )
                    out[future] = (started, result, clock)
                started += 1
            if not out:
                break
            done, _ = wait(
                out, timeout=_wake(out, timeout), return_when=FIRST_COMPLETED
            )
            records = []  # the journal of the calls that returned, in one insert
            for future in done:
                index, result, _ = out.pop(future)
                value, exc = future.result()  # a BaseException ends the step run
                results[index] = runner._finish(result, value, exc, records)
            if records:
                ActionResult.objects.bulk_create(records, ignore_conflicts=True)
            runner.heartbeat()
            if runner.should_stop():
                for future, (index, result, _) in out.items():
                    if future.done():  # it ended before the stop was seen
                        value, exc = future.result()
                        results[index] = runner._finish(result, value, exc)
                    else:
                        results[index] = runner._stopped(items[index])
                out.clear()
                stopped = True
            elif timeout:
                _time_out(runner, out, results, timeout, pools)
    finally:
        pools.close()
    if stopped:
        for index in range(started, len(items)):
            results[index] = runner._stopped(items[index])
        return results
    return results[:started]


def _wake(out: dict, timeout) -> float:
    """How long to wait for a call: until the next stop check, or the first
    call's deadline when that is sooner."""
    wake = item_module.STOP_CHECK_SECONDS
    if timeout:
        now = time.monotonic()
        for _, _, clock in out.values():
            if clock:
                wake = min(wake, clock[0] + timeout - now)
    return max(wake, 0.005)


def _time_out(runner, out: dict, results: list, timeout, pools: _Pools) -> None:
    """Fail the items whose call ran past the step's item timeout."""
    now = time.monotonic()
    late = [
        f for f, (_, _, clock) in out.items() if clock and now - clock[0] >= timeout
    ]
    for future in late:
        index, result, _ = out.pop(future)
        results[index] = runner._finish(
            result, None, TimeoutError(f"item took longer than {timeout}s")
        )
    if late:
        pools.abandon()
