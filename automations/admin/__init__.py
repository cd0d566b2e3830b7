"""Automation admin: definitions, versions (publish, diff), run now, triggers and
their schedules, subjects (CSV import/export), definitions import."""

from . import automations, subjects, versions  # noqa: F401  (registers the ModelAdmins)
