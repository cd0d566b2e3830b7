"""Django's SQLite backend, with a writer that waits for the write lock in short steps.

SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20… ms between attempts to take a
lock that is busy. Under a queue's load the lock is held for a few milliseconds at a
time, so a waiting writer mostly sleeps while the lock is free: two workers end up
slower together than one alone. Here `BEGIN IMMEDIATE` is retried every 0.1–2 ms
(the busy timeout still bounds the whole wait); every other statement keeps
SQLite's busy timeout.
"""

import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base

FIRST_WAIT = 0.0001
LONGEST_WAIT = 0.002


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        # the busy timeout the connection is opened with (OPTIONS "timeout", in
        # seconds; sqlite3's default is 5)
        self.busy_timeout_ms = int(conn_params.get("timeout", 5.0) * 1000)
        return super().get_new_connection(conn_params)

    def _start_transaction_under_autocommit(self):
        if self.transaction_mode != "IMMEDIATE":
            return super()._start_transaction_under_autocommit()
        cursor = self.cursor()
        # a lone writer pays nothing: the first attempt without waiting usually wins
        cursor.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = time.monotonic() + self.busy_timeout_ms / 1000
            wait = FIRST_WAIT
            while True:
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                    return
                except OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() + wait > deadline:
                        raise
                time.sleep(wait)
                wait = min(wait * 1.5, LONGEST_WAIT)
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
