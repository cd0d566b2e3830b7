"""System checks for settings that would silently break delivery guarantees."""

import os

from django.conf import settings
from django.core.checks import Error, Warning, register

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


@register()
def robots_registered(app_configs=None, **kwargs):
    """RUNS_ROBOTS entries that cannot start, and a root worker whose robots
    would run as root."""
    errors = [
        Error(problem, hint="See docs/robots.md, Registering robots.", id="runs.E201")
        for problem in robots_problems()
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and not runs_settings.ROBOT_USER:
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
