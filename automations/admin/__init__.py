"""Automation admin: definitions, versions (publish, diff), run now, triggers and
their schedules, subjects (CSV import/export), definitions import."""

from . import (  # noqa: F401  (registers the ModelAdmins)
    automations,
    subjects,
    versions,
    workspaces,
)
