"""Transactions held open in threads, for the lock tests on PostgreSQL."""

import threading
import time

from django.db import connection, connections, transaction


class Holder:
    """A transaction in a thread of its own that takes a lock and holds it until
    released; `got` is set once it has the lock, `failed` holds what it raised."""

    def __init__(self, take, *, lock_timeout_ms: int | None = None):
        self.take, self.lock_timeout_ms = take, lock_timeout_ms
        self.got, self.release = threading.Event(), threading.Event()
        self.failed = []
        self.thread = threading.Thread(target=self._hold)
        self.thread.start()

    def _hold(self):
        try:
            with transaction.atomic():
                if self.lock_timeout_ms:
                    with connection.cursor() as cursor:
                        cursor.execute(
                            f"SET LOCAL lock_timeout = {self.lock_timeout_ms}"
                        )
                self.take()
                self.got.set()
                self.release.wait(30)
        except BaseException as exc:  # noqa: BLE001 (the test reads it)
            self.failed.append(exc)
        finally:
            connections.close_all()

    def end(self):
        self.release.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def end(*holders: Holder) -> None:
    """Release every holder at once, then wait for each: one may be waiting for
    another's lock."""
    for holder in holders:
        holder.release.set()
    for holder in holders:
        holder.end()


def waiting(locktype: str) -> int:
    """How many lock requests of `locktype` (pg_locks: advisory, tuple,
    transactionid…) wait."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = %s AND NOT granted",
            [locktype],
        )
        return cursor.fetchone()[0]


def until(condition, seconds=10.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False
