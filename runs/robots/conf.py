"""Robot settings with their defaults (the apps also work in projects that do not
define them)."""

from django.conf import settings

DEFAULTS = {
    "RUNS_ROBOT_API_URL": "http://127.0.0.1:8000",
    "RUNS_ROBOT_MAX_FILE_BYTES": 52_428_800,
    "RUNS_ROBOT_URL_SECONDS": 300,
    "RUNS_ROBOT_LOG_BYTES": 262_144,
    "RUNS_ROBOT_WORKSPACE_ID": "runs",
}


def setting(name: str):
    return getattr(settings, name, DEFAULTS[name])
