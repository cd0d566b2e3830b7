"""The SQLite backend's writer waits for the write lock in short steps, and still
gives up with "database is locked" once the busy timeout has passed."""

import sqlite3
import threading

import pytest
from django.db import OperationalError

from runs_project.sqlite.base import DatabaseWrapper


def wrapper(path, timeout):
    return DatabaseWrapper(
        {
            "ENGINE": "runs_project.sqlite",
            "NAME": str(path),
            "USER": "",
            "PASSWORD": "",
            "HOST": "",
            "PORT": "",
            "ATOMIC_REQUESTS": False,
            "AUTOCOMMIT": True,
            "CONN_MAX_AGE": 0,
            "CONN_HEALTH_CHECKS": False,
            "TIME_ZONE": None,
            "TEST": {},
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": timeout,
            },
        },
        alias="lock-test",
    )


@pytest.fixture
def holder(tmp_path, django_db_blocker):
    """Another process's writer, as a plain sqlite3 connection holding the lock
    (the database is a file of its own, not the test database)."""
    django_db_blocker.unblock()
    path = tmp_path / "lock.sqlite3"
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (n INTEGER)")
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO t VALUES (1)")
    yield path, connection
    connection.close()
    django_db_blocker.restore()


def test_writer_gets_the_lock_once_it_is_released(holder):
    path, other = holder
    db = wrapper(path, timeout=30)
    db.ensure_connection()
    released = threading.Event()

    def release():
        released.set()
        other.execute("COMMIT")

    threading.Timer(0.2, release).start()
    db._start_transaction_under_autocommit()  # waits, then wins
    assert released.is_set()
    with db.cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (2)")
        cursor.execute("SELECT count(*) FROM t")
        assert cursor.fetchone() == (2,)
        cursor.execute("COMMIT")
        # every other statement keeps the configured busy timeout
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone() == (30_000,)
    db.close()


def test_writer_gives_up_after_the_busy_timeout(holder):
    path, _ = holder
    db = wrapper(path, timeout=0.3)
    db.ensure_connection()
    with pytest.raises(OperationalError, match="locked"):
        db._start_transaction_under_autocommit()
    with db.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone() == (300,)
    db.close()


def test_closing_a_writers_connection_does_not_checkpoint_the_wal(
    tmp_path, django_db_blocker
):
    """The process keeps an idle connection to the file, so a request's connection
    closing is not the last one: SQLite does not checkpoint the whole WAL into the
    database (and sync it) at every close. What was written stays readable."""
    path = tmp_path / "kept.sqlite3"
    wal = tmp_path / "kept.sqlite3-wal"
    with django_db_blocker.unblock():
        for n in range(3):
            db = wrapper(path, timeout=5)
            with db.cursor() as cursor:
                if n == 0:
                    cursor.execute("CREATE TABLE t (n INTEGER)")
                cursor.execute("INSERT INTO t VALUES (%s)", [n])
            db.close()
            # the last connection's close would have checkpointed and deleted it
            assert wal.exists() and wal.stat().st_size > 0
        reader = sqlite3.connect(path)
        assert reader.execute("SELECT n FROM t ORDER BY n").fetchall() == [
            (0,),
            (1,),
            (2,),
        ]
        reader.close()
