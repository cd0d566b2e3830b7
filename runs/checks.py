"""System checks for settings that would silently break delivery guarantees."""

import os

from django.conf import settings
from django.core.checks import Error, Warning, register
from knox.settings import knox_settings

from runs.conf import runs_settings
from runs.robots.registry import robots_problems


@register()
def q_cluster_timeout_below_retry(app_configs=None, **kwargs):
    conf = getattr(settings, "Q_CLUSTER", {})
    timeout, retry = conf.get("timeout"), conf.get("retry", 60)
    errors = []
    if timeout is None or timeout >= retry:
        errors.append(
            Error(
                f"Q_CLUSTER timeout ({timeout}) must be set and below retry ({retry}).",
                hint="Otherwise django-q2 redelivers a task while it still runs.",
                id="runs.E001",
            )
        )
    budget = runs_settings.STEP_RUN_BUDGET_SECONDS
    if timeout is not None and budget >= timeout:
        errors.append(
            Error(
                f"RUNS_STEP_RUN_BUDGET_SECONDS ({budget}) must be below the Q_CLUSTER "
                f"timeout ({timeout}).",
                hint="A step run hands over to a new task when its budget is spent.",
                id="runs.E002",
            )
        )
    if conf.get("save_limit", 250) > 0:
        errors.append(
            Warning(
                "Q_CLUSTER save_limit > 0 makes every task lock all saved results.",
                hint="Runs keeps its own results: set save_limit to -1.",
                id="runs.W001",
            )
        )
    return errors


# The engine's claim and bulk writes use RETURNING, which SQLite has from 3.35.
SQLITE_MIN_VERSION = (3, 35)


@register()
def sqlite_supports_returning(app_configs=None, **kwargs):
    """Refuse an SQLite library older than 3.35 for any SQLite database (the
    library linked into Python, the same for every connection)."""
    uses_sqlite = any(
        "sqlite" in db.get("ENGINE", "") for db in settings.DATABASES.values()
    )
    if not uses_sqlite:
        return []
    from django.db.backends.sqlite3.base import Database

    if tuple(Database.sqlite_version_info[:2]) >= SQLITE_MIN_VERSION:
        return []
    return [
        Error(
            f"SQLite {Database.sqlite_version} is too old: Runs needs 3.35 or later "
            "(RETURNING).",
            hint="Link Python against a newer SQLite, or use PostgreSQL.",
            id="runs.E003",
        )
    ]


@register()
def postgresql_read_committed(app_configs=None, **kwargs):
    """A PostgreSQL database at another isolation level than READ COMMITTED: the
    checks that keep a work item's run and step (migration runs.0026) read what
    is committed when they run, which a REPEATABLE READ or SERIALIZABLE
    snapshot would hide (a run's delete missing items committed after it)."""
    errors = []
    for alias, db in settings.DATABASES.items():
        level = db.get("OPTIONS", {}).get("isolation_level")
        if "postgresql" not in db.get("ENGINE", "") or level is None:
            continue
        name = getattr(level, "name", str(level)).upper().replace(" ", "_")
        if name != "READ_COMMITTED":
            errors.append(
                Error(
                    f"DATABASES[{alias!r}] sets isolation_level {name}: Runs needs "
                    "READ COMMITTED on PostgreSQL.",
                    hint="Remove isolation_level from its OPTIONS (see "
                    "docs/deploy.md, Deploying a release).",
                    id="runs.E004",
                )
            )
    return errors


@register()
def api_token_model(app_configs=None, **kwargs):
    errors = []
    if knox_settings.TOKEN_MODEL != "runs.ApiToken":
        errors.append(
            Error(
                f"KNOX_TOKEN_MODEL is {knox_settings.TOKEN_MODEL!r}, not "
                "'runs.ApiToken'.",
                hint='Set KNOX_TOKEN_MODEL = "runs.ApiToken" (API tokens with a name '
                'and a last use; see docs/api.md) and add "knox" to '
                "INSTALLED_APPS.",
                id="runs.E010",
            )
        )
    if "knox" not in getattr(settings, "MIGRATION_MODULES", {}):
        errors.append(
            Warning(
                "knox's migrations would create its unused AuthToken table.",
                hint='Set MIGRATION_MODULES = {"knox": None}: that table keeps '
                "`flush` from truncating auth_user on PostgreSQL.",
                id="runs.W010",
            )
        )
    return errors


@register()
def robots_registered(app_configs=None, **kwargs):
    """RUNS_ROBOTS entries that cannot start, and a root worker whose robots
    would run as root."""
    errors = [
        Error(problem, hint="See docs/robots.md, Registering robots.", id="runs.E201")
        for problem in robots_problems()
    ]
    runs_robots = runs_settings.ROBOTS or runs_settings.ROBOT_COMMANDS_IN_DEFINITIONS
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if runs_robots and as_root and not runs_settings.ROBOT_USER:
        errors.append(
            Warning(
                "This process runs as root and RUNS_ROBOT_USER is unset: robots "
                "would run as root.",
                hint="Run workers as an unprivileged user, or set RUNS_ROBOT_USER.",
                id="runs.W201",
            )
        )
    if runs_settings.ROBOT_COMMANDS_IN_DEFINITIONS:
        errors.append(
            Warning(
                "RUNS_ROBOT_COMMANDS_IN_DEFINITIONS is set: any Author can run a "
                "command on the workers.",
                hint="Register the robots in RUNS_ROBOTS and unset it "
                "(docs/robots.md, Migrating).",
                id="runs.W202",
            )
        )
    return errors
