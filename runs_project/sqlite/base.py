"""Django's SQLite backend, with a writer that waits for the write lock in short steps.

Each process also keeps one idle connection to the database file (`_keep_open`).
In WAL mode the last connection to close checkpoints the whole WAL into the
database and deletes it, syncing the file; with a connection per request
(CONN_MAX_AGE 0, as the production server runs on SQLite) nearly every writing
request was that last connection, and the checkpoint cost a trigger more than its
own work. With the idle connection no request's is the last; the WAL is
checkpointed as SQLite does it anyway, by the commit that finds it past
`wal_autocheckpoint` pages (1,000).

SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20… ms between attempts to take a
lock that is busy. Under a queue's load the lock is held for a few milliseconds at a
time, so a waiting writer mostly sleeps while the lock is free: two workers end up
slower together than one alone. Here `BEGIN IMMEDIATE` is retried every 0.1–2 ms
(the busy timeout still bounds the whole wait); every other statement keeps
SQLite's busy timeout.
"""

import os
import sqlite3
import threading
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base

FIRST_WAIT = 0.0001
LONGEST_WAIT = 0.002


# (process id, database file) -> (file identity, the idle connection)
_kept: dict = {}
_kept_lock = threading.Lock()


def _identity(path: str):
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _keep_open(path: str) -> None:
    """Hold one idle connection to `path` for this process (see the module's
    docstring). It has read the file once, so SQLite counts it among the file's
    connections, and holds no transaction, so it blocks nothing. A file replaced
    since (tests recreate theirs) gets a new one; a forked process its own."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    key = (os.getpid(), path)
    identity = _identity(path)
    with _kept_lock:
        kept = _kept.get(key)
        if identity is None or (kept is not None and kept[0] == identity):
            return
        idle = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        idle.execute("SELECT count(*) FROM sqlite_master").fetchall()
        _kept[key] = (identity, idle)
        if kept is not None:
            kept[1].close()


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        # the busy timeout the connection is opened with (OPTIONS "timeout", in
        # seconds; sqlite3's default is 5)
        self.busy_timeout_ms = int(conn_params.get("timeout", 5.0) * 1000)
        connection = super().get_new_connection(conn_params)
        _keep_open(str(conn_params.get("database", "")))
        return connection

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
