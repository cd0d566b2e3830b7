"""Readiness checks: the database, the broker, a worker cluster seen recently.

Each check returns None when it passes or a short reason (the exception's class,
never its message: /readyz answers anyone, and messages name hosts and ports).
Settings are read at call time (`settings.Q_CLUSTER`, `runs_settings`), so a test
that points the broker at a closed port is what the check sees.
"""

import logging

from django.conf import settings
from django.db import connections
from django.utils import timezone

from ..conf import runs_settings

log = logging.getLogger("runs.ops")

HOUSEKEEPING_SCHEDULE = "runs:housekeeping"
# a probe must answer fast: a Redis that does not connect within this is down
REDIS_TIMEOUT_SECONDS = 2.0
# caches that only the process itself sees: django-q2 stats kept there say nothing
# about clusters in other processes
LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def _reason(name: str, exc: Exception) -> str:
    log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
    return type(exc).__name__


def _q_cluster() -> dict:
    return getattr(settings, "Q_CLUSTER", {}) or {}


def redis_client():
    """A Redis client for the django-q2 broker in settings.Q_CLUSTER (or None when
    the broker is not Redis), with short timeouts."""
    import redis

    spec = _q_cluster().get("redis")
    if not spec:
        return None
    timeouts = {
        "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        "socket_timeout": REDIS_TIMEOUT_SECONDS,
    }
    if isinstance(spec, str):
        return redis.Redis.from_url(spec, **timeouts)
    return redis.Redis(**{**spec, **timeouts})


def database_check(alias: str = "default") -> str | None:
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready"
        return _reason("database", exc)
    return None


def broker_check() -> tuple[str, str | None]:
    """(name, reason): `redis` pinged when the broker is Redis; otherwise
    `broker`: the ORM broker's table read, or another broker's ping."""
    client = redis_client()
    if client is not None:
        try:
            client.ping()
        except Exception as exc:  # noqa: BLE001
            return "redis", _reason("redis", exc)
        finally:
            client.close()
        return "redis", None
    alias = _q_cluster().get("orm")
    try:
        if alias:
            from django_q.models import OrmQ

            OrmQ.objects.using(alias).exists()
        else:
            # another django-q2 broker (django_redis, SQS, MongoDB…): its own ping
            from django_q.brokers import get_broker

            if not get_broker().ping():
                return "broker", "no answer"
    except Exception as exc:  # noqa: BLE001
        return "broker", _reason("broker", exc)
    return "broker", None


def clusters_alive() -> int | None:
    """How many django-q2 clusters report their status now (each saves it every
    guard cycle with a few seconds' expiry): read from Redis with the Redis broker,
    from the cache when it is shared; None when this process cannot know (the ORM
    broker with a per-process cache)."""
    name = _q_cluster().get("name", "default")
    pattern = f"django_q:{name}:cluster:*"
    client = redis_client()
    if client is not None:
        try:
            return sum(1 for _ in client.scan_iter(match=pattern, count=100))
        finally:
            client.close()
    cache_alias = _q_cluster().get("cache", "default")
    if settings.CACHES.get(cache_alias, {}).get("BACKEND") in LOCAL_CACHES:
        return None
    from django_q.status import Stat

    return len(Stat.get_all())


def housekeeping_overdue_seconds(now=None) -> float | None:
    """Seconds since the housekeeping schedule was due and no cluster fired it
    (0 while it is on time); None if the schedule does not exist. Every cluster's
    scheduler fires due schedules, so this is how long no cluster has worked, on
    any broker, from the database alone."""
    from django_q.models import Schedule

    now = now or timezone.now()
    next_run = (
        Schedule.objects.filter(name=HOUSEKEEPING_SCHEDULE)
        .values_list("next_run", flat=True)
        .first()
    )
    if next_run is None:
        return None
    return max(0.0, (now - next_run).total_seconds())


def cluster_check() -> str | None:
    """A worker cluster was seen within RUNS_READY_CLUSTER_SECONDS: it reports its
    status now, or it fired the housekeeping schedule on time."""
    try:
        alive = clusters_alive()
        if alive:
            return None
        overdue = housekeeping_overdue_seconds()
    except Exception as exc:  # noqa: BLE001
        return _reason("cluster", exc)
    if overdue is None:
        return "no housekeeping schedule"
    if overdue > runs_settings.READY_CLUSTER_SECONDS:
        return f"no cluster seen for {int(overdue)}s"
    return None


def readiness() -> dict:
    """{check name: None (passed) or reason}, in a fixed order."""
    checks = {"database": database_check()}
    name, reason = broker_check()
    checks[name] = reason
    if runs_settings.READY_CHECK_CLUSTER:
        checks["cluster"] = cluster_check()
    return checks
