"""Items in flight: a step whose `max_in_flight` is N calls its action on up to N
items of a batch at once, on N threads, for steps that wait on other systems (an
HTTP endpoint answering in 50 ms moves 20 items/s one at a time, N × 20 this way).

Only the calls leave the step run's thread. Everything that touches the
database stays on it: the items' preparation (condition, approval, journal
replay), their outcomes and journal records (`ItemProcessing._finish`), the stop
checks and the heartbeat that renews the step run's and its items' leases while
calls are out. An action in flight sees `should_stop()` as the step run's thread
last read it. The call threads take the next call themselves when one returns,
so the step run's thread being at the database holds no call back.

The rules are those of one item at a time: one run item and one idempotency key
per attempt (the commit writes them, as for any batch); an exception in one call
is that item's outcome only; a call past the step's `item_timeout_seconds` fails
its item (an application error, retried by the attempt rule) and is abandoned
(Python cannot kill a thread: its result is ignored, the thread ends after it,
and a fresh one takes its place); once the run is terminated, timed out or
failed, the calls still out are abandoned the same way and their items fail with
that cause, like the items not started; a stop that lets step runs complete lets
the calls finish. Calls are taken in batch order and, when the commit interval
ends, the ones taken are finished first, so the results are always a prefix of
the batch (the rest stays claimed for the next round).
"""

import queue
import threading
import time

from django.db import connections
from django.utils import timezone

from ..models import ActionResult
from . import items as item_module

# how long the journal of returned calls may wait to be written in one insert (far
# less than the batch's commit, which it guards)
JOURNAL_SECONDS = 0.02


def process_in_flight(runner, items: list, journal: dict, commit_by: float) -> list:
    """Results for the first items of `items` (see ItemProcessing._process), with
    up to `runner.step.max_in_flight` calls out at once."""
    return _Batch(runner, items, journal, commit_by).run()


class _Batch:
    def __init__(self, runner, items, journal, commit_by):
        self.runner, self.items, self.commit_by = runner, items, commit_by
        self.func = runner.spec.func
        self.timeout = runner.step.item_timeout_seconds
        self.name = f"step-run-{runner.step_run.pk}"
        self.results = [None] * len(items)
        self.calls = []  # (index, context) of the items to call, in batch order
        self.pending = {}  # index -> the result of an item called, to finish
        for index, item in enumerate(items):
            prepared = runner._prepare(item, journal)
            if isinstance(prepared, item_module.ItemResult):
                self.results[index] = prepared
            else:
                self.pending[index], context = prepared
                self.calls.append((index, context))
        self.lock = threading.Lock()  # guards taken, closed, out and retired
        self.taken = 0  # calls[:taken] went to a thread
        self.closed = False  # no further call is taken
        self.out: dict = {}  # index -> (thread number, start) of calls out
        self.retired = set()  # threads whose call was abandoned: they end after it
        self.returned = queue.SimpleQueue()  # (index, thread number, value, exc)
        self.threads = 0
        self.records = []  # journal records of calls that returned, not yet written
        self.journal_due = 0.0
        self.stopped = False

    def run(self) -> list:
        runner = self.runner
        try:
            for _ in range(min(runner.step.max_in_flight, len(self.calls))):
                self._start_thread()
            while not self._finished():
                self._collect()
                self._write_journal()
                runner.heartbeat()
                if runner.should_stop():
                    self._stop()
                elif self.timeout:
                    self._time_out()
            self._write_journal(now=True)
        finally:
            with self.lock:
                self.closed = True
                self.retired.update(number for number, _ in self.out.values())
        if self.stopped:
            for index, result in enumerate(self.results):
                if result is None:
                    self.results[index] = runner._stopped(self.items[index])
            return self.results
        done = next((i for i, r in enumerate(self.results) if r is None), None)
        return self.results if done is None else self.results[:done]

    def _start_thread(self) -> None:
        self.threads += 1
        threading.Thread(
            target=self._work,
            args=(self.threads,),
            name=f"{self.name}_{self.threads}",
            daemon=True,
        ).start()

    def _work(self, number: int) -> None:
        """A call thread: take the next call until none is left, the batch is
        closed, or a call of this thread was abandoned."""
        while True:
            with self.lock:
                if (
                    self.closed
                    or number in self.retired
                    or self.taken >= len(self.calls)
                ):
                    return
                index, context = self.calls[self.taken]
                self.taken += 1
                self.out[index] = (number, time.monotonic())
            self.pending[index].started_at = timezone.now()
            value, exc = _call(self.func, context)
            self.returned.put((index, number, value, exc))

    def _finished(self) -> bool:
        with self.lock:
            if not self.closed and self.taken and time.monotonic() >= self.commit_by:
                # the commit interval ended: finish what is out (at least one
                # call, so that every round moves on)
                self.closed = True
            return not self.out and (self.closed or self.taken >= len(self.calls))

    def _collect(self, wait: bool = True) -> None:
        """Wait for calls to return (until the next stop check, journal write or
        call deadline) and take their outcomes; without `wait`, take those that
        returned."""
        try:
            got = self.returned.get(timeout=self._wake()) if wait else None
        except queue.Empty:
            return
        if got is None:
            try:
                got = self.returned.get_nowait()
            except queue.Empty:
                return
        while True:
            index, number, value, exc = got
            with self.lock:
                mine = self.out.get(index, (None,))[0] == number
                if mine:
                    del self.out[index]
            if mine:  # else abandoned meanwhile: its outcome is already written
                if not isinstance(exc, (Exception, type(None))):
                    raise exc  # a BaseException ends the step run, as with one
                if not self.records:
                    self.journal_due = time.monotonic() + JOURNAL_SECONDS
                self.results[index] = self.runner._finish(
                    self.pending[index], value, exc, self.records
                )
            try:
                got = self.returned.get_nowait()
            except queue.Empty:
                return

    def _wake(self) -> float:
        now = time.monotonic()
        wake = item_module.STOP_CHECK_SECONDS
        if not self.closed:
            wake = min(wake, self.commit_by - now)
        if self.records:
            wake = min(wake, self.journal_due - now)
        if self.timeout:
            with self.lock:
                starts = [start for _, start in self.out.values()]
            for start in starts:
                wake = min(wake, start + self.timeout - now)
        return max(wake, 0.001)

    def _write_journal(self, now: bool = False) -> None:
        """One insert for the calls that returned in the last JOURNAL_SECONDS (or
        all of them, `now`): the step run's thread is then at the database once
        per interval, not once per call."""
        if self.records and (now or time.monotonic() >= self.journal_due):
            ActionResult.objects.bulk_create(self.records, ignore_conflicts=True)
            self.records = []

    def _abandon(self, indexes: list) -> list:
        """Take calls out of the batch (their threads end after them); returns
        the indexes that were still out."""
        with self.lock:
            gone = [i for i in indexes if i in self.out]
            for index in gone:
                self.retired.add(self.out.pop(index)[0])
        return gone

    def _stop(self) -> None:
        """The run is terminated (timed out, failed): the calls still out are
        abandoned and their items, like those not called, fail with its cause."""
        with self.lock:
            self.closed = True
        self._collect(wait=False)  # calls that returned before the stop was seen
        for index in self._abandon(list(self.out)):
            self.results[index] = self.runner._stopped(self.items[index])
        self.stopped = True

    def _time_out(self) -> None:
        """Fail the items whose call ran past the step's item timeout; a fresh
        thread takes the place of each."""
        now = time.monotonic()
        with self.lock:
            late = [i for i, (_, s) in self.out.items() if now - s >= self.timeout]
        for index in self._abandon(late):
            self.results[index] = self.runner._finish(
                self.pending[index],
                None,
                TimeoutError(f"item took longer than {self.timeout}s"),
            )
            self._start_thread()


def _call(func, context):
    """On a call thread: the action's normalised result or its exception; the
    database connections the action opened on this thread are closed after it."""
    try:
        return item_module._normalise(func(context)), None
    except BaseException as exc:  # noqa: BLE001 (the item's outcome: see _collect)
        return None, exc
    finally:
        for connection in connections.all(initialized_only=True):
            connection.close()
