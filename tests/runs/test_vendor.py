"""Code tuned per database picks its SQL by vendor, and says what it needs."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs import checks
from runs.machines import work_items_claim
from runs.models import StepRun
from runs.services import run_start


@pytest.mark.parametrize("skip_locked", [True, False])
def test_the_claim_sql_follows_the_vendor_not_a_feature_flag(
    automation, monkeypatch, skip_locked
):
    """PostgreSQL: a MATERIALIZED CTE with FOR UPDATE SKIP LOCKED (an IN subquery
    may run more than once there and claim more than asked); SQLite: the plain
    form. Whatever `has_select_for_update_skip_locked` says."""
    monkeypatch.setattr(
        connection.features, "has_select_for_update_skip_locked", skip_locked
    )
    run = run_start(
        automation=automation("builtin.echo"), inputs=[{"a": i} for i in range(5)]
    )
    step = run.version.steps.get()
    step_run = StepRun.objects.create(run=run, step=step)
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        claimed = work_items_claim(
            run,
            step,
            limit=3,
            token=uuid.uuid4(),
            owner_id=step_run.pk,
            expires=now + timezone.timedelta(seconds=30),
            now=now,
        )
    assert len(claimed) == 3
    (sql,) = [q["sql"] for q in queries.captured_queries if "RETURNING" in q["sql"]]
    if connection.vendor == "postgresql":
        assert "WITH picked AS MATERIALIZED" in sql and "FOR UPDATE SKIP LOCKED" in sql
    else:
        assert "MATERIALIZED" not in sql and "FOR UPDATE" not in sql


def test_sqlite_older_than_3_35_is_refused(monkeypatch, settings):
    """The engine's claim and bulk writes use RETURNING (SQLite 3.35)."""
    from django.db.backends.sqlite3 import base

    monkeypatch.setattr(base.Database, "sqlite_version_info", (3, 34, 1))
    monkeypatch.setattr(base.Database, "sqlite_version", "3.34.1")
    settings.DATABASES = {
        **settings.DATABASES,
        "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }
    errors = checks.sqlite_supports_returning()
    assert [e.id for e in errors] == ["runs.E003"]
    assert "3.34.1" in errors[0].msg and "3.35" in errors[0].msg

    monkeypatch.setattr(base.Database, "sqlite_version_info", (3, 35, 0))
    assert checks.sqlite_supports_returning() == []


@pytest.mark.parametrize(
    "level,refused",
    [
        (None, False),
        ("READ_COMMITTED", False),
        ("REPEATABLE_READ", True),
        ("SERIALIZABLE", True),
    ],
)
def test_postgresql_at_another_isolation_level_is_refused(settings, level, refused):
    """The checks keeping a work item's run and step (migration runs.0026) read
    what is committed as they run: a REPEATABLE READ snapshot would hide it."""
    from psycopg import IsolationLevel

    options = {} if level is None else {"isolation_level": IsolationLevel[level]}
    settings.DATABASES = {
        **settings.DATABASES,
        "other": {"ENGINE": "django.db.backends.postgresql", "OPTIONS": options},
        "lite": {
            "ENGINE": "django.db.backends.sqlite3",
            "OPTIONS": {"isolation_level": "IMMEDIATE"},
        },
    }
    errors = checks.postgresql_read_committed()
    assert [e.id for e in errors] == (["runs.E004"] if refused else [])
    if refused:
        assert "'other'" in errors[0].msg and level in errors[0].msg
